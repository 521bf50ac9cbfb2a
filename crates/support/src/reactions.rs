//! What support does when other services' events arrive, exactly once each
//! (the inbox and support's new events commit together): it keeps what it
//! needs of each repair order and opens a case on the customer's behalf when
//! the repair goes wrong.
//!
//! - repair `RepairOrderOpened`: the order's customer, country and phone noted.
//! - repair `QcFailed`: counted; at the second failure a case is opened.
//! - repair `RepairOrderOpened`, `WaitingForParts`, `QuoteIssued`: a clock
//!   from `legal.toml` starts (the repair's time, the parts' delivery, the
//!   quote's answer); `Diagnosed` (not covered), `PartArrived` (the last),
//!   `QuoteApproved`, `QuoteDeclined`, `ReadyForReturn` stop them. A clock that
//!   runs out first is found by the sweep ([`SupportReactions::sweep_deadlines`])
//!   and gives the desk a case, once.
//! - repair `RepairStarted`: its technician noted.
//! - repair `DeviceCollected`, `ReturnDelivered`: the phone is back with its
//!   customer; a satisfaction survey about the repair is sent, once.
//! - repair `DeviceCollected`, `ReturnDelivered`, `RepairCancelled`: the order
//!   is done; nothing more is opened for it.
//! - logistics `ShipmentStalled` for a repair's parcel: a case, once per parcel.
//!
//! A case the platform opens has an id derived from what it is about, so a
//! redelivered or replayed event finds it open and opens nothing.

use aftersales_eventstore::{
    AnyEventStore, CommandContext, CommandHandler, EventStore as _, StoreTransaction, StreamId,
};
use aftersales_messaging::{ConfigError, Handler, HandlerError, InboundEvent, Subscription};
use aftersales_proto::common::device_id;
use aftersales_proto::logistics as lpb;
use aftersales_proto::repair as rpb;
use prost::Name;

use crate::app::{NewCase, Support};
use crate::domain::case::{Category, Channel, Priority};
use crate::domain::legal::DeadlineKind;
use crate::domain::survey::{self, About};
use crate::domain::watch::{self, Command, Deadline, QC_FAILURES_FOR_A_CASE, RepairWatch, Stopped};

/// The durable consumers, one per source service.
pub fn subscriptions() -> Result<Vec<Subscription>, ConfigError> {
    Ok(vec![
        Subscription::new(
            "support-from-repair",
            "repair",
            [
                <rpb::RepairOrderOpened as Name>::NAME,
                <rpb::RepairStarted as Name>::NAME,
                <rpb::Diagnosed as Name>::NAME,
                <rpb::WaitingForParts as Name>::NAME,
                <rpb::PartArrived as Name>::NAME,
                <rpb::QuoteIssued as Name>::NAME,
                <rpb::QuoteApproved as Name>::NAME,
                <rpb::QuoteDeclined as Name>::NAME,
                <rpb::ReadyForReturn as Name>::NAME,
                <rpb::QcFailed as Name>::NAME,
                <rpb::DeviceCollected as Name>::NAME,
                <rpb::ReturnDelivered as Name>::NAME,
                <rpb::RepairCancelled as Name>::NAME,
            ],
        )?,
        Subscription::new(
            "support-from-logistics",
            "logistics",
            [<lpb::ShipmentStalled as Name>::NAME],
        )?,
    ])
}

fn watch_stream(order_id: &str) -> Result<StreamId, HandlerError> {
    StreamId::parse(format!("watch-{}", order_id.trim())).map_err(HandlerError::permanent)
}

/// The id of the case the platform opens about `what`: the same every time.
pub fn platform_case_id(what: &str) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("support-case:{what}").as_bytes(),
    )
    .to_string()
}

/// What went wrong with a repair, for the case the platform opens about it.
struct Trouble {
    /// What the case is about, once: its id derives from it.
    about: String,
    category: Category,
    priority: Priority,
    subject: &'static str,
    text: String,
}

/// Applies repair's and logistics' events: one handler for every subscription.
#[derive(Debug, Clone)]
pub struct SupportReactions {
    watches: CommandHandler<RepairWatch, AnyEventStore>,
    app: Support,
    region: String,
}

impl SupportReactions {
    pub fn new(store: AnyEventStore, app: Support, region: impl Into<String>) -> Self {
        Self {
            watches: CommandHandler::new(store),
            app,
            region: region.into(),
        }
    }

    async fn watch(
        &self,
        event: &InboundEvent,
        tx: &mut StoreTransaction,
        order_id: &str,
        command: Command,
    ) -> Result<watch::WatchState, HandlerError> {
        // Each command of one event has its own id: a second would otherwise
        // be taken for a retry of the first.
        let what = match &command {
            Command::StartDeadline(_) => b"deadline-start".as_slice(),
            Command::StopDeadline { .. } => b"deadline-stop",
            Command::Note { .. }
            | Command::NoteTechnician { .. }
            | Command::QcFailed
            | Command::MissDeadline { .. }
            | Command::Close => b"watch",
        };
        let stream = watch_stream(order_id)?;
        let ctx = event.reaction_context(what, &self.region);
        match self.watches.handle_in(tx, &stream, &command, &ctx).await {
            Ok(handled) => handled
                .state
                .ok_or_else(|| HandlerError::permanent("a repair watch without state")),
            // Its opening comes on another consumer and may not be here yet:
            // later (and, if it never comes, to the dead letters).
            Err(aftersales_eventstore::HandleError::Domain(
                crate::domain::DomainError::NotFound(_),
            )) => Err(HandlerError::transient(format!(
                "repair order {order_id}: its opening has not arrived yet"
            ))),
            Err(error) => Err(error.into()),
        }
    }

    /// Opens the platform's case about `watch`'s order, its command id derived
    /// from `ctx`'s and what it is about.
    async fn open_for(
        &self,
        ctx: &CommandContext,
        tx: &mut StoreTransaction,
        watch: &watch::WatchState,
        trouble: Trouble,
    ) -> Result<(), HandlerError> {
        let Trouble {
            about,
            category,
            priority,
            subject,
            text,
        } = trouble;
        let language = self.app.teams().language_of(&watch.country).to_owned();
        let new = NewCase {
            customer_id: watch.customer_id.clone(),
            country: watch.country.clone(),
            language,
            channel: Channel::Platform,
            category,
            priority,
            device_imei: watch.device_imei.clone(),
            repair_order_id: Some(watch.order_id.clone()),
            source: Some(about.clone()),
            subject: subject.to_owned(),
            text,
            attachments: Vec::new(),
        };
        let ctx = CommandContext {
            command_id: ctx
                .command_id
                .map(|id| uuid::Uuid::new_v5(&id, about.as_bytes())),
            ..ctx.clone()
        };
        let case_id = platform_case_id(&about);
        Ok(self.app.open_in(tx, &case_id, new, &ctx).await?)
    }

    /// The watch of `order_id` as `tx` sees it; a transient error until its
    /// opening has arrived.
    async fn loaded(
        &self,
        tx: &mut StoreTransaction,
        order_id: &str,
    ) -> Result<watch::WatchState, HandlerError> {
        let stream = watch_stream(order_id)?;
        self.watches
            .load_in(tx, &stream)
            .await?
            .state
            .ok_or_else(|| {
                HandlerError::transient(format!(
                    "repair order {order_id}: its opening has not arrived yet"
                ))
            })
    }

    /// Starts `kind`'s clock on `watch`'s order at the event's time, under the
    /// rule in force in its country; nothing where none applies.
    async fn start(
        &self,
        event: &InboundEvent,
        tx: &mut StoreTransaction,
        watch: &watch::WatchState,
        kind: DeadlineKind,
    ) -> Result<(), HandlerError> {
        if watch.country.trim().is_empty() {
            return Ok(()); // opened before repair said where it is serviced
        }
        let Some(deadline) = self
            .app
            .deadline(kind, &watch.country, event.metadata.recorded_at)
        else {
            return Ok(());
        };
        let command = Command::StartDeadline(deadline);
        self.watch(event, tx, &watch.order_id, command).await?;
        Ok(())
    }

    /// Records the clocks that ran out by `now`, at most `limit` of them, each
    /// with the desk's case about it, once however many replicas sweep.
    pub async fn sweep_deadlines(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        limit: u32,
    ) -> Result<usize, HandlerError> {
        let due = crate::projections::deadlines_due(self.app.store(), now, limit).await?;
        let mut missed = 0;
        for (order_id, kind, due_at) in due {
            let stream = watch_stream(&order_id)?;
            let command = Command::MissDeadline { kind, now };
            // The same id on every replica: the second to try finds it done.
            let name = format!(
                "deadline-missed:{order_id}:{}:{}",
                kind.as_str(),
                due_at.timestamp()
            );
            let mut ctx = CommandContext::system("system:deadline-sweep", self.region.clone(), now);
            ctx.command_id = Some(uuid::Uuid::new_v5(
                &uuid::Uuid::NAMESPACE_OID,
                name.as_bytes(),
            ));
            let mut tx = self.app.store().begin().await?;
            let before = self.watches.load_in(&mut tx, &stream).await?.state;
            let Some(deadline) = before.and_then(|w| w.deadlines.get(&kind).cloned()) else {
                continue; // stopped or missed meanwhile
            };
            let handled = self
                .watches
                .handle_in(&mut tx, &stream, &command, &ctx)
                .await?;
            let Some(watch) = handled.state.filter(|_| !handled.events.is_empty()) else {
                continue;
            };
            let trouble = deadline_trouble(&watch, &deadline);
            self.open_for(&ctx, &mut tx, &watch, trouble).await?;
            tx.commit().await?;
            missed += 1;
        }
        Ok(missed)
    }

    async fn repair(
        &self,
        event: &InboundEvent,
        tx: &mut StoreTransaction,
    ) -> Result<(), HandlerError> {
        let decode = |e: prost::DecodeError| HandlerError::permanent(e);
        match event.event_type.as_str() {
            <rpb::RepairOrderOpened as Name>::NAME => {
                // Empty on orders opened before repair published it: their
                // cases go to the front line for every country.
                let opened: rpb::RepairOrderOpened = event.proto().map_err(decode)?;
                let device_imei = match opened.device_id.and_then(|d| d.kind) {
                    Some(device_id::Kind::Imei(imei)) => Some(imei),
                    _ => None,
                };
                let command = Command::Note {
                    order_id: opened.order_id.clone(),
                    customer_id: opened.customer_id,
                    country: opened.country,
                    device_imei,
                    service_center_id: opened.service_center_id,
                };
                let watch = self.watch(event, tx, &opened.order_id, command).await?;
                self.start(event, tx, &watch, DeadlineKind::Repair).await
            }
            <rpb::Diagnosed as Name>::NAME => {
                let diagnosed: rpb::Diagnosed = event.proto().map_err(decode)?;
                let coverage = diagnosed.coverage.unwrap_or_default();
                if !coverage.decided || coverage.covered {
                    return Ok(());
                }
                let stop = Command::StopDeadline {
                    kind: DeadlineKind::Repair,
                    reason: Stopped::NotApplicable,
                };
                self.watch(event, tx, &diagnosed.order_id, stop).await?;
                Ok(())
            }
            <rpb::WaitingForParts as Name>::NAME => {
                let waiting: rpb::WaitingForParts = event.proto().map_err(decode)?;
                let watch = self.loaded(tx, &waiting.order_id).await?;
                self.start(event, tx, &watch, DeadlineKind::Parts).await
            }
            <rpb::PartArrived as Name>::NAME => {
                let arrived: rpb::PartArrived = event.proto().map_err(decode)?;
                if !arrived.all_arrived {
                    return Ok(());
                }
                let stop = Command::StopDeadline {
                    kind: DeadlineKind::Parts,
                    reason: Stopped::Met,
                };
                self.watch(event, tx, &arrived.order_id, stop).await?;
                Ok(())
            }
            <rpb::QuoteIssued as Name>::NAME => {
                let issued: rpb::QuoteIssued = event.proto().map_err(decode)?;
                let watch = self.loaded(tx, &issued.order_id).await?;
                self.start(event, tx, &watch, DeadlineKind::Quote).await
            }
            <rpb::QuoteApproved as Name>::NAME | <rpb::QuoteDeclined as Name>::NAME => {
                // Both name their order first.
                let order_id = if event.event_type == <rpb::QuoteApproved as Name>::NAME {
                    event
                        .proto::<rpb::QuoteApproved>()
                        .map_err(decode)?
                        .order_id
                } else {
                    event
                        .proto::<rpb::QuoteDeclined>()
                        .map_err(decode)?
                        .order_id
                };
                let stop = Command::StopDeadline {
                    kind: DeadlineKind::Quote,
                    reason: Stopped::Met,
                };
                self.watch(event, tx, &order_id, stop).await?;
                Ok(())
            }
            <rpb::ReadyForReturn as Name>::NAME => {
                // The phone is ready: the repair's time is met; what else ran
                // (a part, a quote) no longer matters.
                let ready: rpb::ReadyForReturn = event.proto().map_err(decode)?;
                let watch = self.loaded(tx, &ready.order_id).await?;
                for kind in watch.deadlines.keys() {
                    let reason = if *kind == DeadlineKind::Repair {
                        Stopped::Met
                    } else {
                        Stopped::NotApplicable
                    };
                    let stop = Command::StopDeadline {
                        kind: *kind,
                        reason,
                    };
                    let ctx = event.reaction_context(kind.as_str().as_bytes(), &self.region);
                    let stream = watch_stream(&ready.order_id)?;
                    self.watches.handle_in(tx, &stream, &stop, &ctx).await?;
                }
                Ok(())
            }
            <rpb::RepairStarted as Name>::NAME => {
                let started: rpb::RepairStarted = event.proto().map_err(decode)?;
                if started.technician.trim().is_empty() {
                    return Ok(()); // published before repair named technicians
                }
                let command = Command::NoteTechnician {
                    technician: started.technician,
                };
                self.watch(event, tx, &started.order_id, command).await?;
                Ok(())
            }
            <rpb::QcFailed as Name>::NAME => {
                let failed: rpb::QcFailed = event.proto().map_err(decode)?;
                let watch = self
                    .watch(event, tx, &failed.order_id, Command::QcFailed)
                    .await?;
                if watch.qc_failures != QC_FAILURES_FOR_A_CASE {
                    return Ok(());
                }
                let about = format!("qc-failed-twice:{}", watch.order_id);
                let text = format!(
                    "Repair {} failed quality control {} times. Call the customer, \
                     explain the delay and offer what the policy allows.",
                    watch.order_id, watch.qc_failures
                );
                let trouble = Trouble {
                    about,
                    category: Category::Hardware,
                    priority: Priority::High,
                    subject: "Repair failed quality control twice",
                    text,
                };
                let ctx = event.reaction_context(b"case", &self.region);
                self.open_for(&ctx, tx, &watch, trouble).await
            }
            <rpb::DeviceCollected as Name>::NAME
            | <rpb::ReturnDelivered as Name>::NAME
            | <rpb::RepairCancelled as Name>::NAME => {
                // Each of them names its order first.
                let order_id = match event.event_type.as_str() {
                    <rpb::DeviceCollected as Name>::NAME => {
                        event
                            .proto::<rpb::DeviceCollected>()
                            .map_err(decode)?
                            .order_id
                    }
                    <rpb::ReturnDelivered as Name>::NAME => {
                        event
                            .proto::<rpb::ReturnDelivered>()
                            .map_err(decode)?
                            .order_id
                    }
                    _ => {
                        event
                            .proto::<rpb::RepairCancelled>()
                            .map_err(decode)?
                            .order_id
                    }
                };
                let watch = self.watch(event, tx, &order_id, Command::Close).await?;
                if event.event_type == <rpb::RepairCancelled as Name>::NAME {
                    return Ok(());
                }
                // Back with its customer: how did it go? Unless the return is
                // older than a survey's life (a replayed history, a long outage):
                // a survey that could no longer be answered is not sent.
                let answerable_until =
                    event.metadata.recorded_at + chrono::Duration::days(survey::ANSWER_DAYS);
                if answerable_until <= self.app.now() {
                    return Ok(());
                }
                let language = self.app.teams().language_of(&watch.country).to_owned();
                let about = About::Repair {
                    order_id: watch.order_id.clone(),
                    service_center_id: watch.service_center_id.clone(),
                    technician: watch.technician.clone(),
                };
                let ctx = event.reaction_context(b"survey", &self.region);
                self.app
                    .surveys()
                    .send_in(tx, &watch.customer_id, &language, about, &ctx)
                    .await?;
                Ok(())
            }
            other => Err(HandlerError::permanent(format!(
                "{other}: not an event this consumer handles"
            ))),
        }
    }

    /// A repair's parcel has had no scan for too long: the customer is called.
    async fn stalled(
        &self,
        event: &InboundEvent,
        tx: &mut StoreTransaction,
    ) -> Result<(), HandlerError> {
        let stalled: lpb::ShipmentStalled = event.proto().map_err(HandlerError::permanent)?;
        if stalled.repair_order_id.trim().is_empty() {
            return Ok(()); // an accessory's parcel: the parts desk's
        }
        let stream = watch_stream(&stalled.repair_order_id)?;
        let Some(watch) = self.watches.load_in(tx, &stream).await?.state else {
            return Err(HandlerError::transient(format!(
                "repair order {}: its opening has not arrived yet",
                stalled.repair_order_id
            )));
        };
        let about = format!("parcel-stalled:{}", stalled.shipment_id);
        let days = stalled.silent_seconds / 86_400;
        let text = format!(
            "The parcel of repair {} ({} {}) has had no scan for {} days. Ask the carrier, \
             tell the customer, and open a claim if it is lost.",
            watch.order_id, stalled.carrier, stalled.tracking_number, days
        );
        let trouble = Trouble {
            about,
            category: Category::Shipping,
            priority: Priority::High,
            subject: "A repair's parcel has stalled",
            text,
        };
        let ctx = event.reaction_context(b"case", &self.region);
        self.open_for(&ctx, tx, &watch, trouble).await
    }
}

/// The desk's case about a clock that ran out.
fn deadline_trouble(watch: &watch::WatchState, deadline: &Deadline) -> Trouble {
    let order = &watch.order_id;
    let due = deadline.due;
    let about = format!(
        "{}-late:{order}:{}",
        deadline.kind.as_str(),
        due.timestamp()
    );
    let rule = format!("{}: {}", deadline.limit, deadline.source);
    let (subject, priority, text) = match deadline.kind {
        DeadlineKind::Parts => (
            "A repair has waited too long for spare parts",
            Priority::High,
            format!(
                "Repair {order} is still waiting for spare parts past their delivery time \
                 ({rule}; due {due}). Chase the depot, and tell the customer when the part \
                 will come."
            ),
        ),
        DeadlineKind::Repair => (
            "A repair under the legal guarantee is running late",
            Priority::High,
            format!(
                "Repair {order} is not ready past its time under the legal guarantee ({rule}; \
                 due {due}). Find out why, and offer the customer what the law gives them \
                 where it does (a replacement or a refund)."
            ),
        ),
        DeadlineKind::Quote => (
            "A repair quote is waiting for the customer's answer",
            Priority::Normal,
            format!(
                "The quote for repair {order} has had no answer ({rule}; due {due}). Call the \
                 customer and go through it with them."
            ),
        ),
    };
    Trouble {
        about,
        category: Category::Hardware,
        priority,
        subject,
        text,
    }
}

impl Handler for SupportReactions {
    async fn handle(
        &self,
        event: &InboundEvent,
        tx: &mut StoreTransaction,
    ) -> Result<(), HandlerError> {
        match event.source.as_str() {
            "repair" => self.repair(event, tx).await,
            "logistics" => self.stalled(event, tx).await,
            other => Err(HandlerError::permanent(format!(
                "{other}: not a service this consumer follows"
            ))),
        }
    }
}
