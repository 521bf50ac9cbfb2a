//! One trace across every hop: an OTLP receiver started here collects the spans
//! the four processes export while a customer opens a mail-in repair. The spans
//! of all four services share the trace of the `OpenRepair` call, and the
//! consumers' spans on the far side of NATS are children of the span that
//! appended the event.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use aftersales_proto::logistics as lpb;
use aftersales_testkit::eventually;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;

use crate::journey::{mail_in, register, wants_email};
use crate::{Platform, imei};

/// A span as received: its service, name, ids and parent.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    name: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent_span_id: Vec<u8>,
}

#[derive(Debug, Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<Received>>>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap();
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref()?.value.as_ref())
                .map(|v| match v {
                    Value::StringValue(s) => s.clone(),
                    other => format!("{other:?}"),
                })
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    spans.push(Received {
                        service: service.clone(),
                        name: span.name,
                        trace_id: span.trace_id,
                        span_id: span.span_id,
                        parent_span_id: span.parent_span_id,
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customers_repair_is_one_trace_through_all_four_services() {
    let receiver = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp = listener.local_addr().unwrap();
    let service = receiver.clone();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(service))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await
    });
    let p = Platform::start_with(
        30,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{otlp}")),
            ("OTEL_BSP_SCHEDULE_DELAY", "200".to_owned()),
        ],
    );
    let mut c = p.clients().await;
    let device = imei(500);
    wants_email(&mut c, "cust-trace").await;
    register(&mut c, &device, "cust-trace", 60).await;
    let order = c
        .repair
        .open_repair(mail_in(&device, "cust-trace"))
        .await
        .unwrap()
        .into_inner()
        .order_id;
    // Logistics makes the parcel, notification tells the customer.
    let shipments = eventually(
        || {
            let mut l = c.logistics.clone();
            let order = order.clone();
            async move {
                l.list_shipments_by_repair(lpb::ListShipmentsByRepairRequest {
                    repair_order_id: order,
                })
                .await
                .map(|r| r.into_inner().shipments.len())
                .unwrap_or(0)
            }
        },
        |n| *n >= 1,
    )
    .await;
    assert!(shipments >= 1);

    let open = "aftersales.repair.v1.RepairService/OpenRepair";
    // Spans arrive in batches from four processes: wait for the last hop's.
    let spans = eventually(
        || async { receiver.spans.lock().unwrap().clone() },
        |spans| {
            let Some(root) = spans.iter().find(|s| s.name == open) else {
                return false;
            };
            let in_trace = || spans.iter().filter(|s| s.trace_id == root.trace_id);
            let services: BTreeSet<&str> = in_trace().map(|s| s.service.as_str()).collect();
            let label_told = in_trace()
                .any(|s| s.service == "aftersales-notification" && s.name.contains(".logistics."));
            services.len() == 4 && label_told
        },
    )
    .await;
    let root = spans
        .iter()
        .find(|s| s.name == open)
        .unwrap_or_else(|| panic!("no {open} span among {spans:#?}"));
    let in_trace: Vec<&Received> = spans
        .iter()
        .filter(|s| s.trace_id == root.trace_id)
        .collect();
    let services: BTreeSet<&str> = in_trace.iter().map(|s| s.service.as_str()).collect();
    assert_eq!(
        services,
        BTreeSet::from([
            "aftersales-logistics",
            "aftersales-notification",
            "aftersales-repair",
            "aftersales-warranty",
        ]),
        "{in_trace:#?}"
    );
    // Warranty's CheckCoverage is a child of the OpenRepair call (gRPC metadata).
    let coverage = in_trace
        .iter()
        .find(|s| s.service == "aftersales-warranty" && s.name.ends_with("/CheckCoverage"))
        .unwrap();
    assert_eq!(coverage.parent_span_id, root.span_id, "{coverage:?}");
    // Logistics handled RepairOrderOpened on the far side of NATS, as a child of
    // the span that appended it.
    let consumed = in_trace
        .iter()
        .find(|s| s.service == "aftersales-logistics" && s.name.starts_with("process "))
        .unwrap_or_else(|| panic!("{in_trace:#?}"));
    assert_eq!(consumed.parent_span_id, root.span_id, "{consumed:?}");
    // And notification heard of the label logistics issued in that consumer span:
    // two NATS hops, one trace.
    assert!(
        in_trace
            .iter()
            .any(|s| s.service == "aftersales-notification"
                && s.name.contains(".logistics.")
                && s.parent_span_id == consumed.span_id),
        "{in_trace:#?}"
    );
}
