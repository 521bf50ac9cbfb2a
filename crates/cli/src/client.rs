//! Commands for people, over gRPC: readable lines by default, `--json` for scripts.

use aftersales_proto::common::{CountryCode, DeviceId, GeoPoint, device_id};
use aftersales_proto::repair as rpb;
use aftersales_proto::repair::repair_service_client::RepairServiceClient;
use aftersales_proto::warranty as wpb;
use aftersales_proto::warranty::warranty_service_client::WarrantyServiceClient;
use aftersales_runtime::regions::{Routes, first_that_answers};
use aftersales_runtime::telemetry::{TracedChannel, traced};
use serde_json::json;

/// Where the services are.
#[derive(Debug, Clone, clap::Args)]
pub struct Endpoints {
    /// The warranty service.
    #[arg(
        long,
        global = true,
        env = "AFTERSALES_WARRANTY_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub warranty_url: String,
    /// The repair service.
    #[arg(
        long,
        global = true,
        env = "AFTERSALES_REPAIR_URL",
        default_value = "http://127.0.0.1:50052"
    )]
    pub repair_url: String,
    /// The logistics service.
    #[arg(
        long,
        global = true,
        env = "AFTERSALES_LOGISTICS_URL",
        default_value = "http://127.0.0.1:50053"
    )]
    pub logistics_url: String,
    /// The notification service.
    #[arg(
        long,
        global = true,
        env = "AFTERSALES_NOTIFICATION_URL",
        default_value = "http://127.0.0.1:50054"
    )]
    pub notification_url: String,
    /// The parts service.
    #[arg(
        long,
        global = true,
        env = "AFTERSALES_PARTS_URL",
        default_value = "http://127.0.0.1:50055"
    )]
    pub parts_url: String,
    /// The support service.
    #[arg(
        long,
        global = true,
        env = "AFTERSALES_SUPPORT_URL",
        default_value = "http://127.0.0.1:50056"
    )]
    pub support_url: String,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// A bearer token from the identity provider, sent with every call (services
    /// that authenticate refuse calls without one).
    #[arg(long, global = true, env = "AFTERSALES_TOKEN", value_parser = aftersales_runtime::config::secret, hide_env_values = true)]
    pub token: Option<secrecy::SecretString>,
    /// The identity provider `aftersales login` signs in at (`up`'s by default).
    #[arg(
        long,
        global = true,
        env = "AFTERSALES_ISSUER_URL",
        default_value = "http://127.0.0.1:8079"
    )]
    pub issuer_url: String,
    /// A CA (PEM) to trust, besides the system's, for services at `https://` URLs.
    #[arg(long, global = true, env = "AFTERSALES_TLS_CA")]
    pub ca_cert: Option<std::path::PathBuf>,
    /// The region directory (TOML): with it, a device's writes go to its home
    /// region and reads to the nearest region that answers (the service URLs
    /// above are the nearest).
    #[arg(long, global = true, env = "AFTERSALES_REGIONS_FILE")]
    pub regions_file: Option<std::path::PathBuf>,
}

impl Endpoints {
    /// A channel to `service` at `url` whose calls carry the token: `--token`
    /// (an empty one: none), or else the signed-in user's (`aftersales login`).
    pub async fn channel(&self, service: &str, url: &str) -> Result<TracedChannel, String> {
        use secrecy::ExposeSecret as _;
        let token = match &self.token {
            Some(token) if token.expose_secret().is_empty() => None,
            Some(token) => Some(token.expose_secret().to_owned()),
            None => crate::login::current_token().await?,
        };
        Ok(traced(
            connect(service, url, self.ca_cert.as_deref()).await?,
            token.map(aftersales_auth::ServiceToken::fixed),
        ))
    }

    /// Where calls to `service`, whose nearest instance is at `nearest`, go.
    pub fn routes(&self, service: &'static str, nearest: &str) -> Result<Routes, String> {
        let regions = self
            .regions_file
            .as_deref()
            .map(|path| {
                aftersales_runtime::regions::Regions::load(path)
                    .map(std::sync::Arc::new)
                    .map_err(|e| e.to_string())
            })
            .transpose()?;
        Ok(Routes::new(service, nearest, regions))
    }

    /// A warranty client at `url`.
    pub async fn warranty_at(
        &self,
        url: &str,
    ) -> Result<WarrantyServiceClient<TracedChannel>, String> {
        Ok(WarrantyServiceClient::new(
            self.channel("warranty", url).await?,
        ))
    }

    /// Reads `imei`'s device from the nearest region that has it; gives the
    /// device and the warranty service that answered.
    async fn find_device(
        &self,
        routes: &Routes,
        id: &str,
    ) -> Result<(wpb::Device, String), String> {
        first_that_answers(&routes.readers(), |url| async move {
            let mut client = self
                .warranty_at(&url)
                .await
                .map_err(tonic::Status::unavailable)?;
            client
                .get_device(wpb::GetDeviceRequest {
                    device_id: imei(id),
                })
                .await
                .map(tonic::Response::into_inner)
        })
        .await
        .map_err(failed)
    }

    /// A warranty client in `imei`'s home region, the only one that changes it.
    async fn warranty_home_of(
        &self,
        id: &str,
    ) -> Result<WarrantyServiceClient<TracedChannel>, String> {
        let routes = self.routes("warranty", &self.warranty_url)?;
        if routes.nearest_only() {
            return self.warranty_at(routes.nearest()).await;
        }
        let (device, answered_at) = self.find_device(&routes, id).await?;
        let replica_home = device.replica.map(|r| r.home_region).unwrap_or_default();
        let home = routes
            .home_of_device(&answered_at, &replica_home)
            .map_err(failed)?;
        self.warranty_at(&home).await
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum Device {
    /// Register a phone under the policy of its country of purchase.
    Register {
        /// 15-digit IMEI.
        #[arg(long)]
        imei: String,
        #[arg(long)]
        model: String,
        /// YYYY-MM-DD, or `today`.
        #[arg(long)]
        purchased: String,
        /// ISO country code, e.g. DE.
        #[arg(long)]
        country: String,
        #[arg(long)]
        customer: String,
    },
    /// Show a device and its warranty.
    Show {
        #[arg(long)]
        imei: String,
    },
    /// Was this fault covered on the day it appeared, and under which rule?
    Coverage {
        #[arg(long)]
        imei: String,
        /// A fault category, e.g. display, battery, liquid_damage.
        #[arg(long)]
        fault: String,
        /// The day the fault appeared (YYYY-MM-DD or `today`); today if not given.
        #[arg(long)]
        fault_date: Option<String>,
        /// Answer as the platform knew things at this moment (RFC 3339, or
        /// `now`); now if not given.
        #[arg(long)]
        known_at: Option<String>,
        /// The country the phone is serviced in (ISO code); its country of
        /// purchase if not given.
        #[arg(long)]
        serviced_in: Option<String>,
    },
    /// The recall and service programmes, with the devices each affects and
    /// how many were remedied.
    Programmes,
    /// Register an accessory with the phone it came with or was bought for: it
    /// has its own warranty.
    Accessory {
        #[arg(long)]
        imei: String,
        /// The accessory's serial: 4 to 40 letters, digits or '-'.
        #[arg(long)]
        serial: String,
        /// charger, cable, case or earbuds.
        #[arg(long)]
        kind: String,
        /// YYYY-MM-DD, or `today`.
        #[arg(long, default_value = "today")]
        purchased: String,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum Center {
    /// Service centers near a point, or a mail-in recommendation.
    Nearest {
        #[arg(long, allow_hyphen_values = true)]
        lat: f64,
        #[arg(long, allow_hyphen_values = true)]
        lon: f64,
        #[arg(long)]
        country: Option<String>,
        #[arg(long, default_value_t = 3)]
        limit: u32,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum Warranty {
    /// Buy an extended-warranty plan for a device (e.g. care-12, care-24).
    /// Order a plan; it is in force once its payment settles (`device show`).
    Extend {
        #[arg(long)]
        imei: String,
        #[arg(long)]
        plan: String,
        /// The payment method from the provider's checkout (the sandbox's:
        /// sandbox-ok, sandbox-declined, sandbox-insufficient-funds, sandbox-pending).
        #[arg(long, default_value = "sandbox-ok")]
        payment_method: String,
    },
}

fn imei(value: &str) -> Option<DeviceId> {
    Some(DeviceId {
        kind: Some(device_id::Kind::Imei(value.to_owned())),
    })
}

pub(crate) fn failed(status: tonic::Status) -> String {
    let hint = if status.code() == tonic::Code::Unauthenticated {
        " (sign in with `aftersales login`, or give --token)"
    } else {
        ""
    };
    format!("{:?}: {}{hint}", status.code(), status.message())
}

/// A channel to `url`, or a message naming the service that cannot be reached.
pub async fn connect(
    service: &str,
    url: &str,
    ca: Option<&std::path::Path>,
) -> Result<tonic::transport::Channel, String> {
    let endpoint = aftersales_runtime::tls::endpoint(url, ca)
        .map_err(|e| format!("{service} URL {e}"))?
        .connect_timeout(std::time::Duration::from_secs(3));
    endpoint
        .connect()
        .await
        .map_err(|e| format!("cannot reach {service} at {url}: {e}"))
}

pub async fn warranty(
    endpoints: &Endpoints,
) -> Result<WarrantyServiceClient<TracedChannel>, String> {
    endpoints.warranty_at(&endpoints.warranty_url).await
}

pub async fn repair_client(
    endpoints: &Endpoints,
) -> Result<RepairServiceClient<TracedChannel>, String> {
    Ok(RepairServiceClient::new(
        endpoints.channel("repair", &endpoints.repair_url).await?,
    ))
}

fn device_json(d: &wpb::Device) -> serde_json::Value {
    json!({
        "imei": d.device_id.as_ref().and_then(|i| i.kind.as_ref()).map(|k| match k {
            device_id::Kind::Imei(v) | device_id::Kind::Serial(v) => v.clone(),
        }),
        "model": d.model,
        "purchase_date": d.purchase_date,
        "purchase_date_declared": d.purchase_date_declared,
        "country": d.country_of_purchase.as_ref().map(|c| c.value.clone()),
        "customer_id": d.customer_id,
        "policy": format!("{} v{}", d.policy_id, d.policy_version),
        "warranty_end": d.base_warranty_end,
        "legal_guarantee_end": d.legal_guarantee_end,
        "extended_plan": d.extended_plan.as_ref().map(|p| json!({"plan": p.plan_id, "until": p.coverage_end})),
        "pending_plan": d.pending_plan.as_ref().map(|p| json!({"plan": p.plan_id, "payment": p.payment_id, "status": "payment pending"})),
        "voided": d.voided,
        "replica": d.replica.as_ref().map(replica_in_words),
        "programmes": d.programmes,
        "accessories": d.accessories.iter().map(|a| {
            let kind = a.kind().as_str_name().trim_start_matches("ACCESSORY_KIND_").to_ascii_lowercase();
            let mut line = format!("{} {kind} covered until {}", a.serial, a.coverage_end);
            if !a.replaced_by.is_empty() {
                line.push_str(&format!(", replaced by {}", a.replaced_by));
            }
            line
        }).collect::<Vec<_>>(),
    })
}

fn print(json_out: bool, value: &serde_json::Value) {
    if json_out {
        println!("{value}");
    } else if let Some(fields) = value.as_object() {
        let width = fields.keys().map(String::len).max().unwrap_or(0);
        for (key, field) in fields {
            let text = match field {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => "-".into(),
                other @ (serde_json::Value::Bool(_)
                | serde_json::Value::Number(_)
                | serde_json::Value::Array(_)
                | serde_json::Value::Object(_)) => other.to_string(),
            };
            println!("{key:width$}  {text}");
        }
    }
}

/// The day a center that refused a walk-in (RESOURCE_EXHAUSTED: closed that
/// day, or full) names as its next available one.
pub(crate) fn next_available_day(refused: &tonic::Status) -> Option<&str> {
    let (_, day) = refused.message().rsplit_once("next available: ")?;
    Some(day.trim())
}

/// Where an answer from a replica came from, and how fresh it is.
fn replica_in_words(replica: &wpb::Replica) -> String {
    format!(
        "answered from this region's replica of {}, as of {}",
        replica.home_region, replica.as_of
    )
}

/// A valid IMEI, or a message saying why not (before any service is asked).
fn checked_imei(value: &str) -> Result<String, String> {
    aftersales_core::types::Imei::parse("--imei", value)
        .map(|imei| imei.to_string())
        .map_err(|e| format!("--imei {value:?}: {}", e.reason))
}

pub async fn warranty_command(command: Warranty, endpoints: &Endpoints) -> Result<(), String> {
    let Warranty::Extend {
        imei: id,
        plan,
        payment_method,
    } = command;
    let id = checked_imei(&id)?;
    let d = endpoints
        .warranty_home_of(&id)
        .await?
        .purchase_extended_warranty(wpb::PurchaseExtendedWarrantyRequest {
            device_id: imei(&id),
            plan_id: plan,
            payment_method,
        })
        .await
        .map_err(failed)?
        .into_inner();
    print(endpoints.json, &device_json(&d));
    Ok(())
}

pub async fn device(command: Device, endpoints: &Endpoints) -> Result<(), String> {
    match &command {
        Device::Register { imei, .. }
        | Device::Show { imei }
        | Device::Coverage { imei, .. }
        | Device::Accessory { imei, .. } => {
            checked_imei(imei)?;
        }
        Device::Programmes => {}
    }
    let routes = endpoints.routes("warranty", &endpoints.warranty_url)?;
    match command {
        Device::Register {
            imei: id,
            model,
            purchased,
            country,
            customer,
        } => {
            let d = endpoints
                .warranty_at(&routes.home_of_country(&country))
                .await?
                .register_device(wpb::RegisterDeviceRequest {
                    device_id: imei(&id),
                    model,
                    purchase_date: day_or_today(&purchased),
                    country_of_purchase: Some(CountryCode { value: country }),
                    channel: wpb::SalesChannel::RetailStore.into(),
                    customer_id: customer,
                    ..Default::default()
                })
                .await
                .map_err(failed)?
                .into_inner();
            print(endpoints.json, &device_json(&d));
        }
        Device::Accessory {
            imei: id,
            serial,
            kind,
            purchased,
        } => {
            let kind = wpb::AccessoryKind::from_str_name(&format!(
                "ACCESSORY_KIND_{}",
                kind.trim().to_ascii_uppercase()
            ))
            .filter(|k| *k != wpb::AccessoryKind::Unspecified)
            .ok_or_else(|| format!("--kind: {kind:?} is not charger, cable, case or earbuds"))?;
            let d = endpoints
                .warranty_home_of(&id)
                .await?
                .register_accessory(wpb::RegisterAccessoryRequest {
                    device_id: imei(&id),
                    accessory_serial: serial,
                    kind: kind.into(),
                    purchase_date: day_or_today(&purchased),
                    replaces_serial: String::new(),
                })
                .await
                .map_err(failed)?
                .into_inner();
            print(endpoints.json, &device_json(&d));
        }
        Device::Show { imei: id } => {
            let (d, _) = endpoints.find_device(&routes, &id).await?;
            print(endpoints.json, &device_json(&d));
        }
        Device::Coverage {
            imei: id,
            fault,
            fault_date,
            known_at,
            serviced_in,
        } => {
            let known_at = known_at
                .filter(|t| t.trim() != "now")
                .map(|t| {
                    chrono::DateTime::parse_from_rfc3339(t.trim())
                        .map(|t| aftersales_runtime::request::timestamp_to_proto(t.to_utc()))
                        .map_err(|_| format!("--known-at: {t:?} is not an RFC 3339 time"))
                })
                .transpose()?;
            let fault_date = fault_date.map(|d| day_or_today(&d));
            let name = format!("FAULT_CATEGORY_{}", fault.trim().to_ascii_uppercase());
            let category = wpb::FaultCategory::from_str_name(&name)
                .filter(|f| *f != wpb::FaultCategory::Unspecified)
                .ok_or_else(|| format!("--fault: {fault:?} is not a fault category"))?;
            let request = wpb::CheckCoverageRequest {
                fault_date: fault_date.unwrap_or_default(),
                known_at,
                serviced_in: serviced_in.map(|c| CountryCode {
                    value: c.trim().to_ascii_uppercase(),
                }),
                device_id: imei(&id),
                fault_category: category.into(),
                as_of: None,
                record_decision: false,
            };
            let (d, _) = first_that_answers(&routes.readers(), |url| {
                let request = request.clone();
                async move {
                    endpoints
                        .warranty_at(&url)
                        .await
                        .map_err(tonic::Status::unavailable)?
                        .check_coverage(request)
                        .await
                        .map(tonic::Response::into_inner)
                }
            })
            .await
            .map_err(failed)?;
            print(
                endpoints.json,
                &json!({
                    "covered": d.covered,
                    "reason": d.reason,
                    "explanation": d.explanation,
                    "remedy": wpb::Remedy::try_from(d.remedy).map(|r| r.as_str_name().trim_start_matches("REMEDY_").to_ascii_lowercase()).unwrap_or_default(),
                    "policy": format!("{} v{}", d.policy_id, d.policy_version),
                    "fault_date": d.decided_for,
                    "known_at": d.known_at.map(|t| aftersales_runtime::request::timestamp_from_proto("known_at", Some(&t)).map(|t| t.to_rfc3339()).unwrap_or_default()),
                    "under_legal_guarantee": d.under_legal_guarantee,
                    "rule": d.rule.as_ref().map(|r| json!({
                        "figure": r.figure,
                        "starts": r.starts,
                        "ends": r.ends,
                        "source": r.source.as_ref().map(|s| json!({
                            "kind": s.kind, "title": s.title, "reference": s.reference,
                            "url": s.url, "checked": s.checked,
                        })),
                    })),
                    "because": d.rule.as_ref().map(rule_in_words),
                    "programme": d.programme.as_ref().map(|p| format!("{} v{} ({}): {}", p.id, p.version, p.kind, p.title)),
                    "replica": d.replica.as_ref().map(replica_in_words),
                }),
            );
        }
        Device::Programmes => {
            let programmes = endpoints
                .warranty_at(routes.nearest())
                .await?
                .list_programmes(wpb::ListProgrammesRequest {})
                .await
                .map_err(failed)?
                .into_inner()
                .programmes;
            let rows: Vec<_> = programmes
                .iter()
                .map(|p| {
                    json!({
                        "id": p.id,
                        "version": p.version,
                        "kind": p.kind,
                        "title": p.title,
                        "models": p.models,
                        "ranges": p.ranges,
                        "faults": p.faults().map(|f| f.as_str_name().trim_start_matches("FAULT_CATEGORY_").to_ascii_lowercase()).collect::<Vec<_>>(),
                        "countries": p.countries.iter().map(|c| c.value.clone()).collect::<Vec<_>>(),
                        "from": p.starts,
                        "until": p.ends,
                        "affected": p.affected,
                        "remedied": p.remedied,
                    })
                })
                .collect();
            if endpoints.json {
                println!("{}", serde_json::Value::Array(rows));
            } else {
                for (i, row) in rows.iter().enumerate() {
                    if i > 0 {
                        println!();
                    }
                    print(false, row);
                }
            }
        }
    }
    Ok(())
}

/// `today` as the date it is, any other text as given (the service checks it).
fn day_or_today(day: &str) -> String {
    if day.trim() == "today" {
        #[allow(clippy::disallowed_methods)] // a person's command starts now
        chrono::Utc::now().date_naive().to_string()
    } else {
        day.trim().to_owned()
    }
}

/// A decision's rule in plain words, for people reading the CLI's answer.
fn rule_in_words(rule: &wpb::CoverageRule) -> String {
    let what = match rule.figure.as_str() {
        "statutory.return_days" => "the statutory return window",
        "statutory.exchange_days" => "the statutory exchange window",
        "statutory.legal_guarantee_months" => "the legal guarantee",
        "phone_months" => "the maker's warranty",
        "accessory_months" => "the accessory warranty",
        "plans" => "the extended warranty plan",
        "replaced_part.minimum_days" => "the replaced part's warranty",
        "honoured_in" => "where the warranty is honoured",
        "programme" => "a recall or service programme",
        other => other,
    };
    let dates = if rule.starts.is_empty() {
        format!("until {}", rule.ends)
    } else {
        format!("from {} to {}", rule.starts, rule.ends)
    };
    match &rule.source {
        Some(s) => format!("{what}, {dates}, per {}: {}", s.title, s.reference),
        None => format!("{what}, {dates}"),
    }
}

pub async fn center(command: Center, endpoints: &Endpoints) -> Result<(), String> {
    let Center::Nearest {
        lat,
        lon,
        country,
        limit,
    } = command;
    // The centers of the region the customer is in, wherever the phone is from.
    let routes = endpoints.routes("repair", &endpoints.repair_url)?;
    let url = country.as_deref().map_or_else(
        || routes.nearest().to_owned(),
        |c| routes.home_of_country(c),
    );
    let found = RepairServiceClient::new(endpoints.channel("repair", &url).await?)
        .find_nearest_centers(rpb::FindNearestCentersRequest {
            point: Some(GeoPoint {
                latitude: lat,
                longitude: lon,
            }),
            country: country.map(|value| CountryCode { value }),
            limit,
        })
        .await
        .map_err(failed)?
        .into_inner();
    let centers: Vec<_> = found
        .centers
        .iter()
        .filter_map(|n| {
            let c = n.center.as_ref()?;
            Some(json!({"id": c.id, "name": c.name, "city": c.city, "distance_km": (n.distance_km * 10.0).round() / 10.0}))
        })
        .collect();
    if endpoints.json {
        println!(
            "{}",
            json!({"centers": centers, "recommend_mail_in": found.recommend_mail_in})
        );
    } else {
        if found.recommend_mail_in {
            println!(
                "No service center within {} km: send the device by mail-in repair. The nearest:",
                found.radius_km
            );
        }
        for c in &centers {
            println!(
                "{:>8} km  {}  ({})",
                c["distance_km"],
                c["name"].as_str().unwrap_or_default(),
                c["id"].as_str().unwrap_or_default()
            );
        }
    }
    Ok(())
}

#[derive(Debug, clap::Subcommand)]
pub enum Repair {
    /// Open a walk-in repair at a center (or `--mail-in` with an address).
    Open {
        #[arg(long)]
        imei: String,
        #[arg(long)]
        customer: String,
        #[arg(long)]
        symptoms: String,
        /// The service center, for a walk-in.
        #[arg(long)]
        center: Option<String>,
        /// With --center: the day the customer comes in (YYYY-MM-DD, up to 60
        /// days ahead); today if not given.
        #[arg(long)]
        day: Option<String>,
        /// Send the device by mail; the return address lines follow.
        #[arg(long, num_args = 1.., value_name = "LINE")]
        mail_in: Vec<String>,
        /// With --mail-in: city, postal code, region (state, province) where
        /// the country's addresses have one, and ISO country code.
        #[arg(long)]
        city: Option<String>,
        #[arg(long)]
        postal_code: Option<String>,
        #[arg(long)]
        region: Option<String>,
        #[arg(long)]
        country: Option<String>,
        /// The day the fault appeared (YYYY-MM-DD), which coverage is decided
        /// for; today if not given.
        #[arg(long)]
        fault_date: Option<String>,
    },
    /// Show an order.
    Show {
        #[arg(long)]
        order: String,
    },
    /// Staff: open the customer's words and the phone's data-protection
    /// checklist (with --address, a mail-in's address too), for a purpose the
    /// customer sees in the order's timeline.
    Personal {
        #[arg(long)]
        order: String,
        /// diagnosis, repair, return-shipping, customer-contact or complaint.
        #[arg(long)]
        purpose: String,
        #[arg(long)]
        address: bool,
    },
    /// Every step of an order, with who and when.
    Timeline {
        #[arg(long)]
        order: String,
    },
    /// Follow an order live until it is closed or cancelled.
    Watch {
        #[arg(long)]
        order: String,
    },
    /// Staff: move an order one step on.
    Advance {
        #[arg(long)]
        order: String,
        #[arg(long, value_enum)]
        step: Step,
        /// diagnose: the fault category (display, battery, …).
        #[arg(long)]
        fault: Option<String>,
        #[arg(long, default_value = "staff")]
        technician: String,
        /// quote: the total in minor units (cents), and its currency.
        #[arg(long)]
        amount: Option<i64>,
        #[arg(long)]
        currency: Option<String>,
        /// quote: days it stays valid.
        #[arg(long, default_value_t = 14)]
        valid_days: i64,
        /// check-in, qc-pass, qc-fail: notes; cancel: the reason.
        #[arg(long, default_value = "")]
        notes: String,
    },
}

/// The steps staff take on an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Step {
    CheckIn,
    Diagnose,
    Quote,
    Approve,
    Decline,
    Start,
    QcPass,
    QcFail,
    Ready,
    Collected,
    Cancel,
}

#[derive(Debug, clap::Subcommand)]
pub enum Shipment {
    /// The parcels of a repair order and every scan of each.
    Track {
        #[arg(long)]
        order: String,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum Notify {
    /// A customer's in-app inbox, newest first.
    Inbox {
        #[arg(long)]
        customer: String,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
}

fn stage_name(stage: i32) -> String {
    rpb::Stage::try_from(stage)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("STAGE_")
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

fn order_json(o: &rpb::RepairOrder) -> serde_json::Value {
    let coverage = o.coverage.clone().unwrap_or_default();
    json!({
        "order_id": o.order_id,
        "stage": stage_name(o.stage),
        "center": o.service_center_id,
        "customer_id": o.customer_id,
        // Withheld from staff until opened (`repair personal`).
        "symptoms": (!o.personal_withheld).then_some(&o.symptoms),
        "personal_withheld": o.personal_withheld,
        "fault_date": o.fault_date,
        "coverage": if coverage.decided {
            format!("{} ({}, {} v{})", if coverage.covered { "covered" } else { "not covered" }, coverage.reason, coverage.policy_id, coverage.policy_version)
        } else {
            "pending".to_owned()
        },
        "quote_total": o.quote.as_ref().and_then(|q| q.total.as_ref()).map(|m| format!("{} {} (minor units)", m.minor_units, m.currency)),
        "qc_failures": o.qc_failures,
    })
}

fn fault_category(fault: &str) -> Result<wpb::FaultCategory, String> {
    let name = format!("FAULT_CATEGORY_{}", fault.trim().to_ascii_uppercase());
    wpb::FaultCategory::from_str_name(&name)
        .filter(|f| *f != wpb::FaultCategory::Unspecified)
        .ok_or_else(|| format!("--fault: {fault:?} is not a fault category"))
}

async fn advance(
    client: &mut RepairServiceClient<TracedChannel>,
    order_id: String,
    step: Step,
    fields: AdvanceFields,
) -> Result<rpb::RepairOrder, tonic::Status> {
    let order = || rpb::OrderRef {
        order_id: order_id.clone(),
    };
    let answer = match step {
        Step::CheckIn => {
            client
                .check_in_device(rpb::CheckInDeviceRequest {
                    order_id: order_id.clone(),
                    condition_notes: fields.notes,
                    ..Default::default()
                })
                .await
        }
        Step::Diagnose => {
            client
                .diagnose(rpb::DiagnoseRequest {
                    order_id: order_id.clone(),
                    fault_category: fields.fault.into(),
                    fault_codes: vec![],
                    technician: fields.technician,
                })
                .await
        }
        Step::Quote => {
            client
                .issue_quote(rpb::IssueQuoteRequest {
                    order_id: order_id.clone(),
                    lines: vec![rpb::QuoteLine {
                        description: "repair".into(),
                        is_labour: false,
                        amount: fields.amount,
                    }],
                    valid_until: Some(aftersales_runtime::request::timestamp_to_proto(
                        fields.valid_until,
                    )),
                })
                .await
        }
        Step::Approve => client.approve_quote(order()).await,
        Step::Decline => client.decline_quote(order()).await,
        Step::Start => {
            client
                .start_repair(rpb::StartRepairRequest {
                    order_id: order_id.clone(),
                    technician: fields.technician,
                })
                .await
        }
        Step::QcPass | Step::QcFail => {
            client
                .record_qc_result(rpb::RecordQcResultRequest {
                    order_id: order_id.clone(),
                    passed: step == Step::QcPass,
                    notes: fields.notes,
                })
                .await
        }
        Step::Ready => client.mark_ready_for_return(order()).await,
        Step::Collected => client.confirm_collected(order()).await,
        Step::Cancel => {
            client
                .cancel_repair(rpb::CancelRepairRequest {
                    order_id: order_id.clone(),
                    reason: fields.notes,
                })
                .await
        }
    };
    answer.map(tonic::Response::into_inner)
}

/// What `repair advance` passes to the step.
struct AdvanceFields {
    fault: wpb::FaultCategory,
    technician: String,
    amount: Option<aftersales_proto::common::Money>,
    valid_until: chrono::DateTime<chrono::Utc>,
    notes: String,
}

pub async fn repair(command: Repair, endpoints: &Endpoints) -> Result<(), String> {
    if let Repair::Open { imei, .. } = &command {
        checked_imei(imei)?;
    }
    let mut client = repair_client(endpoints).await?;
    match command {
        Repair::Advance {
            order,
            step,
            fault,
            technician,
            amount,
            currency,
            valid_days,
            notes,
        } => {
            let fault = match (step, fault) {
                (Step::Diagnose, None) => return Err("--step diagnose needs --fault".into()),
                (_, Some(f)) => fault_category(&f)?,
                (_, None) => wpb::FaultCategory::Unspecified,
            };
            let amount = match (step, amount, currency) {
                (Step::Quote, Some(minor_units), Some(currency)) => {
                    Some(aftersales_proto::common::Money {
                        minor_units,
                        currency: currency.to_ascii_uppercase(),
                    })
                }
                (Step::Quote, _, _) => {
                    return Err("--step quote needs --amount (minor units) and --currency".into());
                }
                _ => None,
            };
            if !(1..=90).contains(&valid_days) {
                return Err("--valid-days must be 1 to 90".into());
            }
            #[allow(clippy::disallowed_methods)] // a person's command starts now
            let valid_until = chrono::Utc::now() + chrono::Duration::days(valid_days);
            let fields = AdvanceFields {
                fault,
                technician,
                amount,
                valid_until,
                notes,
            };
            let updated = advance(&mut client, order, step, fields)
                .await
                .map_err(failed)?;
            print(endpoints.json, &order_json(&updated));
            return Ok(());
        }
        Repair::Open {
            imei: id,
            customer,
            symptoms,
            center,
            day,
            mail_in,
            city,
            postal_code,
            region,
            country,
            fault_date,
        } => {
            let (channel, contact_address) = if mail_in.is_empty() {
                (rpb::Channel::WalkIn, None)
            } else {
                let address = aftersales_proto::common::Address {
                    recipient: customer.clone(),
                    lines: mail_in,
                    city: city.unwrap_or_default(),
                    region: region.unwrap_or_default(),
                    postal_code: postal_code.unwrap_or_default(),
                    country: country.map(|value| CountryCode { value }),
                    phone: String::new(),
                };
                (rpb::Channel::MailIn, Some(address))
            };
            let order = client
                .open_repair(rpb::OpenRepairRequest {
                    fault_date: fault_date.unwrap_or_default(),
                    device_id: imei(&id),
                    channel: channel.into(),
                    service_center_id: center.unwrap_or_default(),
                    customer_id: customer,
                    symptoms,
                    contact_address,
                    reported_fault: 0,
                    walk_in_day: day.map(|d| day_or_today(&d)).unwrap_or_default(),
                })
                .await
                .map_err(failed)?
                .into_inner();
            print(endpoints.json, &order_json(&order));
        }
        Repair::Show { order } => {
            let order = client
                .get_repair(rpb::OrderRef { order_id: order })
                .await
                .map_err(failed)?
                .into_inner();
            print(endpoints.json, &order_json(&order));
        }
        Repair::Personal {
            order,
            purpose,
            address,
        } => {
            let name = format!(
                "ACCESS_PURPOSE_{}",
                purpose.trim().replace('-', "_").to_ascii_uppercase()
            );
            let purpose = rpb::AccessPurpose::from_str_name(&name)
                .filter(|p| *p != rpb::AccessPurpose::Unspecified)
                .ok_or_else(|| {
                    format!(
                        "--purpose: {purpose:?} is not one of diagnosis, repair, return-shipping, customer-contact, complaint"
                    )
                })?;
            let mut categories = vec![
                rpb::DataCategory::CustomerWords.into(),
                rpb::DataCategory::DataProtection.into(),
            ];
            if address {
                categories.push(rpb::DataCategory::ContactAddress.into());
            }
            let opened = client
                .open_personal_data(rpb::OpenPersonalDataRequest {
                    order_id: order,
                    categories,
                    purpose: purpose.into(),
                })
                .await
                .map_err(failed)?
                .into_inner();
            let checklist = opened.data_protection.map(|d| {
                json!({
                    "backup_reminded": d.backup_reminded,
                    "find_my_device_off": d.find_my_device_off,
                    "passcode": rpb::PasscodeHandling::try_from(d.passcode)
                        .map(|p| p.as_str_name().trim_start_matches("PASSCODE_HANDLING_").to_ascii_lowercase())
                        .unwrap_or_default(),
                })
            });
            let contact = opened.contact_address.map(|a| {
                json!({
                    "recipient": a.recipient,
                    "lines": a.lines,
                    "city": a.city,
                    "region": a.region,
                    "postal_code": a.postal_code,
                    "country": a.country.map(|c| c.value).unwrap_or_default(),
                    "phone": a.phone,
                })
            });
            print(
                endpoints.json,
                &json!({
                    "order_id": opened.order_id,
                    "symptoms": opened.symptoms,
                    "data_protection": checklist,
                    "contact_address": contact,
                }),
            );
        }
        Repair::Timeline { order } => {
            let timeline = client
                .get_repair_timeline(rpb::OrderRef { order_id: order })
                .await
                .map_err(failed)?
                .into_inner();
            for step in &timeline.steps {
                let at = step.at.as_ref().map_or(0, |t| t.seconds);
                let at = chrono::DateTime::from_timestamp(at, 0)
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default();
                if endpoints.json {
                    println!(
                        "{}",
                        json!({"version": step.version, "event": step.event_type, "stage": stage_name(step.stage), "actor": step.actor, "at": at})
                    );
                } else {
                    println!(
                        "{at}  {:<20} {:<18} {}",
                        step.event_type,
                        stage_name(step.stage),
                        step.actor
                    );
                }
            }
        }
        Repair::Watch { order } => {
            let mut updates = client
                .watch_repair(rpb::OrderRef { order_id: order })
                .await
                .map_err(failed)?
                .into_inner();
            while let Some(update) = updates.message().await.map_err(failed)? {
                if endpoints.json {
                    println!("{}", order_json(&update));
                } else {
                    println!("{}  {}", update.order_id, stage_name(update.stage));
                }
            }
        }
    }
    Ok(())
}

fn status_name(status: i32) -> String {
    aftersales_proto::logistics::TrackingStatus::try_from(status)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("TRACKING_STATUS_")
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

fn time(t: Option<&prost_types::Timestamp>) -> String {
    t.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
        .map(|t| t.to_rfc3339())
        .unwrap_or_default()
}

pub async fn shipment(command: Shipment, endpoints: &Endpoints) -> Result<(), String> {
    use aftersales_proto::logistics as lpb;
    let Shipment::Track { order } = command;
    let mut client = lpb::logistics_service_client::LogisticsServiceClient::new(
        endpoints
            .channel("logistics", &endpoints.logistics_url)
            .await?,
    );
    let shipments = client
        .list_shipments_by_repair(lpb::ListShipmentsByRepairRequest {
            repair_order_id: order.clone(),
        })
        .await
        .map_err(failed)?
        .into_inner()
        .shipments;
    if shipments.is_empty() {
        return Err(format!(
            "no shipments for order {order} (a walk-in, or not labelled yet)"
        ));
    }
    for s in shipments {
        let timeline = client
            .get_tracking_timeline(lpb::ShipmentRef {
                shipment_id: s.shipment_id.clone(),
            })
            .await
            .map_err(failed)?
            .into_inner();
        let direction = lpb::Direction::try_from(s.direction)
            .map(|d| {
                d.as_str_name()
                    .trim_start_matches("DIRECTION_")
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        if endpoints.json {
            println!(
                "{}",
                json!({
                    "shipment_id": s.shipment_id,
                    "direction": direction,
                    "carrier": s.carrier,
                    "tracking_number": s.tracking_number,
                    "status": status_name(s.status),
                    "stalled": s.stalled,
                    "scans": timeline.scans.iter().map(|scan| json!({
                        "status": status_name(scan.status),
                        "location": scan.location,
                        "at": time(scan.occurred_at.as_ref()),
                    })).collect::<Vec<_>>(),
                })
            );
        } else {
            println!(
                "{direction} {} {} ({}){}",
                s.carrier,
                s.tracking_number,
                status_name(s.status),
                if s.stalled { ", stalled" } else { "" }
            );
            for scan in &timeline.scans {
                println!(
                    "  {}  {:<22} {}",
                    time(scan.occurred_at.as_ref()),
                    status_name(scan.status),
                    scan.location
                );
            }
        }
    }
    Ok(())
}

pub async fn notify(command: Notify, endpoints: &Endpoints) -> Result<(), String> {
    use aftersales_proto::notification as npb;
    let Notify::Inbox { customer, limit } = command;
    let inbox = npb::notification_service_client::NotificationServiceClient::new(
        endpoints
            .channel("notification", &endpoints.notification_url)
            .await?,
    )
    .list_notifications(npb::ListNotificationsRequest {
        customer_id: customer,
        page_size: limit,
        page_token: String::new(),
    })
    .await
    .map_err(failed)?
    .into_inner();
    for n in &inbox.notifications {
        if endpoints.json {
            println!(
                "{}",
                json!({"id": n.notification_id, "kind": n.kind, "subject": n.subject, "body": n.body, "read": n.read, "at": time(n.created_at.as_ref())})
            );
        } else {
            println!(
                "{} {}  {}",
                if n.read { " " } else { "*" },
                time(n.created_at.as_ref()),
                n.subject
            );
        }
    }
    if !endpoints.json {
        println!("{} unread", inbox.unread);
    }
    Ok(())
}

#[derive(Debug, clap::Subcommand)]
pub enum Customer {
    /// Everything every service holds about a customer, as JSON (one object per
    /// service), personal fields opened or `[erased]`.
    Export {
        #[arg(long)]
        customer: String,
    },
    /// Erases a customer in every service; prints each service's receipt: what was
    /// erased, what is kept and why, and what an erasure still waits for.
    Erase {
        #[arg(long)]
        customer: String,
    },
}

/// Customer ids as the services take them: checked before any call.
fn customer_id(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() || value.len() > 100 || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("--customer: 1 to 100 printable characters without spaces".into());
    }
    Ok(value.to_owned())
}

/// One request for the person, carried to every service in turn.
pub async fn customer(command: Customer, endpoints: &Endpoints) -> Result<(), String> {
    use aftersales_proto::privacy as ppb;
    use ppb::privacy_client::PrivacyClient;
    let services = [
        ("warranty", &endpoints.warranty_url),
        ("repair", &endpoints.repair_url),
        ("logistics", &endpoints.logistics_url),
        ("notification", &endpoints.notification_url),
        ("parts", &endpoints.parts_url),
        ("support", &endpoints.support_url),
    ];
    match command {
        Customer::Export { customer } => {
            let customer_id = customer_id(&customer)?;
            for (service, url) in services {
                let data = PrivacyClient::new(endpoints.channel(service, url).await?)
                    .export_customer_data(ppb::ExportCustomerDataRequest {
                        customer_id: customer_id.clone(),
                    })
                    .await
                    .map_err(|s| format!("{service}: {}", failed(s)))?
                    .into_inner();
                println!("{}", aftersales_runtime::privacy::data_json(&data));
            }
        }
        Customer::Erase { customer } => {
            let customer_id = customer_id(&customer)?;
            for (service, url) in services {
                let receipt = PrivacyClient::new(endpoints.channel(service, url).await?)
                    .erase_customer(ppb::EraseCustomerRequest {
                        customer_id: customer_id.clone(),
                    })
                    .await
                    .map_err(|s| format!("{service}: {}", failed(s)))?
                    .into_inner();
                let shown = aftersales_runtime::privacy::receipt_json(&receipt);
                if endpoints.json {
                    println!("{shown}");
                    continue;
                }
                println!("{service}: {}", shown["state"].as_str().unwrap_or(""));
                for e in &receipt.erased {
                    println!("  erased: {} ({})", e.what, e.count);
                }
                for k in &receipt.kept {
                    println!("  kept: {} ({})", k.what, k.why);
                }
                for o in &receipt.waiting_for {
                    println!("  waiting for: {} ({})", o.what, o.id);
                }
            }
        }
    }
    Ok(())
}
