//! The notification use cases: preferences, messages planned and rendered from
//! source events, the send loop's steps, reminders, the inbox.

use std::collections::BTreeMap;
use std::sync::Arc;

use aftersales_core::{Error, ErrorKind, SharedClock};
use aftersales_eventstore::{
    AnyEventStore, CommandContext, CommandHandler, EventStore as _, HandleError, LiveFeed,
    RECENT_STREAMS, RecordedEvent, StoreError, StoreTransaction, StreamId, Watcher, on_read_pool,
};
use chrono::{DateTime, Duration, Utc};
use sqlx::Row as _;
use uuid::Uuid;

use crate::channels::{Outgoing, SendError, Senders};
use crate::domain::Channel;
use crate::domain::DomainError;
use crate::domain::catalog::Kind;
use crate::domain::facts::{self, Order, OrderFacts};
use crate::domain::notification::{self, Message, Notification, NotificationState, Retry, Sent};
use crate::domain::plan::plan;
use crate::domain::preferences::{self, CustomerPreferences, Preferences};
use crate::domain::reminder::{self, Reminder, ReminderState};
use crate::mask;
use crate::projections::timestamp;
use crate::templates::Templates;

/// Why a use case failed: the shared error, its kind saying the gRPC code.
pub type AppResult<T> = Result<T, Error>;

/// A refusal or a lost race: the stream moved on, so there is nothing left to do.
fn settled_elsewhere(error: &Error) -> bool {
    matches!(
        error.kind(),
        ErrorKind::InvalidArgument
            | ErrorKind::NotFound
            | ErrorKind::FailedPrecondition
            | ErrorKind::Conflict
    )
}

fn stream(prefix: &str, id: &str, field: &'static str) -> AppResult<StreamId> {
    StreamId::parse(format!("{prefix}-{id}"))
        .map_err(|e| DomainError::invalid(field, e.to_string()).into())
}

/// How sending is paced.
#[derive(Debug, Clone, Copy)]
pub struct SendSettings {
    pub max_attempts: u32,
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// How long an attempt may take before it counts as interrupted.
    pub lease: Duration,
}

/// A random number in [0, 1) for backoff jitter.
fn jitter() -> f64 {
    #[allow(clippy::cast_precision_loss)] // a fraction is all that is needed
    let fraction = (Uuid::new_v4().as_u128() >> 64) as f64 / u64::MAX as f64;
    fraction
}

/// The notification service's use cases.
#[derive(Debug, Clone)]
pub struct Notifications {
    clock: SharedClock,
    store: AnyEventStore,
    preferences: CommandHandler<CustomerPreferences, AnyEventStore>,
    notifications: CommandHandler<Notification, AnyEventStore>,
    reminders: CommandHandler<Reminder, AnyEventStore>,
    orders: CommandHandler<Order, AnyEventStore>,
    templates: Arc<Templates>,
    senders: Senders,
    settings: SendSettings,
    /// Open inboxes, by customer, fed by one follower of the log.
    inboxes: LiveFeed<String>,
}

/// How soon an open inbox sees a message written by another process (this
/// process's own appends wake the follower at once).
const LIVE_POLL: std::time::Duration = std::time::Duration::from_millis(250);
/// How long a sign-in code request for an unknown address waits for the
/// addresses' read model to catch up with the log.
const SIGN_IN_READ_MODEL_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The customer whose inbox `event` puts a new message in, if it does.
fn inbox_of(event: &RecordedEvent) -> Option<String> {
    if event.stream_version != 1 || !event.stream_id.as_str().starts_with("notification-") {
        return None;
    }
    let notification::Event::NotificationRequested { message, .. } = event.decode().ok()? else {
        return None;
    };
    (message.channel == Channel::InApp).then_some(message.customer_id)
}

impl Notifications {
    pub fn new(
        store: AnyEventStore,
        templates: Arc<Templates>,
        senders: Senders,
        settings: SendSettings,
        clock: SharedClock,
    ) -> Self {
        Self {
            clock,
            preferences: CommandHandler::new(store.clone()).with_recent_states(RECENT_STREAMS),
            notifications: CommandHandler::new(store.clone()).with_recent_states(RECENT_STREAMS),
            reminders: CommandHandler::new(store.clone()).with_recent_states(RECENT_STREAMS),
            orders: CommandHandler::new(store.clone()).with_recent_states(RECENT_STREAMS),
            store,
            templates,
            senders,
            settings,
            inboxes: LiveFeed::new(inbox_of),
        }
    }

    /// Follows the log for every open inbox until `stop`.
    pub async fn feed_inboxes(&self, stop: impl Future<Output = ()>) {
        self.inboxes.run(self.store.clone(), LIVE_POLL, stop).await;
    }

    /// The customer's new inbox messages from now on: each event is the first
    /// of a message's stream.
    pub fn watch_inbox(&self, customer_id: &str) -> Watcher<String> {
        self.inboxes.watch(customer_id.to_owned())
    }

    pub fn store(&self) -> &AnyEventStore {
        &self.store
    }

    /// [`projections::forget_past_retention`] as of the service's clock, hourly,
    /// until the service stops.
    pub async fn forgetting(
        &self,
        retention: crate::projections::Retention,
        shutdown: aftersales_core::Shutdown,
    ) {
        loop {
            let now = self.clock.now();
            match crate::projections::forget_past_retention(&self.store, now, retention).await {
                Ok((0, 0)) => {}
                Ok((removed, blanked)) => {
                    tracing::info!(removed, blanked, "messages past retention forgotten");
                }
                Err(error) => tracing::warn!(%error, "message retention failed"),
            }
            tokio::select! {
                () = shutdown.stopped() => return,
                () = tokio::time::sleep(std::time::Duration::from_secs(3600)) => {}
            }
        }
    }

    pub async fn set_preferences(
        &self,
        customer_id: &str,
        preferences: Preferences,
        ctx: &CommandContext,
    ) -> AppResult<(Preferences, u64)> {
        let handled = self
            .preferences
            .handle(
                &stream("customer", customer_id, "customer_id")?,
                &preferences::Command::Set {
                    customer_id: customer_id.to_owned(),
                    preferences,
                },
                ctx,
            )
            .await?;
        Ok((handled.state.unwrap_or_default(), handled.version))
    }

    /// A customer's preferences; the defaults (version 0) if never set.
    pub async fn preferences(&self, customer_id: &str) -> AppResult<(Preferences, u64)> {
        let loaded = self
            .preferences
            .load(&stream("customer", customer_id, "customer_id")?)
            .await?;
        Ok((loaded.state.unwrap_or_default(), loaded.version))
    }

    /// What is known of an order as `tx` sees it: an order learned earlier in
    /// the same batch of events included.
    pub async fn order_in(
        &self,
        tx: &mut StoreTransaction,
        order_id: &str,
    ) -> AppResult<Option<OrderFacts>> {
        Ok(self
            .orders
            .load_in(tx, &stream("order", order_id, "order_id")?)
            .await?
            .state)
    }

    pub async fn learn_order_in(
        &self,
        tx: &mut StoreTransaction,
        order_id: &str,
        facts: OrderFacts,
        ctx: &CommandContext,
    ) -> AppResult<()> {
        self.orders
            .handle_new_in(
                tx,
                &stream("order", order_id, "order_id")?,
                &facts::Command::Learn(facts),
                ctx,
            )
            .await?;
        Ok(())
    }

    /// Plans and records the messages `source` makes for a customer, in `tx`:
    /// at most one per channel, whatever happens to `source` later.
    pub async fn notify_in(
        &self,
        tx: &mut StoreTransaction,
        source: Uuid,
        kind: Kind,
        customer_id: &str,
        variables: &BTreeMap<String, String>,
        ctx: &CommandContext,
    ) -> AppResult<usize> {
        // An erased customer is not written to again. Asked beside the
        // preferences (another database): a reaction waits for one round trip.
        let erased = async {
            match self.store.sealing() {
                Some(sealing) => sealing
                    .keyring()
                    .is_erased(&sealing.subject(customer_id))
                    .await
                    .map_err(StoreError::from),
                None => Ok(false),
            }
        };
        let (erased, preferences) = tokio::join!(erased, self.preferences(customer_id));
        if erased? {
            return Ok(0);
        }
        let (preferences, _) = preferences?;
        let rendered = self
            .templates
            .render(kind, &preferences.language, variables)?;
        let spec = kind.spec();
        let mut requested = 0;
        for planned in plan(kind, &preferences, ctx.now) {
            let id = Uuid::new_v5(&source, planned.channel.as_str().as_bytes()).to_string();
            let message = Message {
                customer_id: customer_id.to_owned(),
                channel: planned.channel,
                address: planned.address,
                kind,
                topic: spec.topic,
                language: rendered.language.clone(),
                subject: rendered.subject.clone(),
                text: rendered.text.clone(),
                html: rendered.html.clone(),
                urgent: spec.urgent,
                source_event_id: source.to_string(),
            };
            let command = notification::Command::Request {
                message,
                send_at: planned.send_at,
                now: ctx.now,
            };
            let ctx = CommandContext {
                command_id: Some(Uuid::new_v5(&source, format!("request-{id}").as_bytes())),
                ..ctx.clone()
            };
            // Named by the source event and the channel: a new stream.
            let handled = self
                .notifications
                .handle_new_in(
                    tx,
                    &stream("notification", &id, "notification_id")?,
                    &command,
                    &ctx,
                )
                .await?;
            requested += usize::from(!handled.events.is_empty());
        }
        Ok(requested)
    }

    pub async fn reminder(&self, reminder_id: &str) -> AppResult<Option<ReminderState>> {
        Ok(self
            .reminders
            .load(
                &StreamId::parse(reminder_id)
                    .map_err(|e| DomainError::invalid("reminder", e.to_string()))?,
            )
            .await?
            .state)
    }

    /// Schedules or cancels a reminder, in `tx`.
    pub async fn remind_in(
        &self,
        tx: &mut StoreTransaction,
        reminder_id: &str,
        command: reminder::Command,
        ctx: &CommandContext,
    ) -> AppResult<()> {
        let id = StreamId::parse(reminder_id)
            .map_err(|e| DomainError::invalid("reminder", e.to_string()))?;
        self.reminders.handle_in(tx, &id, &command, ctx).await?;
        Ok(())
    }

    /// Fires every reminder due by `ctx.now`: each fires and makes its messages
    /// in one transaction, once. Returns how many fired.
    pub async fn fire_due_reminders(&self, ctx: &CommandContext) -> AppResult<usize> {
        let sql = "SELECT reminder_id FROM reminders WHERE status = 'pending' AND due_at <= $1 \
                   ORDER BY due_at LIMIT 100";
        let due: Vec<String> = on_read_pool!(&self.store, pool => {
            sqlx::query_scalar(sql).bind(timestamp(ctx.now)).fetch_all(pool).await.map_err(StoreError::from)?
        });
        let mut fired = 0;
        for reminder_id in due {
            let id =
                StreamId::parse(reminder_id.clone()).map_err(|e| Error::internal(e.to_string()))?;
            let mut tx = self.store.begin().await?;
            let handled = match self
                .reminders
                .handle_in(&mut tx, &id, &reminder::Command::Fire { now: ctx.now }, ctx)
                .await
            {
                Ok(handled) => handled,
                // Fired or cancelled since the read model was written.
                Err(HandleError::Domain(DomainError::Precondition(_))) => continue,
                Err(e) => return Err(e.into()),
            };
            let Some(reminder) = handled.state.filter(|_| !handled.events.is_empty()) else {
                continue;
            };
            let source = Uuid::new_v5(
                &Uuid::NAMESPACE_OID,
                format!("{reminder_id}#{}", reminder.generation).as_bytes(),
            );
            self.notify_in(
                &mut tx,
                source,
                reminder.kind,
                &reminder.customer_id,
                &reminder.variables,
                ctx,
            )
            .await?;
            tx.commit().await?;
            fired += 1;
        }
        Ok(fired)
    }

    pub async fn notification(&self, id: &str) -> AppResult<(NotificationState, u64)> {
        let loaded = self
            .notifications
            .load(&stream("notification", id, "notification_id")?)
            .await?;
        let state = loaded
            .state
            .ok_or_else(|| DomainError::NotFound(format!("notification {id}")))?;
        Ok((state, loaded.version))
    }

    async fn run(
        &self,
        id: &str,
        command: &notification::Command,
        ctx: &CommandContext,
    ) -> AppResult<(NotificationState, bool)> {
        let handled = self
            .notifications
            .handle(
                &stream("notification", id, "notification_id")?,
                command,
                ctx,
            )
            .await?;
        let changed = !handled.events.is_empty();
        let state = handled
            .state
            .ok_or_else(|| DomainError::NotFound(format!("notification {id}")))?;
        Ok((state, changed))
    }

    pub async fn mark_read(
        &self,
        customer_id: &str,
        id: &str,
        ctx: &CommandContext,
    ) -> AppResult<bool> {
        let command = notification::Command::MarkRead {
            customer_id: customer_id.to_owned(),
            now: ctx.now,
        };
        Ok(self.run(id, &command, ctx).await?.1)
    }

    pub async fn resend(
        &self,
        id: &str,
        reason: String,
        ctx: &CommandContext,
    ) -> AppResult<NotificationState> {
        let command = notification::Command::Resend {
            reason,
            now: ctx.now,
        };
        Ok(self.run(id, &command, ctx).await?.0)
    }

    /// One pass of the send loop: interrupted attempts settled, then every due
    /// notification attempted once. Returns how many were attempted.
    pub async fn send_due(&self, ctx: &CommandContext) -> AppResult<usize> {
        let now = timestamp(ctx.now);
        let expired: Vec<String> = on_read_pool!(&self.store, pool => {
            sqlx::query_scalar(
                "SELECT notification_id FROM notifications WHERE status = 'sending' AND lease_until <= $1",
            )
            .bind(now.clone())
            .fetch_all(pool)
            .await.map_err(StoreError::from)?
        });
        for id in expired {
            match self
                .run(&id, &notification::Command::Interrupt { now: ctx.now }, ctx)
                .await
            {
                Ok((state, true)) => tracing::warn!(
                    notification_id = %id,
                    status = state.status.as_str(),
                    "an attempt was interrupted"
                ),
                Ok(_) => {}
                Err(e) if settled_elsewhere(&e) => {}
                Err(e) => return Err(e),
            }
        }
        let due: Vec<(String, String)> = on_read_pool!(&self.store, pool => {
            sqlx::query(
                "SELECT notification_id, channel FROM notifications \
                 WHERE status IN ('scheduled', 'retrying') AND next_attempt_at <= $1 \
                 ORDER BY next_attempt_at LIMIT 64",
            )
            .bind(now)
            .fetch_all(pool)
            .await.map_err(StoreError::from)?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>().map_err(StoreError::from)?
        });
        // Email goes one at a time: an email cut off by a crash is never sent
        // again (SMTP cannot deduplicate), so at most one is ever in doubt. SMS
        // and push carry an idempotency key and go together.
        let (emails, others): (Vec<_>, Vec<_>) = due
            .into_iter()
            .partition(|(_, channel)| channel == Channel::Email.as_str());
        let concurrent =
            futures::future::join_all(others.iter().map(|(id, _)| self.attempt(id, ctx)));
        let sequential = async {
            let mut results = Vec::with_capacity(emails.len());
            for (id, _) in &emails {
                results.push(self.attempt(id, ctx).await);
            }
            results
        };
        let (concurrent, sequential) = tokio::join!(concurrent, sequential);
        let mut attempted = 0;
        for result in concurrent.into_iter().chain(sequential) {
            match result {
                Ok(true) => attempted += 1,
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, "a send attempt could not be recorded"),
            }
        }
        Ok(attempted)
    }

    /// Starts, makes and records one attempt. `false` if another sender took it.
    async fn attempt(&self, id: &str, ctx: &CommandContext) -> AppResult<bool> {
        let start = notification::Command::StartAttempt {
            now: ctx.now,
            lease: self.settings.lease,
        };
        let (state, number) = match self.run(id, &start, ctx).await {
            Ok((state, true)) => {
                let number = state.attempts.last().map_or(1, |a| a.number);
                (state, number)
            }
            Ok((_, false)) => return Ok(false),
            Err(e) if settled_elsewhere(&e) => return Ok(false),
            Err(e) => return Err(e),
        };
        let m = &state.message;
        let outgoing = Outgoing {
            id: id.to_owned(),
            address: m.address.clone(),
            subject: m.subject.clone(),
            text: m.text.clone(),
            html: m.html.clone(),
        };
        let to = mask::address(m.channel, &m.address);
        let sent = match self.senders.for_channel(m.channel) {
            None => Sent::Failed {
                error: format!("no {} provider is configured", m.channel.as_str()),
                retryable: false,
            },
            Some(sender) => match sender.send(&outgoing).await {
                Ok(()) => Sent::Delivered,
                Err(SendError::Retry(error)) => Sent::Failed {
                    error,
                    retryable: true,
                },
                Err(SendError::Rejected(error)) => Sent::Failed {
                    error,
                    retryable: false,
                },
            },
        };
        let finished = self.now();
        match &sent {
            Sent::Delivered => {
                tracing::info!(notification_id = %id, channel = m.channel.as_str(), %to, number, "delivered")
            }
            Sent::Failed { error, .. } => {
                tracing::warn!(notification_id = %id, channel = m.channel.as_str(), %to, number, %error, "attempt failed")
            }
        }
        let finish = notification::Command::Finish {
            number,
            sent,
            now: finished,
            retry: Retry {
                max_attempts: self.settings.max_attempts,
                base: self.settings.retry_base,
                max: self.settings.retry_max,
                jitter: jitter(),
            },
        };
        let ctx = CommandContext {
            now: finished,
            ..ctx.clone()
        };
        self.run(id, &finish, &ctx).await?;
        Ok(true)
    }

    /// The time, as this service reads it (the system's, or a test's).
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The customers whose registered email or phone `address` is (at most
    /// `limit`), by id.
    pub async fn customers_at(&self, address: &str, limit: i64) -> AppResult<Vec<String>> {
        let normalized = aftersales_core::types::sign_in_address(address);
        let sql = "SELECT customer_id FROM sign_in_addresses WHERE address_digest = $1 \
                   ORDER BY customer_id LIMIT $2";
        Ok(on_read_pool!(&self.store, pool => {
            sqlx::query_scalar(sql)
                .bind(crate::projections::address_digest(&normalized))
                .bind(limit)
                .fetch_all(pool)
                .await
                .map_err(StoreError::from)?
        }))
    }

    /// Sends `code` to the customer whose email or phone `address` is, in
    /// `language` (theirs when empty), at once and without a trace in the log
    /// or the inbox: a code is a key. `None` when the address is nobody's, or
    /// more than one customer's.
    pub async fn send_sign_in_code(
        &self,
        address: &str,
        code: &str,
        language: &str,
    ) -> AppResult<Option<String>> {
        let normalized = aftersales_core::types::sign_in_address(address);
        let mut customers = self.customers_at(address, 2).await?;
        if customers.is_empty()
            && aftersales_eventstore::projection::wait_for(
                &self.store,
                crate::projections::SignInAddresses::NAME,
                SIGN_IN_READ_MODEL_WAIT,
            )
            .await?
        {
            // An address registered a moment ago may just have reached the read model.
            customers = self.customers_at(address, 2).await?;
        }
        let [customer] = customers.as_slice() else {
            return Ok(None);
        };
        let (preferences, _) = self.preferences(customer).await?;
        let same = |registered: &str| {
            !registered.is_empty()
                && aftersales_core::types::sign_in_address(registered) == normalized
        };
        let (channel, to) = if same(&preferences.email) {
            (Channel::Email, preferences.email.clone())
        } else if same(&preferences.phone) {
            (Channel::Sms, preferences.phone.clone())
        } else {
            return Ok(None); // changed since the read model saw it
        };
        let sender = self.senders.for_channel(channel).ok_or_else(|| {
            Error::unavailable(format!("no {} provider is configured", channel.as_str()))
        })?;
        let language = if language.is_empty() {
            preferences.language.as_str()
        } else {
            language
        };
        let variables = BTreeMap::from([
            ("code".to_owned(), code.to_owned()),
            ("minutes".to_owned(), "10".to_owned()),
        ]);
        let rendered = self
            .templates
            .render(Kind::SignInCode, language, &variables)?;
        sender
            .send(&Outgoing {
                id: Uuid::new_v4().to_string(),
                address: to,
                subject: rendered.subject,
                text: rendered.text,
                html: rendered.html,
            })
            .await
            .map_err(|e| Error::unavailable(format!("sending the sign-in code: {e}")))?;
        Ok(Some(customer.clone()))
    }

    /// A page of a customer's inbox, newest first, and the unread count.
    pub async fn inbox(
        &self,
        customer_id: &str,
        before_seq: Option<i64>,
        limit: u32,
    ) -> AppResult<(Vec<InboxItem>, u32)> {
        let sql = "SELECT notification_id, kind, topic, language, subject, body, urgent, is_read, \
                   created_at, status, source_event_id, seq FROM notifications \
                   WHERE customer_id = $1 AND channel = 'in_app' AND seq < $2 \
                   ORDER BY seq DESC LIMIT $3";
        let unread_sql = "SELECT COUNT(*) FROM notifications WHERE customer_id = $1 \
                          AND channel = 'in_app' AND is_read = 0";
        let (rows, unread): (Vec<InboxItem>, i64) = on_read_pool!(&self.store, pool => {
            let rows = sqlx::query(sql)
                .bind(customer_id)
                .bind(before_seq.unwrap_or(i64::MAX))
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await.map_err(StoreError::from)?
                .iter()
                .map(InboxItem::from_row)
                .collect::<Result<_, sqlx::Error>>().map_err(StoreError::from)?;
            let unread = sqlx::query_scalar(unread_sql).bind(customer_id).fetch_one(pool).await.map_err(StoreError::from)?;
            (rows, unread)
        });
        Ok((rows, u32::try_from(unread).unwrap_or(u32::MAX)))
    }

    /// Inbox items after `after_seq`, oldest first: what a watcher has not seen.
    pub async fn inbox_after(
        &self,
        customer_id: &str,
        after_seq: i64,
    ) -> AppResult<Vec<InboxItem>> {
        let sql = "SELECT notification_id, kind, topic, language, subject, body, urgent, is_read, \
                   created_at, status, source_event_id, seq FROM notifications \
                   WHERE customer_id = $1 AND channel = 'in_app' AND seq > $2 ORDER BY seq LIMIT 100";
        Ok(on_read_pool!(&self.store, pool => {
            sqlx::query(sql)
                .bind(customer_id)
                .bind(after_seq)
                .fetch_all(pool)
                .await.map_err(StoreError::from)?
                .iter()
                .map(InboxItem::from_row)
                .collect::<Result<_, sqlx::Error>>().map_err(StoreError::from)?
        }))
    }

    /// The newest inbox position of a customer (0 for none).
    pub async fn inbox_head(&self, customer_id: &str) -> AppResult<i64> {
        let sql = "SELECT COALESCE(MAX(seq), 0) FROM notifications WHERE customer_id = $1 AND channel = 'in_app'";
        Ok(on_read_pool!(&self.store, pool => {
            sqlx::query_scalar(sql).bind(customer_id).fetch_one(pool).await.map_err(StoreError::from)?
        }))
    }
}

/// One inbox row.
#[derive(Debug, Clone)]
pub struct InboxItem {
    pub notification_id: String,
    pub kind: String,
    pub topic: String,
    pub language: String,
    pub subject: String,
    pub body: String,
    pub urgent: bool,
    pub read: bool,
    pub created_at: DateTime<Utc>,
    pub status: String,
    pub source_event_id: String,
    pub seq: i64,
}

impl InboxItem {
    fn from_row<R: sqlx::Row>(row: &R) -> Result<Self, sqlx::Error>
    where
        for<'r> &'r str: sqlx::ColumnIndex<R>,
        for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> i32: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    {
        let created: String = row.try_get("created_at")?;
        Ok(Self {
            notification_id: row.try_get("notification_id")?,
            kind: row.try_get("kind")?,
            topic: row.try_get("topic")?,
            language: row.try_get("language")?,
            subject: row.try_get("subject")?,
            body: row.try_get("body")?,
            urgent: row.try_get::<i32, _>("urgent")? != 0,
            read: row.try_get::<i32, _>("is_read")? != 0,
            created_at: DateTime::parse_from_rfc3339(&created)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            status: row.try_get("status")?,
            source_event_id: row.try_get("source_event_id")?,
            seq: row.try_get("seq")?,
        })
    }
}
