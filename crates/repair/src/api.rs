//! `aftersales.repair.v1.RepairService` over gRPC.

use aftersales_core::Error;
use aftersales_core::types::{CenterId, CustomerId, OrderId};
use aftersales_eventstore::{CommandContext, Decider as _, Live, StreamId, Watcher};
use aftersales_proto::common::DeviceId;
use aftersales_proto::repair as pb;
use aftersales_proto::repair::repair_service_server::RepairService;
use aftersales_proto::warranty as wpb;
use aftersales_runtime::auth::{Caller, Owner};
use aftersales_runtime::errors::{invalid, status};
use aftersales_runtime::notary::Notary;
use aftersales_runtime::paging::{self, Limit};
use aftersales_runtime::request::{Requests, StreamPermit};
use aftersales_runtime::request::{timestamp_from_proto, timestamp_to_proto};
use tonic::{Request, Response, Status};

use crate::app::{ReadOrder, Repairs};
use crate::convert::{
    address_to_proto, category_from_proto, category_to_proto, center_to_proto,
    data_protection_from_proto, data_protection_to_proto, device_key, order_to_proto,
    purpose_from_proto, purpose_to_proto, stage, stage_name, summary, withheld,
};
use crate::domain::centers::{GeoPoint, ServiceCenter};
use crate::domain::order::{
    Address, Channel, Command, Condition, Coverage, DataCategory, LineKind, OrderState,
    PartReplacement, QuoteLine, RepairOrder, Stage,
};
use crate::domain::{DomainError, Money};
use crate::network;
use crate::projections::OrderRow;

#[derive(Debug, Clone)]
pub struct RepairApi {
    app: Repairs,
    requests: Requests,
    notary: Notary,
}

impl RepairApi {
    /// The order as the caller sees it, with what may be done to it now.
    /// The order after a command or a read, as `caller` may see it.
    fn answer(&self, caller: &Caller, result: Result<(OrderState, u64), Error>) -> Answer {
        let (order, version) = result.map_err(status)?;
        Ok(Response::new(as_seen_by(
            caller,
            order_to_proto(&order, version, self.requests.clock.now()),
        )))
    }

    /// `notary` reads the heads histories are verified against.
    pub fn new(app: Repairs, requests: Requests, notary: Notary) -> Self {
        Self {
            app,
            requests,
            notary,
        }
    }

    /// Runs a command that needs nothing but the order's id.
    async fn on_order(
        &self,
        request: Request<pb::OrderRef>,
        command: impl FnOnce(&CommandContext) -> Command,
    ) -> Answer {
        let ctx = self.context(&request)?;
        let caller = Caller::of(&request);
        let order = self
            .read_order(&caller, &request.get_ref().order_id)
            .await?;
        self.answer(&caller, self.app.command(order, command(&ctx), &ctx).await)
    }

    /// The order `raw` names, if the caller may touch it: another customer's
    /// order, or one at a center the technician does not work at, answers as if
    /// it did not exist.
    async fn order(&self, caller: &Caller, raw: &str) -> Result<OrderId, Status> {
        if caller.needs_owner() {
            return Ok(self.read_order(caller, raw).await?.id);
        }
        order_id(raw)
    }

    /// [`Self::order`], read for a command: the command decides on this read.
    async fn read_order(&self, caller: &Caller, raw: &str) -> Result<ReadOrder, Status> {
        let order = self.app.read(&order_id(raw)?).await.map_err(status)?;
        if caller.needs_owner() {
            let state = order.state().map_err(status)?;
            if !caller.may_touch(order_owner(state)) {
                return Err(status(
                    DomainError::NotFound(format!("repair order {}", order.id)).into(),
                ));
            }
        }
        Ok(order)
    }

    /// Who asks, as part of what: from the request's metadata.
    fn context<T: prost::Message>(&self, request: &Request<T>) -> Result<CommandContext, Status> {
        self.requests.context(request)
    }
}

fn order_id(id: &str) -> Result<OrderId, Status> {
    OrderId::parse("order_id", id).map_err(|e| status(e.into()))
}

/// `order` as `caller` may see it: whole for its customer (the handlers let a
/// customer reach their own orders only), withheld for everyone else.
fn as_seen_by(caller: &Caller, order: pb::RepairOrder) -> pb::RepairOrder {
    if caller.is_customer() {
        order
    } else {
        withheld(order)
    }
}

/// An order's customer and, for a walk-in, its center.
fn order_owner(order: &OrderState) -> Owner<'_> {
    Owner {
        customer: Some(&order.customer_id),
        center: match &order.channel {
            Channel::WalkIn { center_id, .. } => Some(center_id),
            Channel::MailIn { .. } => None,
        },
    }
}

/// A listed order's customer and center.
/// A center's orders per page.
const CENTER_ORDERS_PAGE: Limit = Limit {
    default: 50,
    max: 500,
};

/// A device's orders per page.
const DEVICE_ORDERS_PAGE: Limit = Limit {
    default: 50,
    max: 200,
};

fn row_owner(row: &OrderRow) -> Owner<'_> {
    Owner {
        customer: Some(&row.customer_id),
        center: Some(row.center_id.as_str()).filter(|c| !c.is_empty()),
    }
}

/// Staff see the centers they work at.
fn own_center(caller: &Caller, center: &CenterId) -> Result<(), Status> {
    if caller.may_touch(Owner {
        customer: None,
        center: Some(center.as_str()),
    }) {
        Ok(())
    } else {
        Err(Status::permission_denied("not a center you work at"))
    }
}

fn center_id(id: &str) -> Result<CenterId, Status> {
    CenterId::parse("service_center_id", id).map_err(|e| status(e.into()))
}

fn fault(value: i32) -> Result<wpb::FaultCategory, Status> {
    match wpb::FaultCategory::try_from(value) {
        Ok(wpb::FaultCategory::Unspecified) | Err(_) => Err(invalid(
            "fault_category",
            "is required; one of the FaultCategory values",
        )),
        Ok(f) => Ok(f),
    }
}

/// The nearest-rank percentile `p` (1..=100) of sorted `values`, as f64.
fn percentile(sorted: &[i64], p: usize) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (sorted.len() * p).div_ceil(100).clamp(1, sorted.len());
    #[allow(clippy::cast_precision_loss)] // seconds, far below 2^52
    let value = sorted[rank - 1] as f64;
    value
}

fn photo_to_proto(order: &OrderId, photo: &crate::photos::Photo) -> pb::Photo {
    pb::Photo {
        order_id: order.to_string(),
        photo_id: photo.photo_id.clone(),
        content_type: photo.content_type.to_owned(),
        size: photo.size,
    }
}

/// How many days ahead a center's load is shown.
const LOAD_DAYS: u32 = 14;

type Answer = Result<Response<pb::RepairOrder>, Status>;

#[tonic::async_trait]
impl RepairService for RepairApi {
    async fn open_repair(&self, request: Request<pb::OpenRepairRequest>) -> Answer {
        let ctx = self.context(&request)?;
        let caller = Caller::of(&request);
        let r = request.into_inner();
        let device = device_key(r.device_id.as_ref()).map_err(status)?;
        let device_id = DeviceId::from(&device);
        let channel = match pb::Channel::try_from(r.channel).unwrap_or(pb::Channel::Unspecified) {
            pb::Channel::Unspecified => {
                return Err(invalid("channel", "is required: walk-in or mail-in"));
            }
            pb::Channel::WalkIn => Channel::WalkIn {
                center_id: r.service_center_id.trim().to_owned(),
                visit_on: if r.walk_in_day.trim().is_empty() {
                    None
                } else {
                    Some(
                        chrono::NaiveDate::parse_from_str(r.walk_in_day.trim(), "%Y-%m-%d")
                            .map_err(|_| invalid("walk_in_day", "must be a date, YYYY-MM-DD"))?,
                    )
                },
            },
            pb::Channel::MailIn => {
                let a = r
                    .contact_address
                    .ok_or_else(|| invalid("contact_address", "is required for mail-in"))?;
                Channel::MailIn {
                    address: Address {
                        recipient: a.recipient,
                        lines: a.lines,
                        city: a.city,
                        region: a.region,
                        postal_code: a.postal_code,
                        country: a.country.map(|c| c.value).unwrap_or_default(),
                        phone: a.phone,
                    },
                }
            }
        };
        let reported = wpb::FaultCategory::try_from(r.reported_fault)
            .unwrap_or(wpb::FaultCategory::Unspecified);
        // A customer opens repairs for themselves, a technician at their center.
        let owner = Owner {
            customer: Some(&r.customer_id),
            center: match &channel {
                Channel::WalkIn { center_id, .. } => Some(center_id),
                Channel::MailIn { .. } => None,
            },
        };
        if !caller.may_touch(owner) {
            return Err(Status::permission_denied(
                "a customer opens repairs for themselves, a technician at their own center",
            ));
        }
        let command = Command::Open {
            serviced_in: None,
            order_id: ctx.derived_id(b"repair-order").to_string(),
            device,
            channel,
            customer_id: CustomerId::parse("customer_id", &r.customer_id)
                .map_err(|e| status(e.into()))?
                .to_string(),
            symptoms: r.symptoms,
            coverage: Coverage::Pending { why: String::new() },
            fault_date: if r.fault_date.trim().is_empty() {
                ctx.now.date_naive()
            } else {
                chrono::NaiveDate::parse_from_str(r.fault_date.trim(), "%Y-%m-%d")
                    .map_err(|_| invalid("fault_date", "must be a date, YYYY-MM-DD"))?
            },
        };
        self.answer(
            &caller,
            self.app.open(command, &device_id, reported, &ctx).await,
        )
    }

    async fn check_in_device(&self, request: Request<pb::CheckInDeviceRequest>) -> Answer {
        let caller = Caller::of(&request);
        let ctx = self.context(&request)?;
        let r = request.into_inner();
        let order = self.read_order(&caller, &r.order_id).await?;
        self.app
            .check_photos(&order.id, &r.photos)
            .await
            .map_err(status)?;
        let command = Command::CheckIn {
            condition: Condition {
                notes: r.condition_notes,
                photos: r.photos,
                liquid_indicator_tripped: r.liquid_indicator_tripped,
            },
            accessories: r.accessories_received,
        };
        self.answer(&caller, self.app.command(order, command, &ctx).await)
    }

    async fn attach_photo(
        &self,
        request: Request<pb::AttachPhotoRequest>,
    ) -> Result<Response<pb::Photo>, Status> {
        let caller = Caller::of(&request);
        let r = request.into_inner();
        let id = self.order(&caller, &r.order_id).await?;
        let photo = self
            .app
            .attach_photo(&id, &r.content_type, &r.data, self.requests.clock.now())
            .await
            .map_err(status)?;
        Ok(Response::new(photo_to_proto(&id, &photo)))
    }

    async fn get_photo(
        &self,
        request: Request<pb::PhotoRef>,
    ) -> Result<Response<pb::PhotoData>, Status> {
        let caller = Caller::of(&request);
        let r = request.into_inner();
        let id = self.order(&caller, &r.order_id).await?;
        if r.photo_id.len() != 64 {
            return Err(invalid("photo_id", "a photo's SHA-256, 64 hex digits"));
        }
        let (content_type, data) = self.app.photo(&id, &r.photo_id).await.map_err(status)?;
        Ok(Response::new(pb::PhotoData {
            photo: Some(pb::Photo {
                order_id: id.to_string(),
                photo_id: r.photo_id,
                content_type,
                size: data.len() as u64,
            }),
            data,
        }))
    }

    async fn diagnose(&self, request: Request<pb::DiagnoseRequest>) -> Answer {
        let caller = Caller::of(&request);
        let ctx = self.context(&request)?;
        let r = request.into_inner();
        let f = fault(r.fault_category)?;
        self.answer(
            &caller,
            self.app
                .diagnose(
                    self.read_order(&caller, &r.order_id).await?,
                    f,
                    f.as_str_name(),
                    r.fault_codes,
                    &r.technician,
                    &ctx,
                )
                .await,
        )
    }

    async fn issue_quote(&self, request: Request<pb::IssueQuoteRequest>) -> Answer {
        let caller = Caller::of(&request);
        let ctx = self.context(&request)?;
        let r = request.into_inner();
        let mut lines = Vec::with_capacity(r.lines.len());
        for line in r.lines {
            let amount = line
                .amount
                .ok_or_else(|| invalid("lines.amount", "is required"))?;
            lines.push(QuoteLine {
                description: line.description,
                kind: if line.is_labour {
                    LineKind::Labour
                } else {
                    LineKind::Part
                },
                amount: Money::new("lines.amount", amount.minor_units, &amount.currency)
                    .map_err(|e| status(e.into()))?,
            });
        }
        let order = self.read_order(&caller, &r.order_id).await?;
        if lines.is_empty() {
            // The lines the price list gave the diagnosis.
            lines = order
                .state()
                .map_err(status)?
                .parts_plan
                .as_ref()
                .map(|plan| plan.proposed.clone())
                .unwrap_or_default();
        }
        let command = Command::IssueQuote {
            lines,
            valid_until: timestamp_from_proto("valid_until", r.valid_until.as_ref())?,
            now: ctx.now,
        };
        self.answer(&caller, self.app.command(order, command, &ctx).await)
    }

    async fn approve_quote(&self, request: Request<pb::OrderRef>) -> Answer {
        self.on_order(request, |ctx| Command::ApproveQuote { now: ctx.now })
            .await
    }

    async fn decline_quote(&self, request: Request<pb::OrderRef>) -> Answer {
        self.on_order(request, |_| Command::DeclineQuote).await
    }

    async fn start_repair(&self, request: Request<pb::StartRepairRequest>) -> Answer {
        let caller = Caller::of(&request);
        let ctx = self.context(&request)?;
        let r = request.into_inner();
        self.answer(
            &caller,
            self.app
                .start(
                    self.read_order(&caller, &r.order_id).await?,
                    &r.technician,
                    &ctx,
                )
                .await,
        )
    }

    async fn replace_part(&self, request: Request<pb::ReplacePartRequest>) -> Answer {
        let caller = Caller::of(&request);
        let ctx = self.context(&request)?;
        let r = request.into_inner();
        let part = PartReplacement {
            part_number: r.part_number,
            old_serial: r.old_serial,
            new_serial: r.new_serial,
        };
        self.answer(
            &caller,
            self.app
                .replace_part(self.read_order(&caller, &r.order_id).await?, part, &ctx)
                .await,
        )
    }

    async fn record_qc_result(&self, request: Request<pb::RecordQcResultRequest>) -> Answer {
        let caller = Caller::of(&request);
        let ctx = self.context(&request)?;
        let r = request.into_inner();
        self.answer(
            &caller,
            self.app
                .command(
                    self.read_order(&caller, &r.order_id).await?,
                    Command::RecordQc {
                        passed: r.passed,
                        notes: r.notes,
                    },
                    &ctx,
                )
                .await,
        )
    }

    async fn mark_ready_for_return(&self, request: Request<pb::OrderRef>) -> Answer {
        self.on_order(request, |_| Command::MarkReadyForReturn)
            .await
    }

    async fn confirm_collected(&self, request: Request<pb::OrderRef>) -> Answer {
        self.on_order(request, |_| Command::ConfirmCollected).await
    }

    async fn cancel_repair(&self, request: Request<pb::CancelRepairRequest>) -> Answer {
        let caller = Caller::of(&request);
        let ctx = self.context(&request)?;
        let r = request.into_inner();
        self.answer(
            &caller,
            self.app
                .command(
                    self.read_order(&caller, &r.order_id).await?,
                    Command::Cancel { reason: r.reason },
                    &ctx,
                )
                .await,
        )
    }

    async fn get_repair(&self, request: Request<pb::OrderRef>) -> Answer {
        let caller = Caller::of(&request);
        let id = self.order(&caller, &request.get_ref().order_id).await?;
        self.answer(&caller, self.app.get(&id).await)
    }

    async fn open_personal_data(
        &self,
        request: Request<pb::OpenPersonalDataRequest>,
    ) -> Result<Response<pb::PersonalData>, Status> {
        let caller = Caller::of(&request);
        let ctx = self.context(&request)?;
        let r = request.into_inner();
        let read = self.read_order(&caller, &r.order_id).await?;
        let id = read.id.clone();
        let categories = r
            .categories
            .iter()
            .map(|c| category_from_proto(*c))
            .collect::<Result<Vec<_>, _>>()?;
        let purpose = purpose_from_proto(r.purpose)?;
        let command = Command::OpenPersonalData {
            by: ctx.actor.clone(),
            categories: categories.clone(),
            purpose,
            now: ctx.now,
        };
        // A customer's own data is theirs to read: checked, not recorded.
        let order = if caller.is_customer() {
            let order = read.into_state().map_err(status)?;
            RepairOrder::decide(&Some(order.clone()), &command).map_err(|e| status(e.into()))?;
            order
        } else {
            self.app
                .command(read, command, &ctx)
                .await
                .map_err(status)?
                .0
        };
        let has = |c: DataCategory| categories.contains(&c);
        Ok(Response::new(pb::PersonalData {
            order_id: id.to_string(),
            symptoms: if has(DataCategory::CustomerWords) {
                order.symptoms.clone()
            } else {
                String::new()
            },
            contact_address: match &order.channel {
                Channel::MailIn { address } if has(DataCategory::ContactAddress) => {
                    Some(address_to_proto(address))
                }
                Channel::MailIn { .. } | Channel::WalkIn { .. } => None,
            },
            data_protection: order
                .data_protection
                .filter(|_| has(DataCategory::DataProtection))
                .map(data_protection_to_proto),
        }))
    }

    async fn record_data_protection(
        &self,
        request: Request<pb::RecordDataProtectionRequest>,
    ) -> Answer {
        let caller = Caller::of(&request);
        let ctx = self.context(&request)?;
        let r = request.into_inner();
        let checklist = data_protection_from_proto(r.data_protection.as_ref())?;
        let order = self.read_order(&caller, &r.order_id).await?;
        self.answer(
            &caller,
            self.app
                .command(order, Command::RecordDataProtection(checklist), &ctx)
                .await,
        )
    }

    async fn get_expected_ready(
        &self,
        request: Request<pb::OrderRef>,
    ) -> Result<Response<pb::ExpectedReady>, Status> {
        let id = self
            .order(&Caller::of(&request), &request.get_ref().order_id)
            .await?;
        let ready_by = self
            .app
            .expected_ready(&id, self.requests.clock.now())
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ExpectedReady {
            order_id: id.to_string(),
            ready_by: ready_by.map(timestamp_to_proto),
            basis: format!(
                "the 90th percentile of each stage ahead over the center's past orders, \
                 added up; at least {} orders per stage",
                crate::domain::estimate::MIN_ORDERS
            ),
        }))
    }

    async fn get_repair_timeline(
        &self,
        request: Request<pb::OrderRef>,
    ) -> Result<Response<pb::RepairTimeline>, Status> {
        let id = self
            .order(&Caller::of(&request), &request.get_ref().order_id)
            .await?;
        let steps = self.app.timeline(&id).await.map_err(status)?;
        Ok(Response::new(pb::RepairTimeline {
            order_id: id.to_string(),
            steps: steps
                .iter()
                .map(|s| pb::TimelineStep {
                    version: s.version,
                    event_type: s.event_type.clone(),
                    stage: stage(s.stage).into(),
                    actor: s.actor.clone(),
                    at: Some(timestamp_to_proto(s.at)),
                    access: s
                        .access
                        .as_ref()
                        .map(|(categories, purpose)| pb::DataAccess {
                            categories: categories
                                .iter()
                                .map(|c| category_to_proto(*c).into())
                                .collect(),
                            purpose: purpose_to_proto(*purpose).into(),
                        }),
                })
                .collect(),
        }))
    }

    type WatchRepairStream =
        std::pin::Pin<Box<dyn futures::Stream<Item = Result<pb::RepairOrder, Status>> + Send>>;

    async fn watch_repair(
        &self,
        request: Request<pb::OrderRef>,
    ) -> Result<Response<Self::WatchRepairStream>, Status> {
        let caller = Caller::of(&request);
        let id = self.order(&caller, &request.get_ref().order_id).await?;
        let permit = self.requests.live_stream(&request)?;
        // Subscribed before the first read: a step in between comes after it.
        let watcher = self.app.watch(&id).map_err(status)?;
        let (order, version) = self.app.get(&id).await.map_err(status)?;
        let clock = self.requests.clock.clone();
        let first = as_seen_by(&caller, order_to_proto(&order, version, clock.now()));
        let watch = Watch {
            app: self.app.clone(),
            id,
            watcher,
            last: version,
            ended: order_ended(&order),
            _permit: permit,
        };
        let rest = futures::stream::unfold(watch, move |mut watch| {
            let (clock, caller) = (clock.clone(), caller.clone());
            async move {
                let (order, version) = match watch.next().await? {
                    Ok(changed) => changed,
                    Err(error) => {
                        watch.ended = true;
                        return Some((Err(status(error)), watch));
                    }
                };
                watch.ended = order_ended(&order);
                let seen = as_seen_by(&caller, order_to_proto(&order, version, clock.now()));
                Some((Ok(seen), watch))
            }
        });
        let stream = futures::StreamExt::chain(futures::stream::once(async { Ok(first) }), rest);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_center_stats(
        &self,
        request: Request<pb::GetCenterStatsRequest>,
    ) -> Result<Response<pb::CenterStats>, Status> {
        let caller = Caller::of(&request);
        let center = center_id(&request.into_inner().service_center_id)?;
        own_center(&caller, &center)?;
        let times = self.app.stage_times(&center).await.map_err(status)?;
        let stages = Stage::ALL
            .into_iter()
            .filter_map(|st| {
                let mut seconds = times.get(st.as_str())?.clone();
                seconds.sort_unstable();
                Some(pb::StageTurnaround {
                    stage: stage(st).into(),
                    p50_hours: percentile(&seconds, 50) / 3600.0,
                    p90_hours: percentile(&seconds, 90) / 3600.0,
                    orders: u32::try_from(seconds.len()).unwrap_or(u32::MAX),
                })
            })
            .collect();
        let days = self
            .app
            .load(&center, self.requests.clock.now().date_naive(), LOAD_DAYS)
            .await
            .map_err(status)?
            .into_iter()
            .map(|(day, open, booked, capacity)| pb::DayLoad {
                day: day.to_string(),
                open,
                booked,
                capacity,
            })
            .collect();
        Ok(Response::new(pb::CenterStats {
            service_center_id: center.to_string(),
            stages,
            days,
        }))
    }

    async fn list_demand_areas(
        &self,
        request: Request<pb::ListDemandAreasRequest>,
    ) -> Result<Response<pb::DemandAreas>, Status> {
        let country = country(request.into_inner().country)?;
        let demand = self.app.demand(&country).await.map_err(status)?;
        Ok(Response::new(pb::DemandAreas {
            areas: demand.areas.iter().map(demand_area_to_proto).collect(),
            unplaced_customers: demand.unplaced_customers,
            country,
        }))
    }

    async fn plan_network(
        &self,
        request: Request<pb::PlanNetworkRequest>,
    ) -> Result<Response<pb::NetworkPlan>, Status> {
        let r = request.into_inner();
        let request = network::PlanRequest {
            country: country(r.country)?,
            new_points: usize::try_from(r.new_points).unwrap_or(usize::MAX),
            within_km: r.within_km.unwrap_or(network::DEFAULT_WITHIN_KM),
            candidates: r.candidates,
        };
        if request.candidates.len() > network::MAX_CANDIDATES
            || request.candidates.iter().any(|c| c.len() > 200)
        {
            return Err(invalid(
                "candidates",
                format!(
                    "at most {} names of at most 200 bytes",
                    network::MAX_CANDIDATES
                ),
            ));
        }
        let planned = self.app.plan_network(&request).await.map_err(status)?;
        let choices = planned
            .plan
            .choices
            .iter()
            .map(|c| pb::PlanChoice {
                area_id: c.candidate.id,
                city: c.candidate.name.clone(),
                point: Some(point_to_proto(c.candidate.point)),
                before: Some(plan_figures(c.before)),
                after: Some(plan_figures(c.after)),
                areas_reached: u32::try_from(c.areas_reached).unwrap_or(u32::MAX),
                why: c.why.clone(),
            })
            .collect();
        Ok(Response::new(pb::NetworkPlan {
            country: request.country,
            within_km: request.within_km,
            before: Some(plan_figures(planned.plan.before)),
            after: Some(plan_figures(planned.plan.after)),
            choices,
            method: planned.method,
            walk_in_p90_days: planned.walk_in_p90_days,
            mail_in_p90_days: planned.mail_in_p90_days,
            map_svg: planned.map_svg,
        }))
    }

    async fn get_network_quality(
        &self,
        request: Request<pb::GetNetworkQualityRequest>,
    ) -> Result<Response<pb::NetworkQuality>, Status> {
        let caller = Caller::of(&request);
        let r = request.into_inner();
        let only = if r.service_center_id.is_empty() {
            // Every center's rows: only for those who may see every center.
            if caller.needs_owner()
                && !caller.may_touch(Owner {
                    customer: None,
                    center: None,
                })
            {
                return Err(invalid(
                    "service_center_id",
                    "is required: name the center you work at",
                ));
            }
            None
        } else {
            let center = center_id(&r.service_center_id)?;
            own_center(&caller, &center)?;
            Some(center)
        };
        let country = country(r.country)?;
        let weeks = if r.weeks == 0 { 8 } else { r.weeks };
        let now = self.requests.clock.now();
        let quality = self
            .app
            .network_quality(
                &country,
                weeks,
                r.by_technician,
                only.as_ref().map(CenterId::as_str),
                now,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(pb::NetworkQuality {
            country,
            from_week: quality.from_week.to_string(),
            summary: quality.summary.iter().map(quality_row_to_proto).collect(),
            weeks: quality.weeks.iter().map(quality_row_to_proto).collect(),
        }))
    }

    async fn list_repairs_by_device(
        &self,
        request: Request<pb::ListRepairsByDeviceRequest>,
    ) -> Result<Response<pb::ListRepairsResponse>, Status> {
        let caller = Caller::of(&request);
        let r = request.into_inner();
        let device = r
            .device_id
            .ok_or_else(|| invalid("device_id", "is required (imei or serial)"))?;
        let mut rows = self.app.orders_of_device(&device).await.map_err(status)?;
        rows.retain(|row| caller.may_touch(row_owner(row)));
        // The token is the last order served: the next page starts after it.
        let start = if r.page_token.is_empty() {
            0
        } else {
            rows.iter()
                .position(|row| row.order_id == r.page_token)
                .map(|i| i + 1)
                .ok_or_else(|| invalid("page_token", "is not one this service gave"))?
        };
        let size = DEVICE_ORDERS_PAGE.size(r.page_size);
        let page = rows.get(start..).unwrap_or_default();
        let next_page_token = match page.get(..size) {
            Some(served) if page.len() > size => served
                .last()
                .map(|row| row.order_id.clone())
                .unwrap_or_default(),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListRepairsResponse {
            repairs: page.iter().take(size).map(summary).collect(),
            next_page_token,
        }))
    }

    async fn list_repairs_by_center(
        &self,
        request: Request<pb::ListRepairsByCenterRequest>,
    ) -> Result<Response<pb::ListRepairsResponse>, Status> {
        let caller = Caller::of(&request);
        let r = request.into_inner();
        own_center(&caller, &center_id(&r.service_center_id)?)?;
        let stage_filter = match pb::Stage::try_from(r.stage) {
            Ok(pb::Stage::Unspecified) => None,
            Ok(s) => Some(stage_name(s)),
            Err(_) => return Err(invalid("stage", "is not a Stage value")),
        };
        let limit = i64::try_from(CENTER_ORDERS_PAGE.size(r.page_size)).unwrap_or(i64::MAX);
        let rows = self
            .app
            .orders_of_center(
                &center_id(&r.service_center_id)?,
                stage_filter,
                &r.page_token,
                limit,
            )
            .await
            .map_err(status)?;
        let next_page_token = if i64::try_from(rows.len()).unwrap_or(i64::MAX) == limit {
            rows.last().map(|r| r.order_id.clone()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListRepairsResponse {
            repairs: rows.iter().map(summary).collect(),
            next_page_token,
        }))
    }

    async fn verify_repair_history(
        &self,
        request: Request<pb::VerifyRepairHistoryRequest>,
    ) -> Result<Response<pb::VerifyRepairHistoryResponse>, Status> {
        let device = request
            .into_inner()
            .device_id
            .ok_or_else(|| invalid("device_id", "is required (imei or serial)"))?;
        let verdict = self
            .app
            .verify_device(&device, |stream| {
                let notary = self.notary.clone();
                async move { notary.trust(&stream, None).await }
            })
            .await
            .map_err(status)?;
        let (first_bad_order_id, problem) = verdict.first_break.unwrap_or_default();
        Ok(Response::new(pb::VerifyRepairHistoryResponse {
            intact: problem.is_empty(),
            orders_checked: u32::try_from(verdict.orders).unwrap_or(u32::MAX),
            events_checked: verdict.events,
            problem,
            first_bad_order_id,
            checked_against: verdict.against,
        }))
    }

    async fn get_repair_history(
        &self,
        request: Request<pb::GetRepairHistoryRequest>,
    ) -> Result<Response<pb::RepairHistory>, Status> {
        let caller = Caller::of(&request);
        let r = request.into_inner();
        let device = r
            .device_id
            .ok_or_else(|| invalid("device_id", "is required (imei or serial)"))?;
        // Staff and auditors get every order the log lists for the device; a
        // customer those of the read model that were theirs, and none is as
        // none at all.
        let orders: Vec<String> = if caller.needs_owner() {
            let mut rows = self.app.orders_of_device(&device).await.map_err(status)?;
            rows.retain(|row| caller.may_touch(row_owner(row)));
            rows.into_iter().map(|row| row.order_id).collect()
        } else {
            self.app.orders_in_log(&device).await.map_err(status)?
        };
        if orders.is_empty() {
            return Err(status(
                DomainError::NotFound("repair history of this device".into()).into(),
            ));
        }
        // A page token names the next page's first event: `order@version`.
        let start = if r.page_token.is_empty() {
            (0, 1)
        } else {
            r.page_token
                .rsplit_once('@')
                .and_then(|(order, version)| {
                    let index = orders.iter().position(|o| o == order)?;
                    Some((index, paging::version_after(version).ok()?))
                })
                .ok_or_else(|| invalid("page_token", "is not one this service gave"))?
        };
        let size = paging::HISTORY_PAGE.size(r.page_size);
        let read = self
            .app
            .history_of_orders(&orders, start, size.saturating_add(1))
            .await
            .map_err(status)?;
        let taken = paging::fill(&read, size, |(_, e)| e.payload.len());
        let next_page_token = read
            .get(taken)
            .map(|(order, e)| format!("{order}@{}", e.stream_version))
            .unwrap_or_default();
        Ok(Response::new(pb::RepairHistory {
            events: read
                .into_iter()
                .take(taken)
                .map(|(order_id, e)| pb::RepairHistoryEvent {
                    order_id,
                    version: e.stream_version,
                    event_id: e.event_id.to_string(),
                    event_type: e.event_type,
                    recorded_at: Some(timestamp_to_proto(e.metadata.recorded_at)),
                    actor: e.metadata.actor,
                    correlation_id: e.metadata.correlation_id.to_string(),
                    payload_json: String::from_utf8_lossy(&e.payload).into_owned(),
                    hash: e.hash.iter().map(|b| format!("{b:02x}")).collect(),
                })
                .collect(),
            next_page_token,
        }))
    }

    async fn upsert_service_center(
        &self,
        request: Request<pb::ServiceCenter>,
    ) -> Result<Response<pb::ServiceCenter>, Status> {
        let ctx = self.context(&request)?;
        let c = request.into_inner();
        let location = c
            .location
            .ok_or_else(|| invalid("location", "is required"))?;
        let center = ServiceCenter {
            id: c.id,
            name: c.name,
            country: c.country.map(|c| c.value).unwrap_or_default(),
            city: c.city,
            address: c.address,
            latitude: location.latitude,
            longitude: location.longitude,
            open_days: c.open_days,
            hours: c.hours,
            capabilities: c.capabilities,
            daily_capacity: c.daily_capacity,
        };
        let stored = self.app.upsert_center(center, &ctx).await.map_err(status)?;
        Ok(Response::new(center_to_proto(&stored)))
    }

    async fn get_service_center(
        &self,
        request: Request<pb::GetServiceCenterRequest>,
    ) -> Result<Response<pb::ServiceCenter>, Status> {
        let center = self
            .app
            .center(&CenterId::parse("id", &request.get_ref().id).map_err(|e| status(e.into()))?)
            .await
            .map_err(status)?;
        Ok(Response::new(center_to_proto(&center)))
    }

    async fn find_nearest_centers(
        &self,
        request: Request<pb::FindNearestCentersRequest>,
    ) -> Result<Response<pb::FindNearestCentersResponse>, Status> {
        let r = request.into_inner();
        let p = r.point.ok_or_else(|| invalid("point", "is required"))?;
        let point = GeoPoint::new("point", p.latitude, p.longitude)
            .map_err(|e| invalid("point", &e.reason))?;
        let country = r
            .country
            .map(|c| c.value.trim().to_ascii_uppercase())
            .filter(|c| !c.is_empty());
        let limit = if r.limit == 0 { 5 } else { r.limit.min(50) };
        let (found, mail_in) = self
            .app
            .nearest(
                point,
                country.as_deref(),
                usize::try_from(limit).unwrap_or(5),
                self.requests.clock.now().date_naive(),
            )
            .await
            .map_err(status)?;
        Ok(Response::new(pb::FindNearestCentersResponse {
            centers: found
                .iter()
                .map(|(c, d, next)| pb::NearbyCenter {
                    center: Some(center_to_proto(c)),
                    distance_km: *d,
                    next_walk_in_day: next.map(|day| day.to_string()).unwrap_or_default(),
                })
                .collect(),
            recommend_mail_in: mail_in,
            radius_km: self.app.radius_km,
        }))
    }
}

/// One caller following one order: its place among the live streams, the
/// order's events as they come, and the last version sent.
struct Watch {
    app: Repairs,
    id: OrderId,
    watcher: Watcher<StreamId>,
    last: u64,
    ended: bool,
    _permit: StreamPermit,
}

impl Watch {
    /// The order after its next step; `None` once it has ended or the service
    /// stops.
    async fn next(&mut self) -> Option<Result<(OrderState, u64), Error>> {
        if self.ended {
            return None;
        }
        loop {
            match self.watcher.next().await {
                // An event sent already (it came while the first read ran).
                Live::Event(event) if event.stream_version <= self.last => continue,
                Live::Event(_) | Live::Missed => {}
                Live::Closed => return None,
            }
            return match self.app.get(&self.id).await {
                Ok((order, version)) if version > self.last => {
                    self.last = version;
                    Some(Ok((order, version)))
                }
                Ok(_) => continue,
                Err(error) => Some(Err(error)),
            };
        }
    }
}

fn order_ended(order: &OrderState) -> bool {
    matches!(order.stage, Stage::Closed | Stage::Cancelled)
}

fn country(code: Option<aftersales_proto::common::CountryCode>) -> Result<String, Status> {
    let code = code.map(|c| c.value).unwrap_or_default();
    if code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(code)
    } else {
        Err(invalid(
            "country",
            "must be an ISO 3166-1 alpha-2 code, e.g. \"IN\"",
        ))
    }
}

fn point_to_proto(p: aftersales_network::Point) -> aftersales_proto::common::GeoPoint {
    aftersales_proto::common::GeoPoint {
        latitude: p.latitude,
        longitude: p.longitude,
    }
}

fn plan_figures(f: aftersales_network::Figures) -> pb::PlanFigures {
    pb::PlanFigures {
        customers: f.customers,
        beyond_reach: f.beyond_reach,
        expected_p90_days: f.expected_p90_days,
    }
}

fn demand_area_to_proto(a: &network::DemandArea) -> pb::DemandArea {
    #[allow(clippy::cast_precision_loss)] // counts far below 2^52
    let mail_in_share = if a.repairs == 0 {
        0.0
    } else {
        a.mail_ins as f64 / a.repairs as f64
    };
    pb::DemandArea {
        area_id: a.area,
        city: a.city.clone(),
        point: Some(point_to_proto(a.point)),
        customers: a.customers,
        devices: a.devices,
        repairs: a.repairs,
        mail_in_share,
        mail_in_p50_days: a.mail_in_p50_days,
        mail_in_p90_days: a.mail_in_p90_days,
        nearest_center_km: a.nearest_center.as_ref().map(|n| n.1),
        nearest_center_id: a
            .nearest_center
            .as_ref()
            .map(|n| n.0.clone())
            .unwrap_or_default(),
    }
}

fn quality_row_to_proto(row: &network::QualityRow) -> pb::QualityRow {
    let f = &row.figures;
    let stages = f
        .stages
        .iter()
        .filter_map(|(name, p50, p90, orders)| {
            let st = Stage::ALL.into_iter().find(|s| s.as_str() == name)?;
            Some(pb::StageTurnaround {
                stage: stage(st).into(),
                p50_hours: *p50,
                p90_hours: *p90,
                orders: *orders,
            })
        })
        .collect();
    pb::QualityRow {
        service_center_id: row.center_id.clone(),
        technician: row.technician.clone(),
        week: row.week.map(|w| w.to_string()).unwrap_or_default(),
        figures: Some(pb::QualityFigures {
            orders: f.orders,
            stages,
            turnaround_p50_hours: f.turnaround_p50_hours,
            turnaround_p90_hours: f.turnaround_p90_hours,
            first_time_fix_rate: f.first_time_fix_rate(),
            repaired: f.repaired,
            qc_failure_rate: f.qc_failure_rate(),
            quotes_issued: f.quotes_issued,
            quotes_declined: f.quotes_declined,
            parcels_slow_in: f.parcels_slow_in,
            parcels_slow_out: f.parcels_slow_out,
        }),
        flags: row
            .flags
            .iter()
            .map(|flag| pb::QualityFlag {
                figure: flag.figure.to_owned(),
                value: flag.value,
                network_median: flag.median,
                why: flag.why.clone(),
            })
            .collect(),
    }
}
