//! `aftersales.notification.v1.NotificationService` over the use cases in
//! [`crate::app`].

use aftersales_core::types::{CustomerId, NotificationId};
use aftersales_eventstore::{CommandContext, Live};
use aftersales_proto::notification as pb;
use aftersales_proto::notification::notification_service_server::NotificationService;
use aftersales_runtime::auth::{Caller, Owner};
use aftersales_runtime::errors::{invalid, status};
use aftersales_runtime::request::Requests;
use tonic::{Request, Response, Status};

use crate::app::Notifications;
use crate::convert::{
    delivery_to_proto, inbox_to_proto, notification_to_proto, preferences_from_proto,
    preferences_to_proto,
};
use crate::domain::DomainError;

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

fn customer(value: &str) -> Result<CustomerId, Status> {
    CustomerId::parse("customer_id", value).map_err(|e| status(e.into()))
}

fn owned_by(customer: &str) -> Owner<'_> {
    Owner {
        customer: Some(customer),
        center: None,
    }
}

/// The customer `value` names, if the caller may act for them.
fn own_customer(caller: &Caller, value: &str) -> Result<CustomerId, Status> {
    let id = customer(value)?;
    if caller.may_touch(owned_by(id.as_str())) {
        Ok(id)
    } else {
        Err(Status::permission_denied(
            "a customer acts on their own account only",
        ))
    }
}

fn notification_id(value: &str) -> Result<NotificationId, Status> {
    NotificationId::parse("notification_id", value).map_err(|e| status(e.into()))
}

type Answer<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl NotificationService for NotificationApi {
    async fn set_preferences(&self, request: Request<pb::Preferences>) -> Answer<pb::Preferences> {
        let ctx = self.context(&request)?;
        let caller = Caller::of(&request);
        let p = request.into_inner();
        let id = own_customer(&caller, &p.customer_id)?;
        let id = id.as_str();
        let preferences = preferences_from_proto(p)?;
        let (saved, version) = self
            .app
            .set_preferences(id, preferences, &ctx)
            .await
            .map_err(status)?;
        Ok(Response::new(preferences_to_proto(id, &saved, version)))
    }

    async fn get_preferences(&self, request: Request<pb::CustomerRef>) -> Answer<pb::Preferences> {
        let id = own_customer(&Caller::of(&request), &request.get_ref().customer_id)?;
        let (p, version) = self.app.preferences(id.as_str()).await.map_err(status)?;
        Ok(Response::new(preferences_to_proto(
            id.as_str(),
            &p,
            version,
        )))
    }

    async fn list_notifications(
        &self,
        request: Request<pb::ListNotificationsRequest>,
    ) -> Answer<pb::ListNotificationsResponse> {
        let caller = Caller::of(&request);
        let r = request.into_inner();
        let id = own_customer(&caller, &r.customer_id)?;
        let id = id.as_str();
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
        let caller = Caller::of(&request);
        let r = request.into_inner();
        let id = own_customer(&caller, &r.customer_id)?;
        let id = id.as_str();
        if r.notification_ids.is_empty() || r.notification_ids.len() > 100 {
            return Err(invalid("notification_ids", "1 to 100 ids are required"));
        }
        let mut marked = 0;
        for n in &r.notification_ids {
            if self
                .app
                .mark_read(id, notification_id(n)?.as_str(), &ctx)
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
        let id = own_customer(&Caller::of(&request), &request.get_ref().customer_id)?.to_string();
        let permit = self.requests.live_stream(&request)?;
        let app = self.app.clone();
        // Messages from now on: those the log's follower hands over from here.
        let mut inbox = app.watch_inbox(&id);
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            // The caller's place among the live streams, until this stream ends.
            let _permit = permit;
            let mut seen = 0;
            loop {
                let next = tokio::select! {
                    next = inbox.next() => next,
                    () = tx.closed() => return,
                };
                let items = match next {
                    Live::Event(event) => {
                        seen = seen.max(event.position);
                        let notification = event
                            .stream_id
                            .as_str()
                            .strip_prefix("notification-")
                            .unwrap_or_default();
                        app.notification(notification)
                            .await
                            .map(|(n, _)| vec![notification_to_proto(notification, &n)])
                    }
                    // Fallen behind: what the inbox holds after the last one sent.
                    Live::Missed => app
                        .inbox_after(&id, i64::try_from(seen).unwrap_or(i64::MAX))
                        .await
                        .map(|items| {
                            items
                                .into_iter()
                                .map(|item| {
                                    seen = seen.max(u64::try_from(item.seq).unwrap_or(0));
                                    inbox_to_proto(&id, item)
                                })
                                .collect()
                        }),
                    Live::Closed => return,
                };
                let items = match items {
                    Ok(items) => items,
                    Err(error) => {
                        let _ = tx.send(Err(status(error))).await;
                        return;
                    }
                };
                for item in items {
                    if tx.send(Ok(item)).await.is_err() {
                        return; // the caller went away
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(tokio_stream_from(rx))))
    }

    async fn get_delivery(&self, request: Request<pb::NotificationRef>) -> Answer<pb::Delivery> {
        let caller = Caller::of(&request);
        let id = notification_id(&request.get_ref().notification_id)?;
        let (n, _) = self.app.notification(id.as_str()).await.map_err(status)?;
        // Another customer's message answers as one that does not exist.
        if !caller.may_touch(owned_by(&n.message.customer_id)) {
            return Err(status(
                DomainError::NotFound(format!("notification {id}")).into(),
            ));
        }
        Ok(Response::new(delivery_to_proto(id.as_str(), &n)))
    }

    async fn resend_notification(
        &self,
        request: Request<pb::ResendRequest>,
    ) -> Answer<pb::Delivery> {
        let ctx = self.context(&request)?;
        let r = request.into_inner();
        let id = notification_id(&r.notification_id)?;
        let n = self
            .app
            .resend(id.as_str(), r.reason, &ctx)
            .await
            .map_err(status)?;
        Ok(Response::new(delivery_to_proto(id.as_str(), &n)))
    }

    async fn find_customers(
        &self,
        request: Request<pb::FindCustomersRequest>,
    ) -> Answer<pb::FindCustomersResponse> {
        let address = request.into_inner().address;
        if address.trim().is_empty() || address.len() > 254 {
            return Err(invalid(
                "address",
                "an email address or phone number, at most 254 bytes",
            ));
        }
        let customer_ids = self
            .app
            .customers_at(&address, MAX_FOUND)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::FindCustomersResponse { customer_ids }))
    }

    async fn send_sign_in_code(
        &self,
        request: Request<pb::SignInCodeRequest>,
    ) -> Answer<pb::SignInCodeResponse> {
        let r = request.into_inner();
        if r.address.trim().is_empty() || r.address.len() > 254 {
            return Err(invalid(
                "address",
                "an email address or phone number, at most 254 bytes",
            ));
        }
        if r.code.len() != 6 || !r.code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("code", "six digits"));
        }
        if r.language.len() > 35 {
            return Err(invalid("language", "a BCP 47 tag"));
        }
        match self
            .app
            .send_sign_in_code(&r.address, &r.code, &r.language)
            .await
            .map_err(status)?
        {
            Some(customer_id) => Ok(Response::new(pb::SignInCodeResponse { customer_id })),
            None => Err(Status::not_found("no customer has this address")),
        }
    }
}

/// Most customers one address finds (a shared family address, say).
const MAX_FOUND: i64 = 20;

/// An mpsc receiver as a stream.
fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
