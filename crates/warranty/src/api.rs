//! `aftersales.warranty.v1.WarrantyService` over gRPC: requests checked and turned
//! into use cases, answers and errors turned into the contract's messages and codes.

use aftersales_core::types::CustomerId;
use aftersales_eventstore::{CommandContext, StreamHead};
use aftersales_proto::common::{CountryCode, Money};
use aftersales_proto::warranty as pb;
use aftersales_proto::warranty::warranty_service_server::WarrantyService;
use aftersales_runtime::auth::{Caller, Owner};
use aftersales_runtime::errors::{invalid, status};
use aftersales_runtime::notary::Notary;
use aftersales_runtime::paging;
use aftersales_runtime::request::Requests;
use aftersales_runtime::request::timestamp_from_proto;
use chrono::{DateTime, NaiveDate, Utc};
use tonic::{Request, Response, Status};

use crate::app::{Asked, Registration, Warranty, Written, describe_break};
use crate::convert::{
    accessory_kind, channel, decision_to_proto, device_key, device_to_proto, effective_on, fault,
    hex, history_event, summary,
};
use crate::domain::device::DeviceState;
use crate::domain::{DeviceKey, DomainError, PurchaseProof};

/// The gRPC face of [`Warranty`].
#[derive(Debug, Clone)]
pub struct WarrantyApi {
    app: Warranty,
    requests: Requests,
    notary: Notary,
}

impl WarrantyApi {
    /// `notary` reads the heads histories are verified against.
    pub fn new(app: Warranty, requests: Requests, notary: Notary) -> Self {
        Self {
            app,
            requests,
            notary,
        }
    }

    /// Who asks, as part of what: from the request's metadata.
    fn context<T: prost::Message>(&self, request: &Request<T>) -> Result<CommandContext, Status> {
        self.requests.context(request)
    }
}

fn date(field: &str, value: &str) -> Result<NaiveDate, Status> {
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .map_err(|_| invalid(field, "must be a date as YYYY-MM-DD"))
}

fn as_of(value: Option<&prost_types::Timestamp>) -> Result<Option<DateTime<Utc>>, Status> {
    value
        .map(|t| timestamp_from_proto("as_of", Some(t)))
        .transpose()
}

fn optional_date(field: &str, value: &str) -> Result<Option<NaiveDate>, Status> {
    let value = value.trim();
    (!value.is_empty()).then(|| date(field, value)).transpose()
}

/// A question's two times: `fault_date` and `known_at`, or the older `as_of`
/// standing for both.
fn asked(
    as_of_time: Option<&prost_types::Timestamp>,
    fault_date: &str,
    known_at: Option<&prost_types::Timestamp>,
    serviced_in: Option<&CountryCode>,
) -> Result<Asked, Status> {
    let fault_date = optional_date("fault_date", fault_date)?;
    let known_at = known_at
        .map(|t| timestamp_from_proto("known_at", Some(t)))
        .transpose()?;
    let serviced_in = serviced_in
        .map(|c| c.value.trim().to_owned())
        .filter(|c| !c.is_empty());
    match as_of(as_of_time)? {
        Some(_) if fault_date.is_some() || known_at.is_some() => Err(invalid(
            "as_of",
            "stands for both times; give fault_date and known_at instead",
        )),
        Some(at) => Ok(Asked {
            fault_date: Some(at.date_naive()),
            known_at: Some(at),
            serviced_in,
        }),
        None => Ok(Asked {
            fault_date,
            known_at,
            serviced_in,
        }),
    }
}

fn unhex(field: &str, text: &str) -> Result<[u8; 32], Status> {
    let bad = || invalid(field, "must be 64 hex digits");
    if text.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16)
            .map_err(|_| bad())?;
    }
    Ok(out)
}

fn customer(field: &'static str, value: &str) -> Result<CustomerId, Status> {
    CustomerId::parse(field, value).map_err(|e| status(e.into()))
}

/// A page of devices: 50 by default, 500 at most.
const DEVICES_PAGE: paging::Limit = paging::Limit {
    default: 50,
    max: 500,
};

/// The page size asked for, as SQL takes it.
fn page_size(requested: u32) -> i64 {
    i64::try_from(DEVICES_PAGE.size(requested)).unwrap_or(i64::MAX)
}

/// A device's owner, for the policy's objects.
fn owned_by(customer: &str) -> Owner<'_> {
    Owner {
        customer: Some(customer),
        center: None,
    }
}

/// What an unknown device answers, and so what another customer's device answers.
fn not_found(key: &DeviceKey) -> Status {
    status(DomainError::NotFound(key.to_string()).into())
}

/// A customer acts for themselves only.
fn own_customer(caller: &Caller, customer: &str) -> Result<(), Status> {
    if caller.may_touch(owned_by(customer)) {
        Ok(())
    } else {
        Err(Status::permission_denied(
            "a customer acts on their own account only",
        ))
    }
}

impl WarrantyApi {
    /// Refuses, as if it did not exist, a device the caller may not touch.
    async fn own_device(&self, caller: &Caller, key: &DeviceKey) -> Result<(), Status> {
        if caller.needs_owner() {
            let state = self.app.device(key, None).await.map_err(status)?;
            if !caller.may_touch(owned_by(&state.customer_id)) {
                return Err(not_found(key));
            }
        }
        Ok(())
    }

    /// A device whose home is another region, from this region's replica. Its
    /// owner is not replicated (it is personal), so only staff see it here.
    async fn foreign_device(&self, caller: &Caller, key: &DeviceKey) -> Result<pb::Device, Status> {
        let device = self
            .app
            .foreign_device(key)
            .await
            .map_err(status)?
            .filter(|_| caller.may_touch(owned_by("")))
            .ok_or_else(|| not_found(key))?;
        Ok(crate::convert::foreign_device_to_proto(
            &device,
            self.requests.clock.now().date_naive(),
            false,
        ))
    }

    async fn written_response(&self, written: &Written) -> Result<pb::Device, Status> {
        match written {
            Written::Here(state) => self.device_response(state).await,
            Written::Forwarded(device) => Ok(crate::convert::foreign_device_to_proto(
                device,
                self.requests.clock.now().date_naive(),
                true,
            )),
        }
    }

    async fn device_response(&self, state: &DeviceState) -> Result<pb::Device, Status> {
        let version = self
            .app
            .store()
            .stream_head(
                &aftersales_eventstore::StreamId::parse(state.key.stream_name())
                    .map_err(|e| invalid("device_id", e.to_string()))?,
            )
            .await
            .map_err(|e| status(e.into()))?
            .map_or(0, |h| h.version);
        Ok(device_to_proto(
            state,
            version,
            self.requests.clock.now().date_naive(),
        ))
    }
}

use aftersales_eventstore::EventStore as _;

#[tonic::async_trait]
impl WarrantyService for WarrantyApi {
    async fn register_device(
        &self,
        request: Request<pb::RegisterDeviceRequest>,
    ) -> Result<Response<pb::Device>, Status> {
        let caller = Caller::of(&request);
        let ctx = self.context(&request)?;
        let r = request.into_inner();
        let registration = Registration {
            key: device_key(r.device_id.as_ref())?,
            model: r.model,
            purchase_date: date("purchase_date", &r.purchase_date)?,
            country: r
                .country_of_purchase
                .map(|c| c.value.trim().to_ascii_uppercase())
                .ok_or_else(|| invalid("country_of_purchase", "is required"))?,
            channel: channel(r.channel)?,
            customer_id: customer("customer_id", &r.customer_id)?.to_string(),
            // A customer's word; staff and the sales record are checked facts.
            proof: if caller.is_customer() {
                PurchaseProof::CustomerDeclared
            } else {
                PurchaseProof::Verified
            },
            activation_date: optional_date("activation_date", &r.activation_date)?,
        };
        own_customer(&caller, &registration.customer_id)?;
        let state = self
            .app
            .register(registration, &ctx)
            .await
            .map_err(status)?;
        Ok(Response::new(self.device_response(&state).await?))
    }

    async fn get_device(
        &self,
        request: Request<pb::GetDeviceRequest>,
    ) -> Result<Response<pb::Device>, Status> {
        let caller = Caller::of(&request);
        let key = device_key(request.get_ref().device_id.as_ref())?;
        let state = match self.app.device(&key, None).await {
            Err(error) if error.kind() == aftersales_core::ErrorKind::NotFound => {
                return self.foreign_device(&caller, &key).await.map(Response::new);
            }
            state => state.map_err(status)?,
        };
        if !caller.may_touch(owned_by(&state.customer_id)) {
            return Err(not_found(&key));
        }
        Ok(Response::new(self.device_response(&state).await?))
    }

    async fn list_devices_by_customer(
        &self,
        request: Request<pb::ListDevicesByCustomerRequest>,
    ) -> Result<Response<pb::ListDevicesByCustomerResponse>, Status> {
        let caller = Caller::of(&request);
        let r = request.into_inner();
        let customer = customer("customer_id", &r.customer_id)?;
        let limit = page_size(r.page_size);
        // Another customer's devices are listed as none, as for a stranger.
        let rows = if caller.may_touch(owned_by(customer.as_str())) {
            self.app
                .devices_of_customer(customer.as_str(), &r.page_token, limit)
                .await
                .map_err(status)?
        } else {
            Vec::new()
        };
        let next_page_token = if i64::try_from(rows.len()).unwrap_or(i64::MAX) == limit {
            rows.last().map(|r| r.stream_id.clone()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListDevicesByCustomerResponse {
            devices: rows.iter().map(summary).collect(),
            next_page_token,
        }))
    }

    async fn check_coverage(
        &self,
        request: Request<pb::CheckCoverageRequest>,
    ) -> Result<Response<pb::CoverageDecision>, Status> {
        let caller = Caller::of(&request);
        let ctx = self.context(&request)?;
        let r = request.into_inner();
        let key = device_key(r.device_id.as_ref())?;
        self.own_device(&caller, &key).await?;
        // A decision on the record is the workshop's, made at diagnosis or claim.
        if r.record_decision && caller.is_customer() {
            return Err(Status::permission_denied(
                "recording a coverage decision is for staff and services; ask without record_decision",
            ));
        }
        let asked = asked(
            r.as_of.as_ref(),
            &r.fault_date,
            r.known_at.as_ref(),
            r.serviced_in.as_ref(),
        )?;
        let decided = self
            .app
            .check_coverage(
                &key,
                fault(r.fault_category)?,
                &asked,
                r.record_decision,
                &ctx,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(pb::CoverageDecision {
            replica: decided
                .replica
                .as_ref()
                .map(|d| crate::convert::replica_to_proto(d, false)),
            ..decision_to_proto(&decided.decision, decided.times.known_at)
        }))
    }

    async fn purchase_extended_warranty(
        &self,
        request: Request<pb::PurchaseExtendedWarrantyRequest>,
    ) -> Result<Response<pb::Device>, Status> {
        let caller = Caller::of(&request);
        let ctx = self.context(&request)?;
        let r = request.into_inner();
        let key = device_key(r.device_id.as_ref())?;
        self.own_device(&caller, &key).await?;
        if r.plan_id.trim().is_empty() {
            return Err(invalid("plan_id", "is required"));
        }
        if r.payment_method.trim().is_empty() || r.payment_method.len() > 200 {
            return Err(invalid(
                "payment_method",
                "is required: the payment method from the provider's checkout",
            ));
        }
        let state = self
            .app
            .purchase_plan(&key, r.plan_id.trim(), r.payment_method.trim(), &ctx)
            .await
            .map_err(status)?;
        Ok(Response::new(self.device_response(&state).await?))
    }

    async fn cancel_extended_warranty(
        &self,
        request: Request<pb::CancelExtendedWarrantyRequest>,
    ) -> Result<Response<pb::CancelExtendedWarrantyResponse>, Status> {
        let caller = Caller::of(&request);
        let ctx = self.context(&request)?;
        let key = device_key(request.get_ref().device_id.as_ref())?;
        self.own_device(&caller, &key).await?;
        let cancelled = self.app.cancel_plan(&key, &ctx).await.map_err(status)?;
        Ok(Response::new(pb::CancelExtendedWarrantyResponse {
            device: Some(self.device_response(&cancelled.state).await?),
            refund: Some(Money {
                minor_units: cancelled.refund_minor,
                currency: cancelled.currency,
            }),
            refund_id: cancelled.refund_id.unwrap_or_default(),
        }))
    }

    async fn register_accessory(
        &self,
        request: Request<pb::RegisterAccessoryRequest>,
    ) -> Result<Response<pb::Device>, Status> {
        let caller = Caller::of(&request);
        let ctx = self.context(&request)?;
        let r = request.into_inner();
        let key = device_key(r.device_id.as_ref())?;
        self.own_device(&caller, &key).await?;
        let state = self
            .app
            .register_accessory(
                &key,
                &r.accessory_serial,
                accessory_kind(r.kind)?,
                date("purchase_date", &r.purchase_date)?,
                Some(r.replaces_serial.trim().to_owned()).filter(|s| !s.is_empty()),
                &ctx,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(self.device_response(&state).await?))
    }

    async fn check_accessory_coverage(
        &self,
        request: Request<pb::CheckAccessoryCoverageRequest>,
    ) -> Result<Response<pb::CoverageDecision>, Status> {
        let caller = Caller::of(&request);
        let ctx = self.context(&request)?;
        let r = request.into_inner();
        let key = device_key(r.device_id.as_ref())?;
        self.own_device(&caller, &key).await?;
        let asked = asked(r.as_of.as_ref(), &r.fault_date, r.known_at.as_ref(), None)?;
        let (decision, times) = self
            .app
            .check_accessory_coverage(
                &key,
                r.accessory_serial.trim(),
                fault(r.fault_category)?,
                &asked,
                ctx.now,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(decision_to_proto(&decision, times.known_at)))
    }

    async fn void_warranty(
        &self,
        request: Request<pb::VoidWarrantyRequest>,
    ) -> Result<Response<pb::Device>, Status> {
        let ctx = self.context(&request)?;
        let r = request.into_inner();
        let key = device_key(r.device_id.as_ref())?;
        let written = self
            .app
            .void(&key, &r.reason, r.evidence, &ctx)
            .await
            .map_err(status)?;
        Ok(Response::new(self.written_response(&written).await?))
    }

    async fn transfer_ownership(
        &self,
        request: Request<pb::TransferOwnershipRequest>,
    ) -> Result<Response<pb::Device>, Status> {
        let caller = Caller::of(&request);
        let ctx = self.context(&request)?;
        let r = request.into_inner();
        let key = device_key(r.device_id.as_ref())?;
        self.own_device(&caller, &key).await?;
        let state = self
            .app
            .transfer(
                &key,
                customer("new_customer_id", &r.new_customer_id)?.as_str(),
                &ctx,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(self.device_response(&state).await?))
    }

    async fn record_claim(
        &self,
        request: Request<pb::RecordClaimRequest>,
    ) -> Result<Response<pb::RecordClaimResponse>, Status> {
        let ctx = self.context(&request)?;
        let r = request.into_inner();
        let key = device_key(r.device_id.as_ref())?;
        let (written, duplicate) = self
            .app
            .record_claim(
                &key,
                &r.repair_order_id,
                fault(r.fault_category)?,
                optional_date("fault_date", &r.fault_date)?,
                &ctx,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(pb::RecordClaimResponse {
            device: Some(self.written_response(&written).await?),
            duplicate,
        }))
    }

    async fn get_device_history(
        &self,
        request: Request<pb::GetDeviceHistoryRequest>,
    ) -> Result<Response<pb::GetDeviceHistoryResponse>, Status> {
        let caller = Caller::of(&request);
        let r = request.into_inner();
        let key = device_key(r.device_id.as_ref())?;
        self.own_device(&caller, &key).await?;
        let known_at = match (as_of(r.as_of.as_ref())?, r.known_at.as_ref()) {
            (Some(_), Some(_)) => return Err(invalid("as_of", "give known_at alone")),
            (Some(at), None) => Some(at),
            (None, known_at) => known_at
                .map(|t| timestamp_from_proto("known_at", Some(t)))
                .transpose()?,
        };
        let effective_until = optional_date("effective_until", &r.effective_until)?;
        let from = paging::version_after(&r.page_token)?;
        let size = paging::HISTORY_PAGE.size(r.page_size);
        let read = self
            .app
            .history(&key, from, size.saturating_add(1))
            .await
            .map_err(status)?;
        let page = &read[..paging::fill(&read, size, |e| e.payload.len())];
        let next_page_token = match page.last() {
            Some(last) if page.len() < read.len() => (last.stream_version + 1).to_string(),
            _ => String::new(),
        };
        Ok(Response::new(pb::GetDeviceHistoryResponse {
            events: page
                .iter()
                .filter(|e| known_at.is_none_or(|t| e.metadata.recorded_at <= t))
                .filter(|e| effective_until.is_none_or(|until| effective_on(e) <= until))
                .map(history_event)
                .collect(),
            next_page_token,
        }))
    }

    async fn verify_device_history(
        &self,
        request: Request<pb::VerifyDeviceHistoryRequest>,
    ) -> Result<Response<pb::VerifyDeviceHistoryResponse>, Status> {
        let r = request.into_inner();
        let key = device_key(r.device_id.as_ref())?;
        let trusted = if r.trusted_hash.is_empty() {
            None
        } else {
            Some(StreamHead {
                version: r.trusted_version,
                hash: unhex("trusted_hash", &r.trusted_hash)?,
            })
        };
        let trust = self
            .notary
            .trust(&crate::app::stream(&key).map_err(status)?, trusted)
            .await;
        let report = self.app.verify(&key, trust.head).await.map_err(status)?;
        let snapshot = self.app.verify_snapshot(&key).await.map_err(status)?;
        let (problem, first_bad_version) = match (&report.first_break, snapshot, &trust.forged) {
            (Some(aftersales_eventstore::ChainBreak::HeadMismatch { expected, .. }), _, _) => (
                format!(
                    "the history does not contain {}: events were removed, changed or hashed again",
                    trust.against
                ),
                expected.version,
            ),
            (Some(problem), _, _) => describe_break(problem),
            (None, Some(version), _) => (
                format!(
                    "the snapshot at version {version} does not match the events up to it: edited"
                ),
                version,
            ),
            (None, None, Some(forged)) => (forged.clone(), 0),
            (None, None, None) => Default::default(),
        };
        Ok(Response::new(pb::VerifyDeviceHistoryResponse {
            intact: problem.is_empty(),
            events_checked: report.events_checked,
            problem,
            first_bad_version,
            head_hash: report.head.map(|h| hex(&h.hash)).unwrap_or_default(),
            checked_against: trust.against,
        }))
    }

    async fn list_expiring_warranties(
        &self,
        request: Request<pb::ListExpiringWarrantiesRequest>,
    ) -> Result<Response<pb::ListExpiringWarrantiesResponse>, Status> {
        let ctx = self.context(&request)?;
        let r = request.into_inner();
        if r.days == 0 || r.days > 3650 {
            return Err(invalid("days", "must be between 1 and 3650"));
        }
        let rows = self
            .app
            .expiring(ctx.now.date_naive(), r.days, page_size(r.page_size))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ListExpiringWarrantiesResponse {
            devices: rows.iter().map(summary).collect(),
        }))
    }
    async fn list_programmes(
        &self,
        request: Request<pb::ListProgrammesRequest>,
    ) -> Result<Response<pb::ListProgrammesResponse>, Status> {
        self.context(&request)?;
        let programmes = self.app.programmes().await.map_err(status)?;
        Ok(Response::new(pb::ListProgrammesResponse {
            programmes: programmes
                .iter()
                .map(|(p, affected, remedied)| {
                    crate::convert::programme_to_proto(p, *affected, *remedied)
                })
                .collect(),
        }))
    }
}
