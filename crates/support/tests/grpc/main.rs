//! The support service for real: gRPC on PostgreSQL (and on SQLite, the
//! embedded default), its cases, SLA clocks, routing and who sees what.
#![allow(clippy::unwrap_used, clippy::wildcard_enum_match_arm)]

mod access;
mod cases;
mod knowledge;
mod platform;
mod privacy;
mod selfhelp;
mod sla;
mod surveys;

use aftersales_core::ShiftedClock;
use aftersales_proto::common::CountryCode;
use aftersales_proto::support as pb;
use aftersales_proto::support::support_service_client::SupportServiceClient;
use aftersales_support::server::{Config, Running, start};
use aftersales_testkit::shared_postgres;
use chrono::{DateTime, Utc};
use tonic::transport::Channel;

pub fn config(database_url: String, clock: &ShiftedClock) -> Config {
    let mut common = aftersales_runtime::config::Common::test(database_url);
    common.clock = clock.shared();
    Config {
        common,
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: None,
        sla_sweep_millis: 20,
        site_url: "https://aftersales.test".into(),
    }
}

/// A clock standing at `at` (and going on from there).
pub fn clock_at(at: &str) -> ShiftedClock {
    let clock = ShiftedClock::new();
    move_to(&clock, at);
    clock
}

pub fn move_to(clock: &ShiftedClock, at: &str) {
    let target: DateTime<Utc> = at.parse().unwrap();
    clock.advance(target - clock.now());
}

#[derive(Debug)]
pub struct Server {
    pub running: Running,
    pub client: SupportServiceClient<Channel>,
}

impl Server {
    pub async fn start_with(config: Config) -> Self {
        let running = start(config).await.unwrap();
        let client = SupportServiceClient::connect(format!("http://{}", running.addr))
            .await
            .unwrap();
        Self { running, client }
    }

    /// On a database of its own in the shared PostgreSQL.
    pub async fn start(clock: &ShiftedClock) -> Self {
        Self::start_with(config(shared_postgres().create_database().unwrap(), clock)).await
    }

    /// Events of `event_type` in the support log (every event when empty).
    pub async fn events(&self, event_type: &str) -> i64 {
        aftersales_eventstore::on_read_pool!(&self.running.store, pool => {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM events WHERE event_type = $1 OR $1 = ''",
            )
            .bind(event_type.to_owned())
            .fetch_one(pool)
            .await
            .unwrap()
        })
    }

    pub async fn stop(self) {
        self.running.stop().await.unwrap();
    }
}

/// The survey id and token of a link `https://aftersales.test/survey/<id>?t=<token>`.
pub fn survey_link(link: &str) -> pb::SurveyLink {
    let rest = link
        .strip_prefix("https://aftersales.test/survey/")
        .unwrap_or_else(|| panic!("{link}"));
    let (survey_id, token) = rest.split_once("?t=").unwrap();
    pb::SurveyLink {
        survey_id: survey_id.into(),
        token: token.into(),
    }
}

/// The link of the survey about case `case_id`, as its log holds it (what the
/// customer is sent).
pub async fn case_survey_link(server: &Server, case_id: &str) -> pb::SurveyLink {
    use aftersales_eventstore::EventStore as _;
    use aftersales_support::domain::survey::{About, Event};
    let about = About::Case {
        case_id: case_id.into(),
        team_id: String::new(),
        agent_id: None,
    };
    let stream =
        aftersales_eventstore::StreamId::parse(format!("survey-{}", about.survey_id())).unwrap();
    let sent = server
        .running
        .store
        .read_stream(&stream, 1, 1)
        .await
        .unwrap();
    match sent[0].decode::<Event>().unwrap() {
        Event::SurveySent { link, .. } => survey_link(&link),
        other => panic!("{other:?}"),
    }
}

/// A nats-server with repair's and logistics' streams, and a publisher on it.
pub async fn nats_with_sources() -> (
    aftersales_testkit::NatsServer,
    async_nats::jetstream::Context,
) {
    let nats = aftersales_testkit::NatsServer::start().unwrap();
    let js = aftersales_messaging::connect(&nats.url(), "test-publisher")
        .await
        .unwrap();
    let names = aftersales_messaging::Names::new("test").unwrap();
    for service in ["repair", "logistics"] {
        aftersales_messaging::ensure_service_stream(
            &js,
            &names,
            service,
            &aftersales_messaging::StreamSettings::default(),
        )
        .await
        .unwrap();
    }
    (nats, js)
}

/// Publishes `message` as `source`'s `event_type`, as that service's relay would.
pub async fn publish<M: prost::Message>(
    js: &async_nats::jetstream::Context,
    source: &str,
    event_type: &str,
    message: &M,
    event_id: uuid::Uuid,
) {
    aftersales_messaging::testing::publish(
        js,
        "test",
        source,
        event_type,
        message,
        event_id,
        &uuid::Uuid::new_v4().to_string(),
    )
    .await;
}

pub fn country(code: &str) -> Option<CountryCode> {
    Some(CountryCode { value: code.into() })
}

/// A German customer's phone that does not charge, on the hotline.
pub fn not_charging(customer: &str) -> pb::OpenCaseRequest {
    pb::OpenCaseRequest {
        customer_id: customer.into(),
        country: country("DE"),
        language: "de".into(),
        channel: pb::Channel::Phone.into(),
        category: pb::Category::Hardware.into(),
        priority: pb::Priority::Normal.into(),
        subject: "Lädt nicht".into(),
        text: "Mein Telefon lädt seit gestern nicht mehr.".into(),
        ..Default::default()
    }
}

pub fn case_ref(id: &str) -> pb::CaseRef {
    pb::CaseRef { case_id: id.into() }
}

pub fn entry(case_id: &str, kind: pb::EntryKind, text: &str) -> pb::AddEntryRequest {
    pb::AddEntryRequest {
        case_id: case_id.into(),
        kind: kind.into(),
        text: text.into(),
        attachments: vec![],
    }
}

pub fn instant(t: Option<&prost_types::Timestamp>) -> DateTime<Utc> {
    aftersales_runtime::request::timestamp_from_proto("t", t).unwrap()
}
