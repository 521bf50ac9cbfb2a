//! The payment provider's webhook (`aftersales_payments::webhook`): a plan's
//! payment settles once however often, and in whatever order, its events
//! arrive, because the device decider applies an outcome only to the payment it
//! is waiting for.

use aftersales_core::{ErrorKind, SharedClock};
use aftersales_eventstore::CommandContext;
use aftersales_payments::PaymentStatus;
use aftersales_payments::webhook::{Merchant, SettleError, Settled};
use uuid::Uuid;

use crate::app::Warranty;

/// Warranty as the merchant of extended plans.
#[derive(Debug, Clone)]
pub struct PlanPayments {
    pub app: Warranty,
    pub region: String,
    pub clock: SharedClock,
}

impl Merchant for PlanPayments {
    async fn settle(
        &self,
        payment_id: &str,
        outcome: PaymentStatus,
        traceparent: Option<String>,
    ) -> Result<Settled, SettleError> {
        let ctx = CommandContext {
            command_id: None,
            correlation_id: Uuid::now_v7(),
            causation_id: None,
            traceparent,
            tracestate: None,
            actor: "service:payments".into(),
            region: self.region.clone(),
            now: self.clock.now(),
            request_fingerprint: None,
        };
        match self
            .app
            .settle_from_webhook(payment_id, outcome, &ctx)
            .await
        {
            Ok(true) => Ok(Settled::Now),
            Ok(false) => Ok(Settled::Before),
            Err(error) if error.kind() == ErrorKind::NotFound => Err(SettleError::Unknown),
            Err(error) => Err(SettleError::Unavailable(error.to_string())),
        }
    }
}
