//! Between the domain's types and the `aftersales.notification.v1` contracts.

use std::collections::BTreeSet;

use aftersales_proto::notification as pb;
use aftersales_runtime::errors::invalid;
use aftersales_runtime::request::timestamp_to_proto;
use chrono::NaiveTime;
use tonic::Status;

use crate::app::InboxItem;
use crate::domain::catalog::Topic;
use crate::domain::notification::{NotificationState, Outcome};
use crate::domain::preferences::{Channel, Preferences, QuietHours};

pub fn channel_to_proto(c: Channel) -> pb::ChannelKind {
    match c {
        Channel::Email => pb::ChannelKind::Email,
        Channel::Sms => pb::ChannelKind::Sms,
        Channel::Push => pb::ChannelKind::Push,
        Channel::InApp => pb::ChannelKind::InApp,
    }
}

pub fn channel_from_proto(value: i32) -> Result<Channel, Status> {
    match pb::ChannelKind::try_from(value).unwrap_or(pb::ChannelKind::Unspecified) {
        pb::ChannelKind::Email => Ok(Channel::Email),
        pb::ChannelKind::Sms => Ok(Channel::Sms),
        pb::ChannelKind::Push => Ok(Channel::Push),
        pb::ChannelKind::InApp => Ok(Channel::InApp),
        pb::ChannelKind::Unspecified => {
            Err(invalid("channels", "must be email, sms, push or in_app"))
        }
    }
}

pub fn preferences_from_proto(p: pb::Preferences) -> Result<Preferences, Status> {
    let channels = p
        .channels
        .iter()
        .map(|c| channel_from_proto(*c))
        .collect::<Result<BTreeSet<_>, _>>()?;
    let opted_out = p
        .opted_out_topics
        .iter()
        .map(|t| {
            Topic::parse(t).ok_or_else(|| {
                invalid(
                    "opted_out_topics",
                    "must be repair_updates, shipping, warranty, reminders or offers",
                )
            })
        })
        .collect::<Result<BTreeSet<_>, _>>()?;
    let quiet_hours = match p.quiet_hours {
        None => None,
        Some(q) => {
            let time = |field: &str, v: &str| {
                NaiveTime::parse_from_str(v, "%H:%M").map_err(|_| invalid(field, "must be HH:MM"))
            };
            Some(QuietHours {
                start: time("quiet_hours.start", &q.start)?,
                end: time("quiet_hours.end", &q.end)?,
                time_zone: q.time_zone,
            })
        }
    };
    Ok(Preferences {
        email: p.email.trim().to_owned(),
        phone: p.phone.trim().to_owned(),
        push_token: p.push_token,
        channels: channels
            .into_iter()
            .filter(|c| *c != Channel::InApp)
            .collect(),
        language: if p.language.trim().is_empty() {
            "en".into()
        } else {
            p.language.trim().to_owned()
        },
        quiet_hours,
        opted_out,
    })
}

pub fn preferences_to_proto(customer_id: &str, p: &Preferences, version: u64) -> pb::Preferences {
    pb::Preferences {
        customer_id: customer_id.to_owned(),
        email: p.email.clone(),
        phone: p.phone.clone(),
        push_token: p.push_token.clone(),
        channels: p
            .channels
            .iter()
            .map(|c| channel_to_proto(*c).into())
            .collect(),
        language: p.language.clone(),
        quiet_hours: p.quiet_hours.as_ref().map(|q| pb::QuietHours {
            start: q.start.format("%H:%M").to_string(),
            end: q.end.format("%H:%M").to_string(),
            time_zone: q.time_zone.clone(),
        }),
        opted_out_topics: p.opted_out.iter().map(|t| t.as_str().to_owned()).collect(),
        version,
    }
}

pub fn inbox_to_proto(customer_id: &str, item: InboxItem) -> pb::Notification {
    pb::Notification {
        notification_id: item.notification_id,
        customer_id: customer_id.to_owned(),
        channel: pb::ChannelKind::InApp.into(),
        kind: item.kind,
        topic: item.topic,
        language: item.language,
        subject: item.subject,
        body: item.body,
        urgent: item.urgent,
        read: item.read,
        created_at: Some(timestamp_to_proto(item.created_at)),
        status: item.status,
        source_event_id: item.source_event_id,
    }
}

/// A message as its customer and the support desk see it.
pub fn notification_to_proto(id: &str, n: &NotificationState) -> pb::Notification {
    let m = &n.message;
    pb::Notification {
        notification_id: id.to_owned(),
        customer_id: m.customer_id.clone(),
        channel: channel_to_proto(m.channel).into(),
        kind: m.kind.as_str().to_owned(),
        topic: m.topic.as_str().to_owned(),
        language: m.language.clone(),
        subject: m.subject.clone(),
        body: m.text.clone(),
        urgent: m.urgent,
        read: n.read_at.is_some(),
        created_at: Some(timestamp_to_proto(n.created_at)),
        status: n.status.as_str().to_owned(),
        source_event_id: m.source_event_id.clone(),
    }
}

pub fn delivery_to_proto(id: &str, n: &NotificationState) -> pb::Delivery {
    pb::Delivery {
        notification: Some(notification_to_proto(id, n)),
        attempts: n
            .attempts
            .iter()
            .map(|a| pb::Attempt {
                number: a.number,
                started_at: Some(timestamp_to_proto(a.started_at)),
                outcome: match a.outcome {
                    Some(Outcome::Delivered) => "delivered",
                    Some(Outcome::Failed) => "failed",
                    Some(Outcome::Unknown) => "unknown",
                    None => "",
                }
                .to_owned(),
                error: a.error.clone(),
                finished_at: a.finished_at.map(timestamp_to_proto),
            })
            .collect(),
        next_attempt_at: n.next_attempt_at.map(timestamp_to_proto),
    }
}
