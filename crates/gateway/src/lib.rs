//! The web front door: server-rendered pages for customers over the services'
//! gRPC APIs, each call made with the signed-in person's own token (the
//! services decide what they may see; the pages only show it), live repair
//! status by server-sent events, in English, German, Simplified Chinese and
//! Hindi. The gateway keeps no business state: sessions (the person's tokens,
//! server-side; the browser holds an HttpOnly cookie) are all it remembers.
//!
//! Built to last: HTML first, a small script for live updates only, no build
//! step; a Content-Security-Policy without inline script or style; every form
//! same-origin and, once signed in, carrying the session's CSRF token; every
//! value escaped by the templates.

use axum::serve::ListenerExt as _;
use std::net::SocketAddr;
use std::sync::Arc;

use tonic::transport::Channel;

pub mod access;
pub mod export;
mod feeds;
pub mod i18n;
mod identity;
mod pages;
mod regional;
pub mod session;

/// How the gateway runs: flags and environment variables.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// HTTP address to serve the pages on.
    #[arg(
        long,
        env = "AFTERSALES_GATEWAY_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    pub listen: SocketAddr,
    /// The warranty service.
    #[arg(
        long,
        env = "AFTERSALES_WARRANTY_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub warranty_url: String,
    /// The repair service.
    #[arg(
        long,
        env = "AFTERSALES_REPAIR_URL",
        default_value = "http://127.0.0.1:50052"
    )]
    pub repair_url: String,
    /// The logistics service (parcels, labels, custody).
    #[arg(
        long,
        env = "AFTERSALES_LOGISTICS_URL",
        default_value = "http://127.0.0.1:50053"
    )]
    pub logistics_url: String,
    /// The notification service (the inbox and preferences).
    #[arg(
        long,
        env = "AFTERSALES_NOTIFICATION_URL",
        default_value = "http://127.0.0.1:50054"
    )]
    pub notification_url: String,
    /// The parts service (the published repair price list).
    #[arg(
        long,
        env = "AFTERSALES_PARTS_URL",
        default_value = "http://127.0.0.1:50055"
    )]
    pub parts_url: String,
    /// The support service (surveys and the desk's quality figures).
    #[arg(
        long,
        env = "AFTERSALES_SUPPORT_URL",
        default_value = "http://127.0.0.1:50056"
    )]
    pub support_url: String,
    /// The identity provider people sign in at.
    #[arg(
        long,
        env = "AFTERSALES_ISSUER_URL",
        default_value = "http://127.0.0.1:8079"
    )]
    pub issuer_url: String,
    /// A private CA (PEM) trusted for `https://` services.
    #[arg(long, env = "AFTERSALES_TLS_CA")]
    pub tls_ca: Option<std::path::PathBuf>,
    /// The region directory (TOML): with it, a device's writes go to its home
    /// region and its reads to the nearest region that answers (the service
    /// URLs above are the nearest).
    #[arg(long, env = "AFTERSALES_REGIONS_FILE")]
    pub regions_file: Option<std::path::PathBuf>,
    /// The key audit exports are signed with (PKCS #8 DER, P-256), made there
    /// the first time. Without it, a key for this run only.
    #[arg(long, env = "AFTERSALES_EXPORT_KEY_FILE")]
    pub export_key_file: Option<std::path::PathBuf>,
    /// The pages are served over HTTPS (by a proxy in front): cookies are
    /// marked Secure and forms must come from the https origin.
    #[arg(long, env = "AFTERSALES_GATEWAY_SECURE")]
    pub secure: bool,
}

impl Default for Config {
    fn default() -> Self {
        aftersales_runtime::config::defaults()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("{0}")]
    Config(String),
    #[error("translations: {0}")]
    I18n(#[from] i18n::I18nError),
    #[error("templates: {0}")]
    Template(#[from] minijinja::Error),
    #[error("cannot listen: {0}")]
    Io(#[from] std::io::Error),
}

/// A running gateway.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops taking connections and waits for requests in flight (live pages
    /// hold theirs open: at most 5 s).
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), self.served).await;
    }
}

/// Connections to the services, opened lazily and shared by every page.
#[derive(Debug, Clone)]
pub(crate) struct Services {
    pub warranty: Channel,
    pub warranty_url: String,
    /// The region directory, if the platform runs in many regions.
    pub regions: Option<Arc<aftersales_runtime::regions::Regions>>,
    pub ca: Option<std::path::PathBuf>,
    pub repair: Channel,
    pub logistics: Channel,
    pub notification: Channel,
    pub parts: Channel,
    pub support: Channel,
}

impl Services {
    fn connect(config: &Config) -> Result<Self, GatewayError> {
        let ca = config.tls_ca.as_deref();
        let regions = config
            .regions_file
            .as_deref()
            .map(|path| {
                aftersales_runtime::regions::Regions::load(path)
                    .map(Arc::new)
                    .map_err(|e| GatewayError::Config(e.to_string()))
            })
            .transpose()?;
        Ok(Self {
            warranty: channel(&config.warranty_url, ca)?,
            warranty_url: config.warranty_url.clone(),
            regions,
            ca: config.tls_ca.clone(),
            repair: channel(&config.repair_url, ca)?,
            logistics: channel(&config.logistics_url, ca)?,
            notification: channel(&config.notification_url, ca)?,
            parts: channel(&config.parts_url, ca)?,
            support: channel(&config.support_url, ca)?,
        })
    }

    /// Each service that holds customers' records, by its name.
    pub fn all(&self) -> Vec<(&'static str, Channel)> {
        vec![
            ("warranty", self.warranty.clone()),
            ("repair", self.repair.clone()),
            ("logistics", self.logistics.clone()),
            ("notification", self.notification.clone()),
            ("parts", self.parts.clone()),
            ("support", self.support.clone()),
        ]
    }
}

fn channel(url: &str, ca: Option<&std::path::Path>) -> Result<Channel, GatewayError> {
    Ok(aftersales_runtime::tls::endpoint(url, ca)
        .map_err(GatewayError::Config)?
        .connect_timeout(std::time::Duration::from_secs(3))
        .connect_lazy())
}

/// Serves the gateway until [`Running::stop`].
pub async fn start(config: Config) -> Result<Running, GatewayError> {
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    start_on(listener, config).await
}

/// Serves the gateway on `listener` (bound already, so its address can be
/// given out before the gateway starts) until [`Running::stop`].
pub async fn start_on(
    listener: tokio::net::TcpListener,
    config: Config,
) -> Result<Running, GatewayError> {
    let app = pages::App::new(
        Arc::new(i18n::Translations::builtin()?),
        Services::connect(&config)?,
        identity::Identity::new(&config.issuer_url).map_err(GatewayError::Config)?,
        export::ExportKey::load_or_create(config.export_key_file.as_deref())?,
        config.secure,
    )?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let router = pages::router(app);
    let served = tokio::spawn(async move {
        if let Err(error) = axum::serve(
            listener.tap_io(|stream| {
                // Small writes (a page's last bytes, a live event) go out at once.
                let _ = stream.set_nodelay(true);
            }),
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = stopped.await;
        })
        .await
        {
            tracing::error!(%error, "the gateway stopped");
        }
    });
    tracing::info!(%addr, "gateway serving");
    Ok(Running { addr, stop, served })
}
