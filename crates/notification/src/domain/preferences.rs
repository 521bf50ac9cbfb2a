//! A customer's preferences: where to reach them, in which language, when not to
//! disturb them, and what they do not want to hear about. One stream per
//! customer (`customer-<id>`).

use std::collections::BTreeSet;

use aftersales_eventstore::{Decider, DomainEvent};
use chrono::NaiveTime;
use serde::{Deserialize, Serialize};

use super::DomainError;
use super::catalog::Topic;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Sms,
    Push,
    InApp,
}

impl Channel {
    pub const ALL: [Self; 4] = [Self::Email, Self::Sms, Self::Push, Self::InApp];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Sms => "sms",
            Self::Push => "push",
            Self::InApp => "in_app",
        }
    }

    /// A provider that takes an idempotency key can be asked again after an
    /// interrupted attempt without sending twice; SMTP cannot.
    pub fn retry_is_safe(self) -> bool {
        !matches!(self, Self::Email)
    }
}

/// Do not disturb between `start` and `end`, local time in `time_zone`. The window
/// may cross midnight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuietHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
    /// IANA name, e.g. `Europe/Berlin`.
    pub time_zone: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preferences {
    pub email: String,
    pub phone: String,
    pub push_token: String,
    /// Wanted channels besides the in-app inbox, which always receives.
    pub channels: BTreeSet<Channel>,
    pub language: String,
    pub quiet_hours: Option<QuietHours>,
    pub opted_out: BTreeSet<Topic>,
}

impl Default for Preferences {
    /// Someone who never said anything: the in-app inbox, in English.
    fn default() -> Self {
        Self {
            email: String::new(),
            phone: String::new(),
            push_token: String::new(),
            channels: BTreeSet::new(),
            language: "en".into(),
            quiet_hours: None,
            opted_out: BTreeSet::new(),
        }
    }
}

impl Preferences {
    /// Where a channel reaches the customer; `None` when it cannot.
    pub fn address(&self, channel: Channel) -> Option<&str> {
        let address = match channel {
            Channel::Email => &self.email,
            Channel::Sms => &self.phone,
            Channel::Push => &self.push_token,
            Channel::InApp => return Some(""),
        };
        // An erased address reaches nobody.
        (!address.is_empty() && address != aftersales_eventstore::personal::ERASED)
            .then_some(address.as_str())
    }

    pub fn validate(&self) -> Result<(), DomainError> {
        if !self.email.is_empty() && !valid_email(&self.email) {
            return Err(DomainError::invalid("email", "is not an email address"));
        }
        if !self.phone.is_empty() && !valid_phone(&self.phone) {
            return Err(DomainError::invalid(
                "phone",
                "must be E.164: + and 8 to 15 digits",
            ));
        }
        if self.push_token.len() > 4096 || self.push_token.chars().any(char::is_control) {
            return Err(DomainError::invalid(
                "push_token",
                "must be at most 4096 bytes of printable text",
            ));
        }
        for channel in &self.channels {
            if self.address(*channel).is_none() {
                return Err(DomainError::invalid(
                    "channels",
                    format!(
                        "{} is wanted but no address is given for it",
                        channel.as_str()
                    ),
                ));
            }
        }
        if !valid_language(&self.language) {
            return Err(DomainError::invalid(
                "language",
                "must be a BCP 47 tag such as en, zh-CN, de or hi",
            ));
        }
        if let Some(quiet) = &self.quiet_hours {
            if quiet.start == quiet.end {
                return Err(DomainError::invalid(
                    "quiet_hours",
                    "start and end must differ",
                ));
            }
            if quiet.time_zone.parse::<chrono_tz::Tz>().is_err() {
                return Err(DomainError::invalid(
                    "quiet_hours.time_zone",
                    "must be an IANA time zone such as Europe/Berlin",
                ));
            }
        }
        Ok(())
    }
}

fn valid_email(value: &str) -> bool {
    let Some((local, domain)) = value.split_once('@') else {
        return false;
    };
    value.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && value.chars().all(|c| c.is_ascii_graphic())
}

fn valid_phone(value: &str) -> bool {
    value.strip_prefix('+').is_some_and(|digits| {
        (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
    })
}

fn valid_language(value: &str) -> bool {
    let mut parts = value.split('-');
    let primary = parts.next().unwrap_or_default();
    value.len() <= 35
        && (2..=3).contains(&primary.len())
        && primary.bytes().all(|b| b.is_ascii_alphabetic())
        && parts.all(|p| (2..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Set {
        customer_id: String,
        preferences: Preferences,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    PreferencesSet {
        /// Whose they are; absent from events recorded before it was kept.
        #[serde(default)]
        customer_id: String,
        #[serde(flatten)]
        preferences: Preferences,
    },
}

impl DomainEvent for Event {
    fn event_type(&self) -> &'static str {
        match self {
            Self::PreferencesSet { .. } => "PreferencesSet",
        }
    }

    /// Where the customer is reached: sealed for them.
    fn personal(&self) -> Option<aftersales_eventstore::PersonalData<'_>> {
        let Self::PreferencesSet { customer_id, .. } = self;
        (!customer_id.is_empty()).then_some(aftersales_eventstore::PersonalData {
            subject: customer_id,
            fields: &["/email", "/phone", "/push_token"],
        })
    }
}

/// The preferences decider.
#[derive(Debug, Clone, Copy)]
pub struct CustomerPreferences;

impl Decider for CustomerPreferences {
    type Command = Command;
    type Event = Event;
    type State = Option<Preferences>;
    type Error = DomainError;

    fn initial_state() -> Self::State {
        None
    }

    fn decide(state: &Self::State, command: &Command) -> Result<Vec<Event>, DomainError> {
        let Command::Set {
            customer_id,
            preferences,
        } = command;
        preferences.validate()?;
        if state.as_ref() == Some(preferences) {
            return Ok(vec![]);
        }
        Ok(vec![Event::PreferencesSet {
            customer_id: customer_id.clone(),
            preferences: preferences.clone(),
        }])
    }

    fn evolve(_: Self::State, event: &Event) -> Self::State {
        let Event::PreferencesSet { preferences, .. } = event;
        Some(preferences.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(preferences: Preferences) -> Command {
        Command::Set {
            customer_id: "c-1".into(),
            preferences,
        }
    }

    fn prefs() -> Preferences {
        Preferences {
            email: "ana@example.com".into(),
            phone: "+4930123456".into(),
            channels: [Channel::Email, Channel::Sms].into(),
            language: "de".into(),
            ..Preferences::default()
        }
    }

    #[test]
    fn bad_preferences_name_their_field() {
        let field = |p: Preferences| match p.validate() {
            Err(DomainError::Invalid { field, .. }) => field,
            other => panic!("refusal expected, got {other:?}"),
        };
        assert_eq!(
            field(Preferences {
                email: "ana@".into(),
                ..prefs()
            }),
            "email"
        );
        assert_eq!(
            field(Preferences {
                email: "a b@x.de".into(),
                ..prefs()
            }),
            "email"
        );
        assert_eq!(
            field(Preferences {
                phone: "030 123".into(),
                ..prefs()
            }),
            "phone"
        );
        assert_eq!(
            field(Preferences {
                push_token: String::new(),
                channels: [Channel::Push].into(),
                ..prefs()
            }),
            "channels"
        );
        assert_eq!(
            field(Preferences {
                language: "german!".into(),
                ..prefs()
            }),
            "language"
        );
        let quiet = |tz: &str, start: u32, end: u32| QuietHours {
            start: NaiveTime::from_hms_opt(start, 0, 0).unwrap_or_default(),
            end: NaiveTime::from_hms_opt(end, 0, 0).unwrap_or_default(),
            time_zone: tz.into(),
        };
        assert_eq!(
            field(Preferences {
                quiet_hours: Some(quiet("Mars/Olympus", 22, 7)),
                ..prefs()
            }),
            "quiet_hours.time_zone"
        );
        assert_eq!(
            field(Preferences {
                quiet_hours: Some(quiet("Europe/Berlin", 7, 7)),
                ..prefs()
            }),
            "quiet_hours"
        );
        assert!(
            Preferences {
                quiet_hours: Some(quiet("Asia/Shanghai", 22, 7)),
                ..prefs()
            }
            .validate()
            .is_ok()
        );
        assert!(
            Preferences {
                language: "zh-CN".into(),
                ..prefs()
            }
            .validate()
            .is_ok()
        );
    }

    #[test]
    fn setting_the_same_preferences_again_writes_nothing() {
        let events = CustomerPreferences::decide(&None, &set(prefs())).expect("valid");
        let state = CustomerPreferences::fold(&events);
        assert!(
            CustomerPreferences::decide(&state, &set(prefs()))
                .expect("valid")
                .is_empty()
        );
    }
}
