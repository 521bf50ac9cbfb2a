//! The carrier webhook over real HTTP: signed scans are recorded, everything else
//! is refused with the right status and records nothing.

use std::net::SocketAddr;

use aftersales_logistics::webhook::{SIGNATURE_HEADER, sign};
use aftersales_proto::logistics as pb;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::{SECRET, Server, new_shipment, now};

/// One HTTP/1.1 request; returns the status code and body.
async fn post(addr: SocketAddr, path: &str, signature: Option<&str>, body: &[u8]) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(signature) = signature {
        head.push_str(&format!("{SIGNATURE_HEADER}: {signature}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    // The server may answer (413) and close before reading all of an oversized
    // body: a failed write is fine, the answer is what counts.
    let _ = stream.write_all(body).await;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"));
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (code, body)
}

fn scan_json(tracking_number: &str, id: &str, status: &str) -> Vec<u8> {
    serde_json::json!({
        "carrier_event_id": id,
        "tracking_number": tracking_number,
        "status": status,
        "location": "Leipzig hub",
        "description": "Sorted",
        "occurred_at": now().to_rfc3339(),
    })
    .to_string()
    .into_bytes()
}

const PATH: &str = "/v1/carriers/sandbox/events";

#[tokio::test]
async fn signed_scans_are_recorded_and_bad_requests_change_nothing() {
    let mut s = Server::start().await;
    let addr = s
        .running
        .endpoint(aftersales_logistics::server::WEBHOOK)
        .unwrap();
    let created = s
        .client
        .create_shipment(new_shipment("order-hook"))
        .await
        .unwrap()
        .into_inner();
    let tn = created.tracking_number.clone();
    let secret = SECRET.as_bytes();
    let t = now().timestamp();

    let body = scan_json(&tn, "w1", "in_transit");
    let (code, answer) = post(addr, PATH, Some(&sign(secret, "sandbox", t, &body)), &body).await;
    assert_eq!(code, 202, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["shipment_id"], created.shipment_id.as_str());
    assert_eq!(answer["duplicate"], false);
    assert_eq!(answer["status"], "in_transit");
    // The same carrier event again: accepted, a duplicate.
    let (code, answer) = post(addr, PATH, Some(&sign(secret, "sandbox", t, &body)), &body).await;
    assert_eq!(code, 202);
    assert!(answer.contains("\"duplicate\":true"), "{answer}");

    let before = s.events().await;
    let next = scan_json(&tn, "w2", "delivered");
    let stale = t - 3600;
    let oversized = {
        let mut big = scan_json(&tn, "w3", "delivered");
        big.truncate(big.len() - 1);
        big.extend(format!(",\"padding\":\"{}\"}}", "x".repeat(70 * 1024)).into_bytes());
        big
    };
    let malformed = b"{\"carrier_event_id\": \"w4\", ".to_vec();
    let unknown_tn = scan_json("SB999999999999", "w5", "delivered");
    let bad_status = scan_json(&tn, "w6", "teleported");
    let cases: Vec<(&str, Option<String>, Vec<u8>, u16)> = vec![
        ("no signature", None, next.clone(), 401),
        (
            "wrong secret",
            Some(sign(b"not-the-secret-at-all", "sandbox", t, &next)),
            next.clone(),
            401,
        ),
        (
            "signed another body",
            Some(sign(secret, "sandbox", t, &body)),
            next.clone(),
            401,
        ),
        (
            "expired timestamp",
            Some(sign(secret, "sandbox", stale, &next)),
            next.clone(),
            401,
        ),
        (
            "garbage header",
            Some("v1=nothex".into()),
            next.clone(),
            401,
        ),
        (
            "malformed JSON",
            Some(sign(secret, "sandbox", t, &malformed)),
            malformed.clone(),
            400,
        ),
        (
            "unknown tracking number",
            Some(sign(secret, "sandbox", t, &unknown_tn)),
            unknown_tn.clone(),
            404,
        ),
        (
            "unknown status",
            Some(sign(secret, "sandbox", t, &bad_status)),
            bad_status.clone(),
            400,
        ),
        (
            "oversized body",
            Some(sign(secret, "sandbox", t, &oversized)),
            oversized.clone(),
            413,
        ),
    ];
    for (what, signature, body, expected) in cases {
        let (code, answer) = post(addr, PATH, signature.as_deref(), &body).await;
        assert_eq!(code, expected, "{what}: {answer}");
        if expected != 413 {
            assert!(
                answer.contains("\"error\""),
                "{what} explains itself: {answer}"
            );
        }
    }
    // Sandbox's secret speaking for a carrier that has none, or signing as it.
    for signed_as in ["sandbox", "dhl"] {
        let (code, _) = post(
            addr,
            "/v1/carriers/dhl/events",
            Some(&sign(secret, signed_as, t, &next)),
            &next,
        )
        .await;
        assert_eq!(code, 401, "a carrier signs for itself only");
    }
    assert_eq!(s.events().await, before, "nothing refused was recorded");

    // And the good one still goes through.
    let (code, _) = post(addr, PATH, Some(&sign(secret, "sandbox", t, &next)), &next).await;
    assert_eq!(code, 202);
    let shipment = s
        .client
        .get_shipment(pb::ShipmentRef {
            shipment_id: created.shipment_id,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(shipment.status, i32::from(pb::TrackingStatus::Delivered));
    assert_eq!(shipment.scans, 2);
    s.running.stop().await.unwrap();
}

#[tokio::test]
async fn a_short_secret_or_zero_window_stops_the_server_at_start() {
    let mut short = crate::config("sqlite::memory:".into());
    short.webhook_secrets = Some("sandbox=short".into());
    let error = aftersales_logistics::server::start(short)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("at least 16 bytes"), "{error}");
    let mut window = crate::config("sqlite::memory:".into());
    window.webhook_replay_window_seconds = 0;
    let error = aftersales_logistics::server::start(window)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("REPLAY_WINDOW"), "{error}");
}
