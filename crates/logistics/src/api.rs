//! `aftersales.logistics.v1.LogisticsService` over the use cases in [`crate::app`].

use aftersales_core::Error;
use aftersales_core::types::{OrderId, ShipmentId};
use aftersales_eventstore::CommandContext;
use aftersales_proto::logistics as pb;
use aftersales_proto::logistics::logistics_service_server::LogisticsService;
use aftersales_runtime::auth::{Caller, Owner};
use aftersales_runtime::errors::{invalid, status};
use aftersales_runtime::request::Requests;
use aftersales_runtime::request::timestamp_from_proto;
use aftersales_runtime::request::timestamp_to_proto;
use tonic::{Request, Response, Status};

use crate::app::{Logistics, NewShipment, ShipmentView};
use crate::convert::{address_from_proto, shipment_to_proto, status_from_proto, status_to_proto};
use crate::domain::DomainError;
use crate::domain::shipment::{Direction, Parcel, Purpose};
use crate::domain::tracking::Scan;

#[derive(Debug, Clone)]
pub struct LogisticsApi {
    app: Logistics,
    requests: Requests,
}

impl LogisticsApi {
    pub fn new(app: Logistics, requests: Requests) -> Self {
        Self { app, requests }
    }

    fn context<T: prost::Message>(&self, request: &Request<T>) -> Result<CommandContext, Status> {
        self.requests.context(request)
    }
}

type Answer<T> = Result<Response<T>, Status>;

fn shipment_answer(result: Result<ShipmentView, Error>) -> Answer<pb::Shipment> {
    result
        .map(|view| Response::new(shipment_to_proto(&view)))
        .map_err(status)
}

fn required<'a>(field: &str, value: &'a str) -> Result<&'a str, Status> {
    let value = value.trim();
    if value.is_empty() {
        Err(invalid(field, "is required"))
    } else {
        Ok(value)
    }
}

fn shipment_id(value: &str) -> Result<ShipmentId, Status> {
    ShipmentId::parse("shipment_id", value).map_err(|e| status(e.into()))
}

fn order_id(value: &str) -> Result<OrderId, Status> {
    OrderId::parse("repair_order_id", value).map_err(|e| status(e.into()))
}

impl LogisticsApi {
    /// Whether the caller may see the order `order_id`'s logistics: its customer,
    /// or staff.
    async fn may_see_order(&self, caller: &Caller, order_id: &str) -> Result<bool, Status> {
        if !caller.needs_owner() {
            return Ok(true);
        }
        let order = self.app.order(order_id).await.map_err(status)?;
        Ok(caller.may_touch(Owner {
            customer: order.customer_id.as_deref(),
            center: None,
        }))
    }

    /// The shipment `id`, if the caller may see it: a parcel of another
    /// customer's order answers as one that does not exist.
    async fn shipment(&self, caller: &Caller, id: &ShipmentId) -> Result<ShipmentView, Status> {
        let view = self.app.shipment(id.as_str()).await.map_err(status)?;
        let order = view.state.info.purpose.repair_order().unwrap_or_default();
        if caller.needs_owner() && !self.may_see_order(caller, order).await? {
            return Err(status(
                DomainError::NotFound(format!("shipment {id}")).into(),
            ));
        }
        Ok(view)
    }
}

#[tonic::async_trait]
impl LogisticsService for LogisticsApi {
    async fn create_shipment(
        &self,
        request: Request<pb::CreateShipmentRequest>,
    ) -> Answer<pb::Shipment> {
        let ctx = self.context(&request)?;
        let r = request.into_inner();
        let direction =
            match pb::Direction::try_from(r.direction).unwrap_or(pb::Direction::Unspecified) {
                pb::Direction::Unspecified => {
                    return Err(invalid("direction", "is required: inbound or outbound"));
                }
                pb::Direction::Inbound => Direction::Inbound,
                pb::Direction::Outbound => Direction::Outbound,
            };
        let purpose = match (r.repair_order_id.trim(), r.accessory_replacement_id.trim()) {
            (order, "") if !order.is_empty() => Purpose::RepairOrder(order.to_owned()),
            ("", replacement) if !replacement.is_empty() => {
                Purpose::AccessoryReplacement(replacement.to_owned())
            }
            _ => {
                return Err(invalid(
                    "repair_order_id",
                    "exactly one of repair_order_id and accessory_replacement_id is required",
                ));
            }
        };
        // An accessory parcel's depot end is the depot serving the customer's country.
        let accessory = matches!(purpose, Purpose::AccessoryReplacement(_));
        let serving = |a: &crate::domain::shipment::Address| {
            let depot = self.app.depots().for_country(&a.country);
            (depot.address(), Some(depot.id.clone()))
        };
        let (from, to, depot) = match (r.from.map(address_from_proto), r.to.map(address_from_proto))
        {
            (Some(from), Some(to)) => (from, to, None),
            (None, Some(to)) if accessory && direction == Direction::Outbound => {
                let (from, depot) = serving(&to);
                (from, to, depot)
            }
            (Some(from), None) if accessory && direction == Direction::Inbound => {
                let (to, depot) = serving(&from);
                (from, to, depot)
            }
            (_, None) => return Err(invalid("to", "is required")),
            (None, Some(_)) => return Err(invalid("from", "is required")),
        };
        let parcel = r.parcel.ok_or_else(|| invalid("parcel", "is required"))?;
        let new = NewShipment {
            customer_id: None,
            direction,
            purpose,
            from,
            to,
            parcel: Parcel {
                weight_grams: parcel.weight_grams,
                length_mm: parcel.length_mm,
                width_mm: parcel.width_mm,
                height_mm: parcel.height_mm,
            },
            carrier: Some(r.carrier),
            depot,
        };
        shipment_answer(self.app.create_shipment(new, &ctx).await)
    }

    async fn get_shipment(&self, request: Request<pb::ShipmentRef>) -> Answer<pb::Shipment> {
        let id = shipment_id(&request.get_ref().shipment_id)?;
        let view = self.shipment(&Caller::of(&request), &id).await?;
        Ok(Response::new(shipment_to_proto(&view)))
    }

    async fn list_shipments_by_repair(
        &self,
        request: Request<pb::ListShipmentsByRepairRequest>,
    ) -> Answer<pb::ListShipmentsResponse> {
        let id = order_id(&request.get_ref().repair_order_id)?;
        // Another customer's order has no parcels, as an unknown order has none.
        let views = if self
            .may_see_order(&Caller::of(&request), id.as_str())
            .await?
        {
            self.app
                .shipments_of_order(id.as_str())
                .await
                .map_err(status)?
        } else {
            Vec::new()
        };
        Ok(Response::new(pb::ListShipmentsResponse {
            shipments: views.iter().map(shipment_to_proto).collect(),
        }))
    }

    async fn get_tracking_timeline(
        &self,
        request: Request<pb::ShipmentRef>,
    ) -> Answer<pb::TrackingTimeline> {
        let id = shipment_id(&request.get_ref().shipment_id)?;
        let view = self.shipment(&Caller::of(&request), &id).await?;
        let s = &view.state;
        Ok(Response::new(pb::TrackingTimeline {
            shipment_id: s.info.shipment_id.clone(),
            carrier: s.info.carrier.clone(),
            tracking_number: s
                .label
                .as_ref()
                .map(|l| l.tracking_number.clone())
                .unwrap_or_default(),
            status: s
                .tracking
                .status()
                .map_or(pb::TrackingStatus::Unspecified, status_to_proto)
                .into(),
            scans: s
                .tracking
                .scans()
                .iter()
                .map(|scan| pb::Scan {
                    carrier_event_id: scan.carrier_event_id.clone(),
                    status: status_to_proto(scan.status).into(),
                    location: scan.location.clone(),
                    description: scan.description.clone(),
                    occurred_at: Some(timestamp_to_proto(scan.occurred_at)),
                    recorded_at: Some(timestamp_to_proto(scan.recorded_at)),
                })
                .collect(),
        }))
    }

    async fn record_tracking_event(
        &self,
        request: Request<pb::RecordTrackingEventRequest>,
    ) -> Answer<pb::RecordTrackingEventResponse> {
        let ctx = self.context(&request)?;
        let r = request.into_inner();
        let carrier = required("carrier", &r.carrier)?.to_owned();
        let tracking_number = required("tracking_number", &r.tracking_number)?.to_owned();
        let scan = Scan {
            carrier_event_id: r.carrier_event_id,
            status: status_from_proto(r.status)?,
            location: r.location,
            description: r.description,
            occurred_at: timestamp_from_proto("occurred_at", r.occurred_at.as_ref())?,
            recorded_at: ctx.now,
        };
        let outcome = self
            .app
            .record_scan(&carrier, &tracking_number, scan, &ctx)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::RecordTrackingEventResponse {
            shipment_id: outcome.shipment_id,
            duplicate: outcome.duplicate,
            status: outcome
                .status
                .map_or(pb::TrackingStatus::Unspecified, status_to_proto)
                .into(),
        }))
    }

    async fn cancel_shipment(
        &self,
        request: Request<pb::CancelShipmentRequest>,
    ) -> Answer<pb::Shipment> {
        let ctx = self.context(&request)?;
        let r = request.into_inner();
        let id = shipment_id(&r.shipment_id)?;
        shipment_answer(self.app.cancel(id.as_str(), r.reason, &ctx).await)
    }

    async fn get_label(&self, request: Request<pb::ShipmentRef>) -> Answer<pb::Label> {
        let id = shipment_id(&request.get_ref().shipment_id)?;
        let view = self.shipment(&Caller::of(&request), &id).await?;
        let label = view
            .state
            .label
            .ok_or_else(|| status(Error::precondition("the shipment has no label yet")))?;
        Ok(Response::new(pb::Label {
            shipment_id: view.state.info.shipment_id,
            carrier: view.state.info.carrier,
            tracking_number: label.tracking_number,
            content_type: label.content_type,
            document: label.document.into_bytes(),
            barcode: label.barcode,
        }))
    }

    async fn get_custody_timeline(
        &self,
        request: Request<pb::CustodyRequest>,
    ) -> Answer<pb::CustodyTimeline> {
        let id = order_id(&request.get_ref().repair_order_id)?;
        if !self
            .may_see_order(&Caller::of(&request), id.as_str())
            .await?
        {
            return Err(status(
                DomainError::NotFound(format!("repair order {id}")).into(),
            ));
        }
        let steps = self.app.custody(id.as_str()).await.map_err(status)?;
        Ok(Response::new(pb::CustodyTimeline {
            repair_order_id: id.to_string(),
            steps: steps
                .into_iter()
                .map(|s| pb::CustodyStep {
                    at: Some(timestamp_to_proto(s.at)),
                    holder: s.holder,
                    evidence: s.evidence,
                    location: s.location,
                    shipment_id: s.shipment_id.unwrap_or_default(),
                })
                .collect(),
        }))
    }

    async fn play_sandbox_script(
        &self,
        request: Request<pb::PlaySandboxScriptRequest>,
    ) -> Answer<pb::PlaySandboxScriptResponse> {
        let ctx = self.context(&request)?;
        let r = request.into_inner();
        let id = shipment_id(&r.shipment_id)?;
        if r.step_millis > 60_000 {
            return Err(invalid("step_millis", "must be at most 60000"));
        }
        let view = self.app.shipment(id.as_str()).await.map_err(status)?;
        let count = self
            .app
            .play_sandbox(&view, &r.script, r.step_millis, ctx)
            .map_err(status)?;
        Ok(Response::new(pb::PlaySandboxScriptResponse {
            scans_scheduled: u32::try_from(count).unwrap_or(u32::MAX),
        }))
    }
}
