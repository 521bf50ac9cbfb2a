//! Every request message of every service, with arbitrary field values, against
//! the four running binaries: no answer is INTERNAL or UNKNOWN, no process dies,
//! and a refused request leaves no event in any service's log.
//!
//! The messages are built from the services' own descriptors (prost-reflect), so
//! a new RPC or field is fuzzed without a line here. Values lean to what breaks
//! parsers and arithmetic: empty, huge and control-character strings, extreme
//! integers and timestamps, unknown enum values, NaN, nested and repeated
//! messages. `AFTERSALES_FUZZ_CASES` sets the cases per method (default 12); the
//! seed is fixed, so a failure names the case that reproduces it.

use std::time::Duration;

use proptest::prelude::Rng as _;
use proptest::test_runner::{RngAlgorithm, TestRng};
use prost::Message as _;
use prost::bytes::{Buf as _, BufMut as _};
use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, Value,
};
use tonic::Code;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

use crate::Platform;

/// Requests and answers as bytes: the message is built here, not by a stub.
#[derive(Debug, Clone, Copy, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        let n = src.remaining();
        Ok(Some(src.copy_to_bytes(n).to_vec()))
    }
}

/// Values that break parsers, bounds and arithmetic, and some that look right.
const STRINGS: &[&str] = &[
    "",
    " ",
    "x",
    "\u{0}",
    "line\nbreak",
    "' OR 1=1 --",
    "../../etc/passwd",
    "%s%n",
    "\u{202e}gnp.exe",
    "🦀📱",
    "DE",
    "de",
    "ZZ",
    "356938035643817",
    "35693803564381",
    "2026-12-03",
    "9999-99-99",
    "0000-01-01",
    "-1",
    "18446744073709551616",
    "sc-berlin-01",
    "cust-1",
    "00000000-0000-0000-0000-000000000000",
    "01a23aa5-046e-76d0-9a85-8fa3b8c08bde",
    "EUR",
    "t=-9223372036854775808",
];

fn pick<T: Copy>(rng: &mut TestRng, from: &[T]) -> T {
    from[usize::try_from(rng.next_u64() % from.len() as u64).unwrap_or(0)]
}

fn chance(rng: &mut TestRng, percent: u64) -> bool {
    rng.next_u64() % 100 < percent
}

fn string(rng: &mut TestRng) -> String {
    match rng.next_u64() % 10 {
        0 => "A".repeat(70_000),
        1 => (0..rng.next_u64() % 40)
            .map(|_| {
                char::from_u32(u32::try_from(rng.next_u64() % 0x3000).unwrap_or(0)).unwrap_or('?')
            })
            .collect(),
        _ => pick(rng, STRINGS).to_owned(),
    }
}

fn signed(rng: &mut TestRng) -> i64 {
    pick(
        rng,
        &[
            0,
            1,
            -1,
            7,
            100,
            1_000_000,
            i64::from(i32::MIN),
            i64::from(i32::MAX),
            i64::MIN,
            i64::MAX,
            253_402_300_800,
        ],
    )
}

fn unsigned(rng: &mut TestRng) -> u64 {
    pick(rng, &[0, 1, 2, 7, 50, 1000, u64::from(u32::MAX), u64::MAX])
}

fn value(rng: &mut TestRng, field: &FieldDescriptor, depth: u32) -> Value {
    match field.kind() {
        Kind::String => Value::String(string(rng)),
        Kind::Bytes => Value::Bytes(string(rng).into_bytes().into()),
        Kind::Bool => Value::Bool(chance(rng, 50)),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            Value::I32(i32::try_from(signed(rng)).unwrap_or(i32::MIN))
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(signed(rng)),
        Kind::Uint32 | Kind::Fixed32 => {
            Value::U32(u32::try_from(unsigned(rng)).unwrap_or(u32::MAX))
        }
        Kind::Uint64 | Kind::Fixed64 => Value::U64(unsigned(rng)),
        Kind::Float => Value::F32(pick(
            rng,
            &[0.0, -0.0, 1.5, f32::NAN, f32::INFINITY, f32::MIN],
        )),
        Kind::Double => Value::F64(pick(
            rng,
            &[0.0, 52.52, -181.0, f64::NAN, f64::NEG_INFINITY, f64::MAX],
        )),
        Kind::Enum(e) => {
            let known: Vec<i32> = e.values().map(|v| v.number()).collect();
            Value::EnumNumber(if chance(rng, 80) {
                pick(rng, &known)
            } else {
                pick(rng, &[-1, 99, i32::MAX, i32::MIN])
            })
        }
        Kind::Message(m) => Value::Message(message(rng, &m, depth + 1)),
    }
}

fn message(rng: &mut TestRng, descriptor: &MessageDescriptor, depth: u32) -> DynamicMessage {
    let mut built = DynamicMessage::new(descriptor.clone());
    if depth > 3 {
        return built;
    }
    for field in descriptor.fields() {
        // Maps are left out: none of the requests has one.
        if field.is_map() || chance(rng, 25) {
            continue;
        }
        let value = if field.is_list() {
            let n = if chance(rng, 5) {
                200
            } else {
                rng.next_u64() % 4
            };
            Value::List((0..n).map(|_| value(rng, &field, depth)).collect())
        } else {
            value(rng, &field, depth)
        };
        built.set_field(&field, value);
    }
    built
}

#[tokio::test]
async fn every_request_of_every_service_with_arbitrary_values_is_answered_without_internal_errors()
{
    let mut p = Platform::start(2000);
    let cases: u64 = std::env::var("AFTERSALES_FUZZ_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(12);
    let pool = DescriptorPool::decode(aftersales_proto::FILE_DESCRIPTOR_SET).unwrap();
    let mut logs = Vec::new();
    for database in &p.databases {
        logs.push(sqlx::PgPool::connect(database).await.unwrap());
    }
    let channel = |url: String| {
        tonic::transport::Endpoint::from_shared(url)
            .unwrap()
            .connect_timeout(Duration::from_secs(2))
            .connect_lazy()
    };
    let services = [
        ("aftersales.warranty.v1.WarrantyService", p.warranty.url()),
        ("aftersales.repair.v1.RepairService", p.repair.url()),
        (
            "aftersales.logistics.v1.LogisticsService",
            p.logistics.url(),
        ),
        (
            "aftersales.notification.v1.NotificationService",
            p.notification.url(),
        ),
        ("aftersales.operations.v1.Operations", p.warranty.url()),
        ("aftersales.operations.v1.Operations", p.repair.url()),
    ];
    let mut rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]);
    let (mut calls, mut refused, mut methods) = (0u64, 0u64, 0u64);
    let mut codes = std::collections::BTreeMap::<String, u64>::new();
    let mut failures = Vec::new();
    for (name, url) in services {
        let service = pool
            .get_service_by_name(name)
            .unwrap_or_else(|| panic!("{name} is not in the descriptors"));
        let mut grpc = tonic::client::Grpc::new(channel(url.clone()));
        for method in service.methods() {
            assert!(!method.is_client_streaming(), "{}", method.full_name());
            let path: tonic::codegen::http::uri::PathAndQuery =
                format!("/{name}/{}", method.name()).parse().unwrap();
            methods += 1;
            for case in 0..cases {
                // A few bodies are not protobuf at all.
                let body = if case % 6 == 5 {
                    (0..1 + rng.next_u64() % 64)
                        .map(|_| rng.next_u64().to_le_bytes()[0])
                        .collect()
                } else {
                    message(&mut rng, &method.input(), 0).encode_to_vec()
                };
                let correlation = uuid::Uuid::new_v4();
                let mut request = tonic::Request::new(body);
                request.set_timeout(Duration::from_secs(10));
                request
                    .metadata_mut()
                    .insert("x-correlation-id", correlation.to_string().parse().unwrap());
                grpc.ready().await.unwrap();
                let answer = if method.is_server_streaming() {
                    match grpc.server_streaming(request, path.clone(), Raw).await {
                        Ok(stream) => {
                            let mut stream = stream.into_inner();
                            match tokio::time::timeout(Duration::from_millis(500), stream.message())
                                .await
                            {
                                Ok(Err(status)) => Err(status),
                                _ => Ok(()),
                            }
                        }
                        Err(status) => Err(status),
                    }
                } else {
                    grpc.unary(request, path.clone(), Raw).await.map(drop)
                };
                calls += 1;
                *codes
                    .entry(format!(
                        "{:?}",
                        answer.as_ref().err().map(tonic::Status::code)
                    ))
                    .or_default() += 1;
                let Err(status) = answer else { continue };
                refused += 1;
                let what = format!("{} case {case}", method.full_name());
                if matches!(
                    status.code(),
                    Code::Internal | Code::Unknown | Code::DataLoss | Code::Unimplemented
                ) {
                    failures.push(format!("{what}: {:?} {}", status.code(), status.message()));
                }
                for log in &logs {
                    let written: i64 =
                        sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE correlation_id = $1")
                            .bind(correlation)
                            .fetch_one(log)
                            .await
                            .unwrap();
                    if written > 0 {
                        failures.push(format!(
                            "{what}: refused with {:?} but wrote {written} events",
                            status.code()
                        ));
                    }
                }
            }
        }
    }
    for service in [
        &mut p.warranty,
        &mut p.repair,
        &mut p.logistics,
        &mut p.notification,
    ] {
        assert!(service.is_running(), "{} died while fuzzed", service.name);
    }
    eprintln!("fuzzed {methods} methods with {calls} calls: {codes:?}");
    assert!(
        calls > 100 && refused > 0,
        "{calls} calls, {refused} refused"
    );
    assert!(
        failures.is_empty(),
        "{} of {calls} calls:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
