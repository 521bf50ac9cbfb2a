//! Addresses as logs may show them: enough to tell two apart, not enough to
//! reach anyone.

use crate::domain::Channel;

/// `a***@example.com`.
pub fn email(address: &str) -> String {
    match address.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".into(),
    }
}

/// `+49******567`: the country code's first digits and the last three.
pub fn phone(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    if chars.len() <= 6 {
        return "***".into();
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 3..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 6))
}

/// Any channel's address, masked.
pub fn address(channel: Channel, address: &str) -> String {
    match channel {
        Channel::Email => email(address),
        Channel::Sms => phone(address),
        Channel::Push => format!(
            "token …{}",
            address
                .chars()
                .rev()
                .take(4)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<String>()
        ),
        Channel::InApp => "inbox".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_masked() {
        assert_eq!(email("ana.weber@example.com"), "a***@example.com");
        assert_eq!(phone("+4930123456"), "+49*****456");
        assert_eq!(address(Channel::Push, "abcdef123456"), "token …3456");
        for shown in [email("ana.weber@example.com"), phone("+4930123456")] {
            assert!(
                !shown.contains("weber") && !shown.contains("30123"),
                "{shown}"
            );
        }
    }
}
