//! What notification holds about a customer: their preferences (how to reach
//! them) and their messages. Erasure destroys the key their addresses and
//! messages were sealed with, blanks the inbox's copies and forgets the
//! digests customers sign in by; that each message was sent stays.

use aftersales_core::Error;
use aftersales_eventstore::{EventStore as _, StoreError, on_read_pool};
use aftersales_runtime::privacy::{Answer, CustomerRecords, Erased, Kept, Obligation, Record};
use sqlx::Row as _;

use crate::app::Notifications;

/// Notification's part in a customer's rights.
#[derive(Debug, Clone)]
pub struct NotificationRecords {
    app: Notifications,
}

impl NotificationRecords {
    pub fn new(app: Notifications) -> Self {
        Self { app }
    }
}

impl CustomerRecords for NotificationRecords {
    fn export<'a>(&'a self, customer: &'a str) -> Answer<'a, Vec<Record>> {
        Box::pin(async move {
            let (preferences, version) = self.app.preferences(customer).await?;
            let mut records = Vec::new();
            if version > 0 {
                records.push(Record {
                    kind: "preferences",
                    id: customer.to_owned(),
                    data: serde_json::to_value(&preferences)
                        .map_err(|e| Error::internal("preferences").with_source(e))?,
                });
            }
            let rows = on_read_pool!(self.app.store(), pool => {
                sqlx::query(
                    "SELECT notification_id, channel, kind, language, subject, body, status, \
                     created_at FROM notifications WHERE customer_id = $1 ORDER BY seq",
                )
                .bind(customer)
                .fetch_all(pool)
                .await
                .map_err(StoreError::from)?
                .iter()
                .map(|row| {
                    let text = |name: &str| row.try_get::<String, _>(name);
                    Ok::<_, sqlx::Error>(Record {
                        kind: "message",
                        id: text("notification_id")?,
                        data: serde_json::json!({
                            "channel": text("channel")?,
                            "kind": text("kind")?,
                            "language": text("language")?,
                            "subject": text("subject")?,
                            "body": text("body")?,
                            "status": text("status")?,
                            "created_at": text("created_at")?,
                        }),
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(StoreError::from)?
            });
            records.extend(rows);
            Ok(records)
        })
    }

    /// A message still on its way needs its address until it is sent or given up.
    fn obligations<'a>(&'a self, customer: &'a str) -> Answer<'a, Vec<Obligation>> {
        Box::pin(async move {
            let ids: Vec<String> = on_read_pool!(self.app.store(), pool => {
                sqlx::query_scalar(
                    "SELECT notification_id FROM notifications WHERE customer_id = $1 \
                     AND status IN ('scheduled', 'sending', 'retrying') AND channel <> 'in_app' \
                     ORDER BY seq LIMIT 100",
                )
                .bind(customer)
                .fetch_all(pool)
                .await
                .map_err(StoreError::from)?
            });
            Ok(ids
                .into_iter()
                .map(|id| Obligation {
                    what: "a message still being sent to the customer".into(),
                    id,
                })
                .collect())
        })
    }

    fn subjects<'a>(&'a self, _: &'a str) -> Answer<'a, Vec<String>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn scrub<'a>(&'a self, customer: &'a str) -> Answer<'a, Vec<Erased>> {
        Box::pin(async move {
            // At once, for the receipt's counts; each read model does it again
            // when it reaches `CustomerErased`, after anything it copied before.
            let mut tx = self.app.store().begin().await?;
            let messages = crate::projections::blank_messages(&mut tx, customer).await?;
            let digests = crate::projections::drop_sign_in_digests(&mut tx, customer).await?;
            tx.commit().await?;
            Ok(vec![
                Erased {
                    what: "messages: their address, subject and text".into(),
                    count: messages,
                },
                Erased {
                    what: "email address, phone number and push token".into(),
                    count: u64::from(digests > 0),
                },
            ])
        })
    }

    fn kept(&self) -> Vec<Kept> {
        vec![Kept {
            what: "that each message was sent: its kind, channel, time and outcome".into(),
            why: "proof that notices the law requires went out; without address or content".into(),
        }]
    }
}
