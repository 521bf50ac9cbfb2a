//! `aftersales.notification.v1.NotificationService` over the use cases in
//! [`crate::app`].

use std::collections::BTreeSet;
use std::time::Duration;

use aftersales_eventstore::{CommandContext, EventStore as _};
use aftersales_proto::notification as pb;
use aftersales_proto::notification::notification_service_server::NotificationService;
use aftersales_runtime::request::Requests;
use aftersales_runtime::request::timestamp_to_proto;
use chrono::NaiveTime;
use tonic::{Request, Response, Status};

use aftersales_runtime::errors::{invalid, status};

use crate::app::{InboxItem, Notifications};
use crate::domain::catalog::Topic;
use crate::domain::notification::{NotificationState, Outcome};
use crate::domain::preferences::{Channel, Preferences, QuietHours};

#[derive(Debug, Clone)]
pub struct NotificationApi {
    app: Notifications,
    requests: Requests,
}

impl NotificationApi {
    pub fn new(app: Notifications, requests: Requests) -> Self {
        Self { app, requests }
    }

    fn context<T: prost::Message>(&self, request: &Request<T>) -> Result<CommandContext, Status> {
        self.requests.context(request)
    }
}

fn customer(value: &str) -> Result<&str, Status> {
    let value = value.trim();
    if value.is_empty() || value.len() > 100 || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(
            "customer_id",
            "is required: up to 100 printable characters",
        ));
    }
    Ok(value)
}

fn channel_to_proto(c: Channel) -> pb::ChannelKind {
    match c {
        Channel::Email => pb::ChannelKind::Email,
        Channel::Sms => pb::ChannelKind::Sms,
        Channel::Push => pb::ChannelKind::Push,
        Channel::InApp => pb::ChannelKind::InApp,
    }
}

fn channel_from_proto(value: i32) -> Result<Channel, Status> {
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

fn preferences_from_proto(p: pb::Preferences) -> Result<Preferences, Status> {
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

fn preferences_to_proto(customer_id: &str, p: &Preferences, version: u64) -> pb::Preferences {
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

fn inbox_to_proto(customer_id: &str, item: InboxItem) -> pb::Notification {
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

fn delivery_to_proto(id: &str, n: &NotificationState) -> pb::Delivery {
    let m = &n.message;
    pb::Delivery {
        notification: Some(pb::Notification {
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
        }),
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

fn notification_id(value: &str) -> Result<&str, Status> {
    let value = value.trim();
    if value.is_empty() {
        return Err(invalid("notification_id", "is required"));
    }
    Ok(value)
}

type Answer<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl NotificationService for NotificationApi {
    async fn set_preferences(&self, request: Request<pb::Preferences>) -> Answer<pb::Preferences> {
        let ctx = self.context(&request)?;
        let p = request.into_inner();
        let id = customer(&p.customer_id)?.to_owned();
        let preferences = preferences_from_proto(p)?;
        let (saved, version) = self
            .app
            .set_preferences(&id, preferences, &ctx)
            .await
            .map_err(status)?;
        Ok(Response::new(preferences_to_proto(&id, &saved, version)))
    }

    async fn get_preferences(&self, request: Request<pb::CustomerRef>) -> Answer<pb::Preferences> {
        let id = customer(&request.get_ref().customer_id)?;
        let (p, version) = self.app.preferences(id).await.map_err(status)?;
        Ok(Response::new(preferences_to_proto(id, &p, version)))
    }

    async fn list_notifications(
        &self,
        request: Request<pb::ListNotificationsRequest>,
    ) -> Answer<pb::ListNotificationsResponse> {
        let r = request.into_inner();
        let id = customer(&r.customer_id)?;
        let size = match r.page_size {
            0 => 20,
            n @ 1..=100 => n,
            _ => return Err(invalid("page_size", "must be at most 100")),
        };
        let before = if r.page_token.is_empty() {
            None
        } else {
            Some(
                r.page_token
                    .parse::<i64>()
                    .map_err(|_| invalid("page_token", "is not one this service gave"))?,
            )
        };
        let (items, unread) = self.app.inbox(id, before, size).await.map_err(status)?;
        let next = if items.len() == size as usize {
            items.last().map(|i| i.seq.to_string()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListNotificationsResponse {
            notifications: items.into_iter().map(|i| inbox_to_proto(id, i)).collect(),
            next_page_token: next,
            unread,
        }))
    }

    async fn mark_read(
        &self,
        request: Request<pb::MarkReadRequest>,
    ) -> Answer<pb::MarkReadResponse> {
        let ctx = self.context(&request)?;
        let r = request.into_inner();
        let id = customer(&r.customer_id)?;
        if r.notification_ids.is_empty() || r.notification_ids.len() > 100 {
            return Err(invalid("notification_ids", "1 to 100 ids are required"));
        }
        let mut marked = 0;
        for n in &r.notification_ids {
            if self
                .app
                .mark_read(id, notification_id(n)?, &ctx)
                .await
                .map_err(status)?
            {
                marked += 1;
            }
        }
        Ok(Response::new(pb::MarkReadResponse { marked }))
    }

    type WatchNotificationsStream =
        std::pin::Pin<Box<dyn futures::Stream<Item = Result<pb::Notification, Status>> + Send>>;

    async fn watch_notifications(
        &self,
        request: Request<pb::CustomerRef>,
    ) -> Answer<Self::WatchNotificationsStream> {
        let id = customer(&request.get_ref().customer_id)?.to_owned();
        let app = self.app.clone();
        let mut seen = app.inbox_head(&id).await.map_err(status)?;
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            loop {
                // Registered before the read, so an append in between still wakes us.
                let appended = app.store().appended().notified();
                let items = match app.inbox_after(&id, seen).await {
                    Ok(items) => items,
                    Err(error) => {
                        let _ = tx.send(Err(status(error))).await;
                        return;
                    }
                };
                for item in items {
                    seen = seen.max(item.seq);
                    if tx.send(Ok(inbox_to_proto(&id, item))).await.is_err() {
                        return; // the app went away
                    }
                }
                tokio::select! {
                    () = appended => {}
                    () = tokio::time::sleep(Duration::from_millis(250)) => {}
                    () = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(tokio_stream_from(rx))))
    }

    async fn get_delivery(&self, request: Request<pb::NotificationRef>) -> Answer<pb::Delivery> {
        let id = notification_id(&request.get_ref().notification_id)?;
        let (n, _) = self.app.notification(id).await.map_err(status)?;
        Ok(Response::new(delivery_to_proto(id, &n)))
    }

    async fn resend_notification(
        &self,
        request: Request<pb::ResendRequest>,
    ) -> Answer<pb::Delivery> {
        let ctx = self.context(&request)?;
        let r = request.into_inner();
        let id = notification_id(&r.notification_id)?;
        let n = self.app.resend(id, r.reason, &ctx).await.map_err(status)?;
        Ok(Response::new(delivery_to_proto(id, &n)))
    }
}

/// An mpsc receiver as a stream.
fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
