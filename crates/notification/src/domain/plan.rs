//! Which channels a message goes to, and when: the in-app inbox always and at
//! once; the customer's other channels unless they opted out of the topic (the
//! law's messages go anyway), deferred to the end of their quiet hours unless
//! urgent.

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone as _, Utc};

use super::catalog::Kind;
use super::preferences::{Channel, Preferences, QuietHours};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub channel: Channel,
    /// Email address, phone number or push token; empty for the inbox.
    pub address: String,
    pub send_at: DateTime<Utc>,
}

pub fn plan(kind: Kind, preferences: &Preferences, now: DateTime<Utc>) -> Vec<Planned> {
    let spec = kind.spec();
    let mut planned = vec![Planned {
        channel: Channel::InApp,
        address: String::new(),
        send_at: now,
    }];
    if preferences.opted_out.contains(&spec.topic) && !spec.transactional {
        return planned;
    }
    let send_at = if spec.urgent {
        now
    } else {
        preferences
            .quiet_hours
            .as_ref()
            .and_then(|quiet| end_of_quiet_hours(quiet, now))
            .unwrap_or(now)
    };
    for channel in &preferences.channels {
        if *channel == Channel::InApp {
            continue;
        }
        if let Some(address) = preferences.address(*channel) {
            planned.push(Planned {
                channel: *channel,
                address: address.to_owned(),
                send_at,
            });
        }
    }
    planned
}

/// When the quiet window `now` falls in ends, or `None` outside it. Local times
/// that a DST change skips move to the first valid instant after; repeated ones
/// take the first occurrence.
pub fn end_of_quiet_hours(quiet: &QuietHours, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let tz: chrono_tz::Tz = quiet.time_zone.parse().ok()?;
    let local = now.with_timezone(&tz).naive_local();
    let time = local.time();
    let crosses_midnight = quiet.start > quiet.end;
    let inside = if crosses_midnight {
        time >= quiet.start || time < quiet.end
    } else {
        time >= quiet.start && time < quiet.end
    };
    if !inside {
        return None;
    }
    let end_day = if crosses_midnight && time >= quiet.start {
        local.date().succ_opt()?
    } else {
        local.date()
    };
    let mut end = NaiveDateTime::new(end_day, quiet.end);
    // A gap is at most a few hours; step through it a minute at a time.
    for _ in 0..(4 * 60) {
        match tz.from_local_datetime(&end) {
            LocalResult::Single(at) | LocalResult::Ambiguous(at, _) => {
                return Some(at.with_timezone(&Utc));
            }
            LocalResult::None => end += chrono::Duration::minutes(1),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveTime;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("valid time")
            .with_timezone(&Utc)
    }

    fn quiet(start: &str, end: &str, tz: &str) -> QuietHours {
        QuietHours {
            start: NaiveTime::parse_from_str(start, "%H:%M").expect("time"),
            end: NaiveTime::parse_from_str(end, "%H:%M").expect("time"),
            time_zone: tz.into(),
        }
    }

    fn customer(quiet_hours: Option<QuietHours>) -> Preferences {
        Preferences {
            email: "ana@example.com".into(),
            phone: "+4930123456".into(),
            channels: [Channel::Email, Channel::Sms].into(),
            quiet_hours,
            ..Preferences::default()
        }
    }

    #[test]
    fn a_window_across_midnight_ends_the_next_morning_local_time() {
        let q = quiet("22:00", "07:00", "Asia/Shanghai");
        // 23:30 in Shanghai (UTC+8) is 15:30 UTC; the window ends 07:00 local, 23:00 UTC.
        assert_eq!(
            end_of_quiet_hours(&q, utc("2026-11-25T15:30:00Z")),
            Some(utc("2026-11-25T23:00:00Z"))
        );
        // 05:00 local, the same window, ends the same morning.
        assert_eq!(
            end_of_quiet_hours(&q, utc("2026-11-25T21:00:00Z")),
            Some(utc("2026-11-25T23:00:00Z"))
        );
        // 12:00 local: not quiet.
        assert_eq!(end_of_quiet_hours(&q, utc("2026-11-25T04:00:00Z")), None);
    }

    #[test]
    fn daylight_saving_changes_are_honoured() {
        // Berlin moves from UTC+1 to UTC+2 at 02:00 on 2026-03-29.
        let q = quiet("22:00", "07:00", "Europe/Berlin");
        // 23:00 local on the 28th (22:00 UTC): 07:00 on the 29th is already +2, 05:00 UTC.
        assert_eq!(
            end_of_quiet_hours(&q, utc("2026-03-28T22:00:00Z")),
            Some(utc("2026-03-29T05:00:00Z"))
        );
        // A window ending inside the skipped hour ends when the clock resumes, 03:00 local.
        let gap = quiet("01:00", "02:30", "Europe/Berlin");
        assert_eq!(
            end_of_quiet_hours(&gap, utc("2026-03-29T00:30:00Z")),
            Some(utc("2026-03-29T01:00:00Z"))
        );
        // Back to UTC+1 on 2026-10-25 at 03:00: 02:30 happens twice; the first is taken.
        let twice = quiet("01:00", "02:30", "Europe/Berlin");
        assert_eq!(
            end_of_quiet_hours(&twice, utc("2026-10-24T23:30:00Z")),
            Some(utc("2026-10-25T00:30:00Z"))
        );
    }

    #[test]
    fn quiet_hours_defer_all_but_urgent_messages_and_never_the_inbox() {
        let now = utc("2026-11-25T15:30:00Z"); // 23:30 in Shanghai
        let prefs = customer(Some(quiet("22:00", "07:00", "Asia/Shanghai")));
        let deferred = plan(Kind::RepairStarted, &prefs, now);
        assert_eq!(deferred.len(), 3);
        assert_eq!(deferred[0].channel, Channel::InApp);
        assert_eq!(deferred[0].send_at, now);
        assert!(
            deferred[1..]
                .iter()
                .all(|p| p.send_at == utc("2026-11-25T23:00:00Z"))
        );
        let urgent = plan(Kind::ShipmentException, &prefs, now);
        assert!(urgent.iter().all(|p| p.send_at == now));
    }

    #[test]
    fn opt_outs_hold_except_for_what_the_law_requires() {
        let mut prefs = customer(None);
        prefs.opted_out = [crate::domain::Topic::RepairUpdates].into();
        let started = plan(Kind::RepairStarted, &prefs, utc("2026-11-25T10:00:00Z"));
        assert_eq!(
            started.iter().map(|p| p.channel).collect::<Vec<_>>(),
            [Channel::InApp]
        );
        let cancelled = plan(Kind::RepairCancelled, &prefs, utc("2026-11-25T10:00:00Z"));
        assert_eq!(cancelled.len(), 3, "a cancellation is sent anyway");
    }

    #[test]
    fn a_customer_without_preferences_gets_the_inbox() {
        let planned = plan(
            Kind::RepairOpened,
            &Preferences::default(),
            utc("2026-11-25T10:00:00Z"),
        );
        assert_eq!(
            planned.iter().map(|p| p.channel).collect::<Vec<_>>(),
            [Channel::InApp]
        );
    }
}
