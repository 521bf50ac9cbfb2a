//! Pages of a list or a history, the same in every service.
//!
//! A size of 0 asks for the default and a larger one than the list allows gets
//! its maximum (AIP-158). A history's page also ends once its payloads pass
//! [`MAX_PAGE_BYTES`]: an event is at most 1 MiB, so any page fits a message.

use tonic::Status;

use crate::errors::invalid;

/// A page's payload bytes after which it ends, with at least one event in it.
pub const MAX_PAGE_BYTES: usize = 2 * 1024 * 1024;

/// Events per page of a history: the default and the most.
pub const HISTORY_PAGE: Limit = Limit {
    default: 1000,
    max: 1000,
};

/// How many entries a list gives per page.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub default: u32,
    pub max: u32,
}

impl Limit {
    /// The page size to serve for `requested`.
    pub fn size(self, requested: u32) -> usize {
        let size = if requested == 0 {
            self.default
        } else {
            requested.min(self.max)
        };
        usize::try_from(size).unwrap_or(usize::MAX)
    }
}

/// The version a history's page starts at: 1, or where `token` says.
pub fn version_after(token: &str) -> Result<u64, Status> {
    if token.is_empty() {
        return Ok(1);
    }
    token
        .parse::<u64>()
        .ok()
        .filter(|v| *v >= 1)
        .ok_or_else(|| invalid("page_token", "is not one this service gave"))
}

/// How much of a page `items` (with their payload sizes) fill: `size` at most,
/// fewer once [`MAX_PAGE_BYTES`] is passed, and at least one.
pub fn fill<T>(items: &[T], size: usize, bytes: impl Fn(&T) -> usize) -> usize {
    let mut total = 0usize;
    let mut taken = 0;
    for item in items.iter().take(size) {
        if taken > 0 && total.saturating_add(bytes(item)) > MAX_PAGE_BYTES {
            break;
        }
        total = total.saturating_add(bytes(item));
        taken += 1;
    }
    taken
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_size_is_the_default_or_at_most_the_limit() {
        let limit = Limit {
            default: 50,
            max: 200,
        };
        assert_eq!(limit.size(0), 50);
        assert_eq!(limit.size(7), 7);
        assert_eq!(limit.size(u32::MAX), 200);
    }

    #[test]
    fn a_token_is_a_version_this_service_gave() {
        assert_eq!(version_after("").unwrap(), 1);
        assert_eq!(version_after("17").unwrap(), 17);
        for bad in ["0", "-1", "x", "99999999999999999999999"] {
            let refused = version_after(bad).unwrap_err();
            assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{bad}");
        }
    }

    #[test]
    fn a_page_ends_once_its_payloads_pass_the_budget_with_at_least_one() {
        let mib = 1024 * 1024;
        assert_eq!(fill(&[mib, mib, mib], 10, |b| *b), 2);
        assert_eq!(fill(&[3 * mib, 1], 10, |b| *b), 1, "one, however big");
        assert_eq!(fill(&[1, 1, 1], 2, |b| *b), 2);
        assert_eq!(fill::<usize>(&[], 2, |b| *b), 0);
    }
}
