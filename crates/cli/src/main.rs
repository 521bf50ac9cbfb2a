//! `aftersales`: the platform on one machine.
//!
//! `aftersales up` starts every service in this one process, on the embedded
//! default: SQLite event stores under a data directory, no broker, and an
//! identity provider whose tokens every call carries. Repair asks warranty over
//! gRPC as itself; each service's consumers follow the others' logs directly.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use aftersales_runtime::service::Embedded;
use clap::{Parser, Subcommand};

mod client;
mod demo;
mod history;
mod identity;
mod load;
mod login;
mod network;
mod operator;
mod parts;
mod support;

#[derive(Debug, Parser)]
#[command(name = "aftersales", version, about = "The Aftersales platform")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    endpoints: client::Endpoints,
    /// Log as JSON lines.
    #[arg(long, global = true, env = "AFTERSALES_LOG_JSON")]
    log_json: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the services in this process, with SQLite under the data directory.
    Up(Box<Up>),
    /// Sign in at the identity provider; later commands carry the token.
    Login(login::Login),
    /// Sign out: the session ends at the provider and the tokens are forgotten.
    Logout,
    /// Who the tool is signed in as.
    Whoami,
    /// Devices and their warranty.
    #[command(subcommand)]
    Device(client::Device),
    /// Service centers.
    #[command(subcommand)]
    Center(client::Center),
    /// Where the service network is thin, a plan for new service points, and
    /// each center's quality.
    #[command(subcommand)]
    Network(network::Network),
    /// Repair orders.
    #[command(subcommand)]
    Repair(client::Repair),
    /// Published repair prices, quotes from them, and stock with reservations.
    #[command(subcommand)]
    Parts(parts::Parts),
    /// The support desk: cases, the knowledge base, and quality by week.
    #[command(subcommand)]
    Support(support::Support),
    /// Extended warranty.
    #[command(subcommand)]
    Warranty(client::Warranty),
    /// Parcels of mail-in repairs.
    #[command(subcommand)]
    Shipment(client::Shipment),
    /// What customers were told.
    #[command(subcommand)]
    Notify(client::Notify),
    /// A customer's rights over their data: export, erasure, in every service.
    #[command(subcommand)]
    Customer(client::Customer),
    /// Drive an open-loop workload at a fixed arrival rate against running
    /// services, and report each operation's latency percentiles and errors.
    Load(Box<load::Load>),
    /// Operators: rebuild read models from the log.
    #[command(subcommand)]
    Projections(operator::Projections),
    /// Operators: verify and export a device's tamper-evident history.
    #[command(subcommand)]
    Audit(operator::Audit),
    /// Operators: dead letters.
    #[command(subcommand)]
    Dlq(operator::Dlq),
    /// Operators: the JetStream streams and consumers.
    #[command(subcommand)]
    Streams(operator::Streams),
    /// Operators: relay a service's log to JetStream while the service is down.
    Relay(Relay),
    /// Operators: move every data key of the region's keyring to the current
    /// key-encryption key (`--kms-key-id`) from the previous one
    /// (`--key-encryption-key-file`), while the services run.
    #[command(subcommand)]
    Keyring(KeyringCommand),
    /// Operators: print the NATS users of a region, one per service allowed its
    /// own subjects only, for nats.conf (`include`d by the deployment files).
    NatsAuthorization {
        #[arg(long, env = "AFTERSALES_REGION", default_value = "local")]
        region: String,
        /// The region directory (`deploy/k8s/base/regions.toml`): the other regions whose
        /// replicas the services read. Unset: one region.
        #[arg(long, env = "AFTERSALES_REGIONS_FILE")]
        regions_file: Option<PathBuf>,
    },
    /// Exit 0 if the gRPC server at `--url` reports SERVING (for health checks).
    Health {
        #[arg(long)]
        url: String,
        /// A service name; the server as a whole if left out.
        #[arg(long, default_value = "")]
        service: String,
    },
}

#[derive(Debug, clap::Subcommand)]
enum KeyringCommand {
    /// Rewrap every key the previous key-encryption key wrapped; safe to run
    /// again, and beside running services (each key moves once).
    Rewrap {
        #[arg(long, env = "AFTERSALES_KEYRING_URL", hide_env_values = true)]
        keyring_url: String,
        /// The previous key-encryption key.
        #[arg(long, env = "AFTERSALES_KEY_ENCRYPTION_KEY_FILE")]
        key_encryption_key_file: PathBuf,
        /// The current one (credentials and region as for the services).
        #[arg(long, env = "AFTERSALES_KMS_KEY_ID")]
        kms_key_id: String,
        #[arg(long, env = "AFTERSALES_KMS_ENDPOINT")]
        kms_endpoint: Option<String>,
    },
}

async fn keyring(command: KeyringCommand) -> Result<(), String> {
    let KeyringCommand::Rewrap {
        keyring_url,
        key_encryption_key_file,
        kms_key_id,
        kms_endpoint,
    } = command;
    let common = aftersales_runtime::config::Common {
        keyring_url: Some(keyring_url.into()),
        key_encryption_key_file: Some(key_encryption_key_file),
        kms_key_id: Some(kms_key_id),
        kms_endpoint,
        ..Default::default()
    };
    let keyring = common.keyring("keyring").await?;
    let moved = keyring.rewrap().await.map_err(|e| e.to_string())?;
    println!(
        "{moved} data keys moved to {}",
        keyring.key_encryption_key()
    );
    Ok(())
}

#[derive(Debug, clap::Args)]
struct Relay {
    #[arg(value_parser = operator::service)]
    service: &'static aftersales_runtime::service::Description,
    /// The service's database: postgres://… or sqlite:path.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// PostgreSQL: the owner migrates; the relay runs as `DATABASE_URL`'s role.
    #[arg(long, env = "DATABASE_OWNER_URL", hide_env_values = true)]
    database_owner_url: Option<String>,
    #[arg(long, env = "NATS_URL", hide_env_values = true)]
    nats_url: String,
    #[arg(long, env = "AFTERSALES_REGION", default_value = "local")]
    region: String,
    #[arg(long, env = "AFTERSALES_STREAM_REPLICAS", default_value_t = 1)]
    stream_replicas: usize,
    /// The region's keyring: public events carry personal data sealed with it.
    #[arg(long, env = "AFTERSALES_KEYRING_URL", hide_env_values = true)]
    keyring_url: Option<String>,
    #[arg(long, env = "AFTERSALES_KEY_ENCRYPTION_KEY_FILE")]
    key_encryption_key_file: Option<PathBuf>,
    #[arg(long, env = "AFTERSALES_KMS_KEY_ID")]
    kms_key_id: Option<String>,
    #[arg(long, env = "AFTERSALES_KMS_ENDPOINT", requires = "kms_key_id")]
    kms_endpoint: Option<String>,
}

async fn relay(args: Relay) -> Result<(), String> {
    let terminate = aftersales_runtime::signal::terminate();
    let common = aftersales_runtime::config::Common {
        database_url: Some(args.database_url.into()),
        database_owner_url: args.database_owner_url.map(Into::into),
        nats_url: Some(args.nats_url.into()),
        region: args.region,
        stream_replicas: args.stream_replicas,
        keyring_url: args.keyring_url.map(Into::into),
        key_encryption_key_file: args.key_encryption_key_file,
        kms_key_id: args.kms_key_id,
        kms_endpoint: args.kms_endpoint,
        ..Default::default()
    };
    let (trigger, shutdown) = aftersales_core::Shutdown::new();
    let relaying = aftersales_runtime::service::relay(args.service, &common, shutdown);
    tokio::pin!(relaying);
    tokio::select! {
        relayed = &mut relaying => return relayed.map_err(|e| e.to_string()),
        () = terminate => trigger.trigger(),
    }
    relaying.await.map_err(|e| e.to_string())
}

#[derive(Debug, clap::Args)]
struct Up {
    /// Where the services keep their databases.
    #[arg(long, env = "AFTERSALES_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
    /// The warranty service's gRPC address.
    #[arg(long, default_value = "127.0.0.1:50051")]
    warranty_listen: SocketAddr,
    /// The repair service's gRPC address.
    #[arg(long, default_value = "127.0.0.1:50052")]
    repair_listen: SocketAddr,
    /// The logistics service's gRPC address.
    #[arg(long, default_value = "127.0.0.1:50053")]
    logistics_listen: SocketAddr,
    /// The sandbox carrier plays this script on every parcel, so mail-in repairs
    /// move on their own; `none` leaves scans to `PlaySandboxScript`.
    #[arg(long, default_value = "delivered")]
    sandbox_autoplay: String,
    /// Milliseconds between autoplayed scans.
    #[arg(long, default_value_t = 2000)]
    sandbox_step_millis: u32,
    /// Runs the carrier webhook with each carrier's signing secret,
    /// `carrier=secret` comma-separated (at least 16 bytes each); unset, no
    /// webhook and scans come by gRPC only.
    #[arg(long, env = "AFTERSALES_WEBHOOK_SECRETS", hide_env_values = true)]
    webhook_secrets: Option<String>,
    /// The carrier webhook's HTTP address (with `--webhook-secrets`).
    #[arg(
        long,
        env = "AFTERSALES_WEBHOOK_LISTEN",
        default_value = "127.0.0.1:8053"
    )]
    webhook_listen: SocketAddr,
    /// Seed demo data (devices in six countries, repairs in every stage) once.
    #[arg(long)]
    demo: bool,
    /// Prometheus metrics of every service, on `http://<address>/metrics`.
    #[arg(long, default_value = "127.0.0.1:9100")]
    metrics_listen: SocketAddr,
    /// The notification service's gRPC address.
    #[arg(long, default_value = "127.0.0.1:50054")]
    notification_listen: SocketAddr,
    /// The parts service's gRPC address.
    #[arg(long, default_value = "127.0.0.1:50055")]
    parts_listen: SocketAddr,
    /// The support service's gRPC address.
    #[arg(long, default_value = "127.0.0.1:50056")]
    support_listen: SocketAddr,
    /// Email goes out through this SMTP server (smtp://host:port); unset, customers
    /// are told in the in-app inbox only.
    #[arg(long, env = "AFTERSALES_SMTP_URL")]
    smtp_url: Option<String>,
    /// The SMS provider's endpoint; unset, no SMS.
    #[arg(long, env = "AFTERSALES_SMS_URL")]
    sms_url: Option<String>,
    /// The push provider's endpoint; unset, no push.
    #[arg(long, env = "AFTERSALES_PUSH_URL")]
    push_url: Option<String>,
    /// This deployment's region.
    #[arg(long, env = "AFTERSALES_REGION", default_value = "local")]
    region: String,
    /// The identity provider: services verify its tokens; people sign in there.
    #[arg(long, default_value = "127.0.0.1:8079")]
    issuer_listen: SocketAddr,
    /// The web pages (the customer app).
    #[arg(long, default_value = "127.0.0.1:8080")]
    gateway_listen: SocketAddr,
    /// No identity provider: calls without tokens, every RPC open. For poking at
    /// the API with grpcurl on a development machine only.
    #[arg(long)]
    allow_unauthenticated: bool,
    /// A directory of recall and service programme files to use instead of the
    /// built-in ones.
    #[arg(long, env = "AFTERSALES_PROGRAMMES")]
    programmes: Option<PathBuf>,
}

async fn up(args: Up) -> Result<(), String> {
    // Installed first: Ctrl-C or SIGTERM during start-up or seeding still stops
    // cleanly.
    let terminate = aftersales_runtime::signal::terminate();
    tokio::pin!(terminate);
    std::fs::create_dir_all(&args.data_dir)
        .map_err(|e| format!("--data-dir {}: {e}", args.data_dir.display()))?;
    let (stop_identity, identity_stopped) = tokio::sync::oneshot::channel::<()>();
    let codes = Arc::new(identity::NotificationCodes::default());
    let provider = if args.allow_unauthenticated {
        None
    } else {
        let store = aftersales_identity::Store::open(&format!(
            "sqlite:{}",
            args.data_dir.join("identity.db").display()
        ))
        .await
        .map_err(|e| format!("identity: {e}"))?;
        let provider = aftersales_identity::Provider::serve(
            args.issuer_listen,
            store,
            identity::AUDIENCE,
            codes.clone(),
            async move {
                let _ = identity_stopped.await;
            },
        )
        .await
        .map_err(|e| format!("--issuer-listen {}: {e}", args.issuer_listen))?;
        Some(provider)
    };
    // One keyring for every service: personal data sealed by one opens in another,
    // and an erasure is seen by all at once.
    let keyring = aftersales_runtime::config::Common {
        keyring_url: Some(format!("sqlite:{}", args.data_dir.join("keys.db").display()).into()),
        ..Default::default()
    }
    .keyring("keys")
    .await?;
    // One clock for every service: the demo's history turns it back while it is
    // made, then returns it to now; without --demo it is never moved.
    let clock = aftersales_core::ShiftedClock::new();
    // Each service at its own defaults, but for what one process on one machine
    // needs: its own SQLite file, no broker, no separate metrics, a quick stop,
    // and the embedded identity provider (or, asked for, none at all).
    let common = |service: &str| -> Result<aftersales_runtime::config::Common, String> {
        let client = match (&provider, service) {
            // The services that call others, as themselves.
            (Some(provider), "repair" | "parts") => {
                Some(identity::service_client(provider, service)?)
            }
            _ => None,
        };
        Ok(aftersales_runtime::config::Common {
            database_url: Some(
                format!(
                    "sqlite:{}",
                    args.data_dir.join(format!("{service}.db")).display()
                )
                .into(),
            ),
            region: args.region.clone(),
            drain_grace_seconds: 0,
            allow_unauthenticated: provider.is_none(),
            oidc_issuer: provider.as_ref().map(|p| p.url().to_owned()),
            oidc_client_id: client.as_ref().map(|c| c.client_id.clone()),
            oidc_client_secret: client.map(|c| c.client_secret.into()),
            keyring: Some(Arc::clone(&keyring)),
            clock: clock.shared(),
            ..Default::default()
        })
    };
    // The sandbox provider posts its signed webhooks to warranty and parts on
    // ports of their own, with a secret no one else knows.
    let payment = aftersales_payments::PaymentArgs {
        payments_webhook_secrets: Some(
            format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            )
            .into(),
        ),
        ..Default::default()
    };
    let any_port: SocketAddr = ([127, 0, 0, 1], 0).into();
    let warranty = aftersales_warranty::server::start(aftersales_warranty::server::Config {
        common: common("warranty")?,
        listen: args.warranty_listen,
        metrics_listen: None,
        programmes: args.programmes.clone(),
        payment: payment.clone(),
        payments_webhook_listen: any_port,
        ..Default::default()
    })
    .await
    .map_err(|e| format!("warranty: {e}"))?;
    let logistics = aftersales_logistics::server::start(aftersales_logistics::server::Config {
        common: common("logistics")?,
        listen: args.logistics_listen,
        webhook_listen: args.webhook_listen,
        webhook_secrets: args.webhook_secrets.clone().map(Into::into),
        sandbox_autoplay: Some(args.sandbox_autoplay.clone()).filter(|s| s != "none"),
        sandbox_step_millis: args.sandbox_step_millis,
        metrics_listen: None,
        ..Default::default()
    })
    .await
    .map_err(|e| format!("logistics: {e}"))?;
    let parts = aftersales_parts::server::start(aftersales_parts::server::Config {
        common: common("parts")?,
        listen: args.parts_listen,
        metrics_listen: None,
        logistics_url: Some(format!("http://{}", logistics.addr)),
        warranty_url: Some(format!("http://{}", warranty.addr)),
        payment,
        payments_webhook_listen: any_port,
        ..Default::default()
    })
    .await
    .map_err(|e| format!("parts: {e}"))?;
    let repair = aftersales_repair::server::start(aftersales_repair::server::Config {
        common: common("repair")?,
        listen: args.repair_listen,
        warranty_url: Some(format!("http://{}", warranty.addr)),
        parts_url: Some(format!("http://{}", parts.addr)),
        metrics_listen: None,
        ..Default::default()
    })
    .await
    .map_err(|e| format!("repair: {e}"))?;
    let notification =
        aftersales_notification::server::start(aftersales_notification::server::Config {
            common: common("notification")?,
            listen: args.notification_listen,
            smtp_url: args.smtp_url.clone().map(Into::into),
            sms_url: args.sms_url.clone().map(Into::into),
            push_url: args.push_url.clone().map(Into::into),
            metrics_listen: None,
            ..Default::default()
        })
        .await
        .map_err(|e| format!("notification: {e}"))?;
    // The gateway's address is taken now: survey links point at it.
    let gateway_listener = match &provider {
        Some(_) => Some(
            tokio::net::TcpListener::bind(args.gateway_listen)
                .await
                .map_err(|e| format!("--gateway-listen {}: {e}", args.gateway_listen))?,
        ),
        None => None,
    };
    let site_url = match &gateway_listener {
        Some(listener) => format!(
            "http://{}",
            listener.local_addr().map_err(|e| e.to_string())?
        ),
        None => aftersales_support::server::Config::default().site_url,
    };
    let support = aftersales_support::server::start(aftersales_support::server::Config {
        common: common("support")?,
        listen: args.support_listen,
        metrics_listen: None,
        site_url,
        ..Default::default()
    })
    .await
    .map_err(|e| format!("support: {e}"))?;
    if let Some(provider) = &provider {
        codes.connect(provider, notification.addr)?;
    }
    let gateway = match (&provider, gateway_listener) {
        (Some(provider), Some(listener)) => Some(
            aftersales_gateway::start_on(
                listener,
                aftersales_gateway::Config {
                    listen: args.gateway_listen,
                    warranty_url: format!("http://{}", warranty.addr),
                    repair_url: format!("http://{}", repair.addr),
                    logistics_url: format!("http://{}", logistics.addr),
                    notification_url: format!("http://{}", notification.addr),
                    parts_url: format!("http://{}", parts.addr),
                    support_url: format!("http://{}", support.addr),
                    issuer_url: provider.url().to_owned(),
                    export_key_file: Some(args.data_dir.join("export-key.der")),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| format!("--gateway-listen {}: {e}", args.gateway_listen))?,
        ),
        _ => None,
    };
    // The seed acts as a support agent at the desk and as staff of every center,
    // with tokens the provider signs in-process.
    let seeder = |principal: aftersales_auth::Principal| -> Result<client::Endpoints, String> {
        let token = provider
            .as_ref()
            .map(|p| {
                p.issuer().token(
                    &principal,
                    identity::AUDIENCE,
                    aftersales_auth::issuer::ACCESS_TOKEN_LIFETIME,
                )
            })
            .transpose()
            .map_err(|e| e.to_string())?;
        Ok(client::Endpoints {
            warranty_url: format!("http://{}", warranty.addr),
            repair_url: format!("http://{}", repair.addr),
            logistics_url: format!("http://{}", logistics.addr),
            notification_url: format!("http://{}", notification.addr),
            parts_url: format!("http://{}", parts.addr),
            support_url: format!("http://{}", support.addr),
            json: false,
            token: Some(token.unwrap_or_default().into()),
            issuer_url: String::new(),
            ca_cert: None,
            regions_file: None,
        })
    };
    let desk = seeder(aftersales_auth::Principal::new(
        "demo-seed",
        aftersales_auth::Role::SupportAgent,
    ))?;
    let center = seeder(aftersales_auth::Principal {
        centers: vec![aftersales_runtime::auth::ALL_CENTERS.to_owned()],
        ..aftersales_auth::Principal::new("demo-seed", aftersales_auth::Role::CenterManager)
    })?;
    let operator = seeder(aftersales_auth::Principal::new(
        "demo-seed",
        aftersales_auth::Role::Operator,
    ))?;
    let platform = Embedded::start(vec![
        warranty,
        repair,
        logistics,
        notification,
        parts,
        support,
    ])
    .map_err(|e| e.to_string())?;
    let (stop_metrics, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
    let metrics = aftersales_runtime::metrics::serve(args.metrics_listen, async move {
        let _ = metrics_stopped.await;
    })
    .await
    .map_err(|e| format!("--metrics-listen {}: {e}", args.metrics_listen))?;
    // The history first, before anyone has the addresses: it turns every
    // service's clock back while it is made.
    let history = async {
        if args.demo {
            history::seed(&clock, &desk, &center, &operator).await
        } else {
            Ok(())
        }
    };
    let stopped_early = tokio::select! {
        made = history => {
            made?;
            false
        }
        () = &mut terminate => true,
    };
    if let Some(gateway) = &gateway {
        println!("{:<12} http://{}", "web", gateway.addr);
    }
    for service in platform.services() {
        println!("{:<12} grpc://{}", service.name, service.addr);
    }
    println!("{:<12} http://{metrics}/metrics", "metrics");
    if let Some(webhook) = platform
        .services()
        .iter()
        .find_map(|s| s.endpoint(aftersales_logistics::server::WEBHOOK))
    {
        println!(
            "{:<12} http://{webhook}/v1/carriers/{{carrier}}/events",
            "webhook"
        );
    }
    match &provider {
        Some(provider) => println!("{:<12} {}", "identity", provider.url()),
        None => println!("{:<12} none: calls are not authenticated", "identity"),
    }
    let seeding = async {
        if args.demo {
            if let Some(provider) = &provider {
                identity::demo_accounts(provider, &args.data_dir).await?;
            }
            demo::seed(&desk, &center, args.smtp_url.is_some()).await
        } else {
            Ok(())
        }
    };
    let interrupted = stopped_early
        || tokio::select! {
            seeded = seeding => {
                seeded?;
                false
            }
            () = &mut terminate => true,
        };
    if !interrupted {
        println!("data in {}; Ctrl-C stops", args.data_dir.display());
        terminate.await;
    }
    let _ = stop_metrics.send(());
    if let Some(gateway) = gateway {
        gateway.stop().await;
    }
    platform.stop().await.map_err(|e| e.to_string())?;
    let _ = stop_identity.send(());
    println!("stopped");
    Ok(())
}

async fn health(url: &str, service: String, ca: Option<&std::path::Path>) -> Result<(), String> {
    use tonic_health::pb::health_check_response::ServingStatus;
    let channel = client::connect("the server", url, ca).await?;
    let status = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest { service })
        .await
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
        .into_inner()
        .status;
    if status == i32::from(ServingStatus::Serving) {
        println!("SERVING");
        Ok(())
    } else {
        Err(format!("not serving ({status})"))
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let (name, region) = if let Command::Up(args) = &cli.command {
        ("up", args.region.clone())
    } else {
        ("cli", "local".to_owned())
    };
    let telemetry = aftersales_runtime::telemetry::init(name, &region, cli.log_json);
    let result = match cli.command {
        Command::Up(args) => up(*args).await,
        Command::Login(args) => login::login(args, &cli.endpoints.issuer_url).await,
        Command::Load(args) => load::run(*args, &cli.endpoints).await,
        Command::Logout => login::logout().await,
        Command::Whoami => login::whoami(),
        Command::Device(command) => client::device(command, &cli.endpoints).await,
        Command::Center(command) => client::center(command, &cli.endpoints).await,
        Command::Network(command) => network::network(command, &cli.endpoints).await,
        Command::Repair(command) => client::repair(command, &cli.endpoints).await,
        Command::Parts(command) => parts::parts(command, &cli.endpoints).await,
        Command::Support(command) => support::support(command, &cli.endpoints).await,
        Command::Warranty(command) => client::warranty_command(command, &cli.endpoints).await,
        Command::Shipment(command) => client::shipment(command, &cli.endpoints).await,
        Command::Notify(command) => client::notify(command, &cli.endpoints).await,
        Command::Customer(command) => client::customer(command, &cli.endpoints).await,
        Command::Projections(command) => operator::projections(command).await,
        Command::Audit(command) => operator::audit(command, &cli.endpoints).await,
        Command::Dlq(command) => operator::dlq(command, &cli.endpoints).await,
        Command::Streams(command) => operator::streams(command, &cli.endpoints).await,
        Command::Relay(args) => relay(args).await,
        Command::Keyring(command) => keyring(command).await,
        Command::NatsAuthorization {
            region,
            regions_file,
        } => {
            let regions = match regions_file {
                Some(path) => {
                    aftersales_runtime::regions::Regions::load(&path).map_err(|e| e.to_string())
                }
                None => Ok(aftersales_runtime::regions::Regions::single(&region)),
            };
            regions
                .and_then(|regions| operator::nats_authorization(&region, &regions))
                .map(|block| print!("{block}"))
        }
        Command::Health { url, service } => {
            health(&url, service, cli.endpoints.ca_cert.as_deref()).await
        }
    };
    telemetry.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("aftersales: {error}");
            ExitCode::FAILURE
        }
    }
}
