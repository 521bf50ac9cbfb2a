//! Taking money for what the platform sells (extended warranty plans today;
//! parts and accessories next), behind one small interface a real payment
//! service provider implements:
//!
//! - a payment is created once per idempotency key (a retried request finds
//!   the same payment; the same key for another amount is refused);
//! - it settles later, as a real one does after the customer authenticates
//!   with their bank, and grants nothing before it succeeded. The provider says
//!   so by signed webhook ([`webhook`]): each event delivered at least once,
//!   possibly again and out of order, so the merchant applies each outcome
//!   once and ignores what comes late; asking for the payment's status is the
//!   merchant's reconciliation for a webhook that never came.
//!
//! [`Sandbox`] behaves that way without moving money: payment methods name
//! their outcome (`sandbox-ok`, `sandbox-declined`, `sandbox-insufficient-funds`,
//! `sandbox-pending`), a payment settles a configurable delay after it is
//! created, and with a webhook configured its events are posted, signed, as
//! many times as asked and every other time in reverse order.

pub mod service;
pub mod webhook;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

pub use service::{PAYMENTS_WEBHOOK, PaymentArgs};
pub use webhook::{Outcome, SandboxWebhook};

/// What to take, from whom, and the key that makes asking twice harmless.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRequest {
    pub idempotency_key: String,
    pub amount_minor: i64,
    /// ISO 4217.
    pub currency: String,
    /// Shown on the customer's statement.
    pub description: String,
    /// The customer's payment method, as the provider's checkout gave it.
    pub method: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentStatus {
    /// Waiting for the customer or their bank.
    Pending,
    Succeeded,
    Failed {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub id: String,
    pub amount_minor: i64,
    pub currency: String,
    pub status: PaymentStatus,
}

/// Money given back on a payment that succeeded, once per idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    pub idempotency_key: String,
    pub payment_id: String,
    pub amount_minor: i64,
}

/// A refund as the provider took it: it succeeds later, by webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    pub id: String,
    pub payment_id: String,
    pub amount_minor: i64,
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    /// The request itself is wrong (amount, currency, method); asking again
    /// will not help.
    #[error("{0}")]
    Invalid(String),
    /// The idempotency key was used for another payment.
    #[error("idempotency key {0} was used for another payment")]
    KeyReused(String),
    #[error("no payment {0}")]
    NotFound(String),
    /// The provider cannot be reached now; asking again may help.
    #[error("the payment provider is unavailable: {0}")]
    Unavailable(String),
}

/// What the provider's refusal means to a caller.
impl From<PaymentError> for aftersales_core::Error {
    fn from(error: PaymentError) -> Self {
        match error {
            PaymentError::Invalid(why) => Self::invalid("payment_method", why),
            PaymentError::KeyReused(key) => Self::already_exists(format!(
                "the payment key {key} was used for another payment"
            )),
            PaymentError::NotFound(id) => {
                Self::internal(format!("the provider does not know payment {id}"))
            }
            PaymentError::Unavailable(why) => Self::unavailable(why),
        }
    }
}

pub type PaymentFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, PaymentError>> + Send + 'a>>;

/// A payment service provider.
pub trait PaymentProvider: Send + Sync + std::fmt::Debug {
    /// Creates the payment for `request`, or finds the one its key created.
    fn create<'a>(&'a self, request: &'a PaymentRequest) -> PaymentFuture<'a, Payment>;
    /// The payment as it stands now.
    fn get<'a>(&'a self, id: &'a str) -> PaymentFuture<'a, Payment>;
    /// Gives back part or all of a payment that succeeded; the key makes
    /// asking again the same refund.
    fn refund<'a>(&'a self, request: &'a RefundRequest) -> PaymentFuture<'a, Refund>;
}

/// A provider without money: outcomes chosen by the payment method, settled a
/// while after creation.
#[derive(Debug)]
pub struct Sandbox {
    settle_after: Duration,
    payments: Mutex<HashMap<String, Stored>>,
    by_key: Mutex<HashMap<String, String>>,
    refunds: Mutex<HashMap<String, Refund>>,
    webhook: Option<SandboxWebhook>,
}

#[derive(Debug, Clone)]
struct Stored {
    request: PaymentRequest,
    created: Instant,
}

/// The sandbox's payment methods and what they come to.
pub const SANDBOX_METHODS: &[&str] = &[
    "sandbox-ok",
    "sandbox-declined",
    "sandbox-insufficient-funds",
    "sandbox-pending",
];

impl Sandbox {
    pub fn new(settle_after: Duration) -> Self {
        Self {
            settle_after,
            payments: Mutex::default(),
            by_key: Mutex::default(),
            refunds: Mutex::default(),
            webhook: None,
        }
    }

    /// Posts each payment's events to `webhook` once it settles.
    pub fn with_webhook(mut self, webhook: SandboxWebhook) -> Self {
        self.webhook = Some(webhook);
        self
    }

    fn status(&self, stored: &Stored) -> PaymentStatus {
        if stored.created.elapsed() < self.settle_after {
            return PaymentStatus::Pending;
        }
        Self::outcome(&stored.request.method)
    }

    /// How a payment with `method` ends.
    fn outcome(method: &str) -> PaymentStatus {
        match method {
            "sandbox-ok" => PaymentStatus::Succeeded,
            "sandbox-declined" => PaymentStatus::Failed {
                reason: "the card was declined".into(),
            },
            "sandbox-insufficient-funds" => PaymentStatus::Failed {
                reason: "insufficient funds".into(),
            },
            _ => PaymentStatus::Pending,
        }
    }

    fn payment(&self, id: &str, stored: &Stored) -> Payment {
        Payment {
            id: id.to_owned(),
            amount_minor: stored.request.amount_minor,
            currency: stored.request.currency.clone(),
            status: self.status(stored),
        }
    }

    fn create_now(&self, request: &PaymentRequest) -> Result<Payment, PaymentError> {
        if request.amount_minor <= 0 {
            return Err(PaymentError::Invalid("the amount must be positive".into()));
        }
        if request.currency.len() != 3 || !request.currency.bytes().all(|b| b.is_ascii_uppercase())
        {
            return Err(PaymentError::Invalid(format!(
                "{:?} is not an ISO 4217 currency",
                request.currency
            )));
        }
        if !SANDBOX_METHODS.contains(&request.method.as_str()) {
            return Err(PaymentError::Invalid(format!(
                "payment method {:?} is not one of {}",
                request.method,
                SANDBOX_METHODS.join(", ")
            )));
        }
        let poisoned = || PaymentError::Unavailable("the sandbox is poisoned".into());
        let mut by_key = self.by_key.lock().map_err(|_| poisoned())?;
        let mut payments = self.payments.lock().map_err(|_| poisoned())?;
        if let Some(id) = by_key.get(&request.idempotency_key) {
            let stored = payments
                .get(id)
                .ok_or_else(|| PaymentError::NotFound(id.clone()))?;
            return if stored.request == *request {
                Ok(self.payment(id, stored))
            } else {
                Err(PaymentError::KeyReused(request.idempotency_key.clone()))
            };
        }
        let id = format!("pay_{}", uuid::Uuid::new_v4().simple());
        let stored = Stored {
            request: request.clone(),
            created: Instant::now(),
        };
        let payment = self.payment(&id, &stored);
        by_key.insert(request.idempotency_key.clone(), id.clone());
        payments.insert(id.clone(), stored);
        if let Some(webhook) = &self.webhook {
            let settled = Payment {
                status: Self::outcome(&request.method),
                ..payment.clone()
            };
            webhook.settle_later(self.settle_after, settled);
        }
        Ok(payment)
    }

    fn get_now(&self, id: &str) -> Result<Payment, PaymentError> {
        let payments = self
            .payments
            .lock()
            .map_err(|_| PaymentError::Unavailable("the sandbox is poisoned".into()))?;
        let stored = payments
            .get(id)
            .ok_or_else(|| PaymentError::NotFound(id.to_owned()))?;
        Ok(self.payment(id, stored))
    }
}

impl Sandbox {
    fn refund_now(&self, request: &RefundRequest) -> Result<Refund, PaymentError> {
        let payment = self.get_now(&request.payment_id)?;
        if payment.status != PaymentStatus::Succeeded {
            return Err(PaymentError::Invalid(format!(
                "payment {} has not succeeded: nothing to refund",
                payment.id
            )));
        }
        let poisoned = || PaymentError::Unavailable("the sandbox is poisoned".into());
        let mut refunds = self.refunds.lock().map_err(|_| poisoned())?;
        if let Some(refund) = refunds.get(&request.idempotency_key) {
            return if refund.payment_id == request.payment_id
                && refund.amount_minor == request.amount_minor
            {
                Ok(refund.clone())
            } else {
                Err(PaymentError::KeyReused(request.idempotency_key.clone()))
            };
        }
        let refunded: i64 = refunds
            .values()
            .filter(|r| r.payment_id == payment.id)
            .map(|r| r.amount_minor)
            .sum();
        if request.amount_minor <= 0 || refunded + request.amount_minor > payment.amount_minor {
            return Err(PaymentError::Invalid(format!(
                "a refund of {} is not within the {} left of payment {}",
                request.amount_minor,
                payment.amount_minor - refunded,
                payment.id
            )));
        }
        let refund = Refund {
            id: format!("re_{}", uuid::Uuid::new_v4().simple()),
            payment_id: payment.id,
            amount_minor: request.amount_minor,
            currency: payment.currency,
        };
        refunds.insert(request.idempotency_key.clone(), refund.clone());
        if let Some(webhook) = &self.webhook {
            webhook.refund_later(self.settle_after, refund.clone());
        }
        Ok(refund)
    }
}

impl PaymentProvider for Sandbox {
    fn refund<'a>(&'a self, request: &'a RefundRequest) -> PaymentFuture<'a, Refund> {
        Box::pin(async move { self.refund_now(request) })
    }

    fn create<'a>(&'a self, request: &'a PaymentRequest) -> PaymentFuture<'a, Payment> {
        Box::pin(async move { self.create_now(request) })
    }

    fn get<'a>(&'a self, id: &'a str) -> PaymentFuture<'a, Payment> {
        Box::pin(async move { self.get_now(id) })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn request(key: &str, method: &str) -> PaymentRequest {
        PaymentRequest {
            idempotency_key: key.into(),
            amount_minor: 4900,
            currency: "EUR".into(),
            description: "Care+ 12 months".into(),
            method: method.into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn payments_settle_later_by_their_method_and_a_key_makes_one_payment() {
        let sandbox = Sandbox::new(Duration::from_secs(2));
        let ok = sandbox.create(&request("k1", "sandbox-ok")).await.unwrap();
        assert_eq!(ok.status, PaymentStatus::Pending);
        let again = sandbox.create(&request("k1", "sandbox-ok")).await.unwrap();
        assert_eq!(again.id, ok.id, "the same key, the same payment");
        let mut other = request("k1", "sandbox-ok");
        other.amount_minor = 1;
        assert_eq!(
            sandbox.create(&other).await,
            Err(PaymentError::KeyReused("k1".into()))
        );
        let declined = sandbox
            .create(&request("k2", "sandbox-declined"))
            .await
            .unwrap();
        let waiting = sandbox
            .create(&request("k3", "sandbox-pending"))
            .await
            .unwrap();
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(
            sandbox.get(&ok.id).await.unwrap().status,
            PaymentStatus::Succeeded
        );
        assert!(matches!(
            sandbox.get(&declined.id).await.unwrap().status,
            PaymentStatus::Failed { .. }
        ));
        assert_eq!(
            sandbox.get(&waiting.id).await.unwrap().status,
            PaymentStatus::Pending
        );
        assert!(matches!(
            sandbox.get("pay_made_up").await,
            Err(PaymentError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn bad_requests_create_nothing() {
        let sandbox = Sandbox::new(Duration::ZERO);
        let mut free = request("k", "sandbox-ok");
        free.amount_minor = 0;
        assert!(matches!(
            sandbox.create(&free).await,
            Err(PaymentError::Invalid(_))
        ));
        assert!(matches!(
            sandbox.create(&request("k", "a-real-card")).await,
            Err(PaymentError::Invalid(_))
        ));
        let fine = sandbox.create(&request("k", "sandbox-ok")).await.unwrap();
        assert_eq!(
            fine.status,
            PaymentStatus::Succeeded,
            "the refused key is free"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_refund_gives_back_no_more_than_was_paid_once_per_key() {
        let sandbox = Sandbox::new(Duration::from_secs(1));
        let paid = sandbox.create(&request("k1", "sandbox-ok")).await.unwrap();
        let refund = |key: &str, amount_minor| RefundRequest {
            idempotency_key: key.into(),
            payment_id: paid.id.clone(),
            amount_minor,
        };
        assert!(
            matches!(
                sandbox.refund(&refund("r1", 100)).await,
                Err(PaymentError::Invalid(_))
            ),
            "not paid yet"
        );
        tokio::time::advance(Duration::from_secs(2)).await;
        let first = sandbox.refund(&refund("r1", 4000)).await.unwrap();
        assert_eq!((first.amount_minor, first.currency.as_str()), (4000, "EUR"));
        assert_eq!(sandbox.refund(&refund("r1", 4000)).await.unwrap(), first);
        assert_eq!(
            sandbox.refund(&refund("r1", 900)).await,
            Err(PaymentError::KeyReused("r1".into()))
        );
        assert!(
            matches!(
                sandbox.refund(&refund("r2", 901)).await,
                Err(PaymentError::Invalid(_))
            ),
            "900 is left"
        );
        assert!(sandbox.refund(&refund("r2", 900)).await.is_ok());
    }
}
