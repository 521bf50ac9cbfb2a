//! The payment provider as a selling service starts it: the flags every seller
//! shares, the provider they choose, and its webhook endpoint bound and served
//! with the service.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aftersales_core::SharedClock;
use aftersales_runtime::service::{Assembly, Endpoint};
use secrecy::{ExposeSecret as _, SecretString};

use crate::webhook::{Merchant, WebhookSettings};
use crate::{PaymentProvider, Sandbox, SandboxWebhook};

/// The name of the payment webhook's endpoint in a running service's endpoints.
pub const PAYMENTS_WEBHOOK: &str = "payments-webhook";

/// How a service takes payment. Flags and environment variables.
#[derive(Debug, Clone, clap::Args)]
pub struct PaymentArgs {
    /// Who takes payment. `sandbox` moves no money: payment methods
    /// `sandbox-ok`, `sandbox-declined`, `sandbox-insufficient-funds`,
    /// `sandbox-pending` say how each payment ends.
    #[arg(long, env = "AFTERSALES_PAYMENTS", default_value = "sandbox")]
    pub payments: String,
    /// How long a sandbox payment takes to settle, as a bank's check would.
    #[arg(
        long,
        env = "AFTERSALES_SANDBOX_PAYMENT_SETTLE_MILLIS",
        default_value_t = 2000
    )]
    pub sandbox_payment_settle_millis: u64,
    /// The payment provider's webhook signing secrets (at least 16 bytes each;
    /// two comma-separated while it rotates). Unset: no webhook.
    #[arg(long, env = "AFTERSALES_PAYMENTS_WEBHOOK_SECRETS", value_parser = aftersales_runtime::config::secret, hide_env_values = true)]
    pub payments_webhook_secrets: Option<SecretString>,
    /// How far a webhook signature's timestamp may be from now.
    #[arg(
        long,
        env = "AFTERSALES_PAYMENTS_WEBHOOK_REPLAY_WINDOW_SECONDS",
        default_value_t = 300,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub payments_webhook_replay_window_seconds: u64,
    /// How many times the sandbox delivers each webhook event (a real provider
    /// redelivers; every other round comes in reverse order).
    #[arg(long, env = "AFTERSALES_SANDBOX_WEBHOOK_DELIVERIES", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub sandbox_webhook_deliveries: u32,
}

impl Default for PaymentArgs {
    fn default() -> Self {
        aftersales_runtime::config::defaults()
    }
}

/// The webhook's listener, bound before the provider is made (the sandbox
/// posts to the address it got), waiting to be served.
#[derive(Debug)]
pub struct WebhookEndpoint {
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    settings: WebhookSettings,
}

impl WebhookEndpoint {
    /// Serves `merchant`'s webhook with the service.
    pub fn serve<M: Merchant>(
        self,
        assembly: Assembly,
        merchant: M,
        region: String,
        clock: SharedClock,
    ) -> Assembly {
        let addr = self.addr;
        let router = crate::webhook::router(merchant, self.settings, region, clock);
        let listener = self.listener;
        assembly
            .endpoint(Endpoint {
                name: PAYMENTS_WEBHOOK,
                addr,
                banner: format!("payment webhook on http://{addr}/v1/payments/events"),
            })
            .task(move |shutdown| async move {
                let stopped = shutdown.stopped();
                aftersales_runtime::service::serve_http(
                    listener,
                    router,
                    stopped,
                    "payment webhook",
                )
                .await;
            })
    }
}

impl PaymentArgs {
    /// The provider, and the webhook endpoint on `listen` when a secret is set.
    pub async fn start(
        &self,
        listen: SocketAddr,
        clock: SharedClock,
    ) -> Result<(Arc<dyn PaymentProvider>, Option<WebhookEndpoint>), String> {
        let endpoint = match &self.payments_webhook_secrets {
            Some(secrets) => {
                let settings = WebhookSettings::parse(
                    "AFTERSALES_PAYMENTS_WEBHOOK_SECRETS",
                    secrets.expose_secret(),
                    Duration::from_secs(self.payments_webhook_replay_window_seconds),
                )?;
                let (listener, addr) = aftersales_runtime::service::bind_http(listen)
                    .await
                    .map_err(|e| format!("payments webhook on {listen}: {e}"))?;
                Some(WebhookEndpoint {
                    listener,
                    addr,
                    settings,
                })
            }
            None => None,
        };
        let provider: Arc<dyn PaymentProvider> = match self.payments.as_str() {
            "sandbox" => {
                let sandbox =
                    Sandbox::new(Duration::from_millis(self.sandbox_payment_settle_millis));
                Arc::new(match &endpoint {
                    Some(endpoint) => sandbox.with_webhook(SandboxWebhook::new(
                        format!("http://{}/v1/payments/events", endpoint.addr),
                        endpoint.settings.signing_secret(),
                        self.sandbox_webhook_deliveries,
                        clock,
                    )),
                    None => sandbox,
                })
            }
            other => {
                return Err(format!(
                    "AFTERSALES_PAYMENTS: {other:?} is not a payment provider (sandbox)"
                ));
            }
        };
        Ok((provider, endpoint))
    }
}
