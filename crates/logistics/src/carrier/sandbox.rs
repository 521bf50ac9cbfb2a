//! The built-in sandbox carrier: labels as SVG documents with a Code 128 barcode
//! of the tracking number, tracking numbers derived from the shipment id, and
//! scripted scan sequences to play on a parcel.

use std::fmt::Write as _;

use sha2::{Digest as _, Sha256};

use super::{Carrier, CarrierError, CarrierFuture};
use crate::domain::shipment::{Address, Label, ShipmentInfo};
use crate::domain::tracking::Status;

pub const NAME: &str = "sandbox";
pub const LABEL_CONTENT_TYPE: &str = "image/svg+xml";

#[derive(Debug, Clone)]
pub struct SandboxCarrier {
    /// Digits in a tracking number. Real carriers recycle numbers from a finite
    /// space; a small space shows it happening.
    tracking_digits: u32,
}

impl SandboxCarrier {
    /// `tracking_digits` between 1 and 18.
    pub fn new(tracking_digits: u32) -> Result<Self, String> {
        if !(1..=18).contains(&tracking_digits) {
            return Err(format!(
                "sandbox tracking digits must be 1 to 18, not {tracking_digits}"
            ));
        }
        Ok(Self { tracking_digits })
    }

    pub fn tracking_number(&self, shipment_id: &str) -> String {
        let digest = Sha256::digest(shipment_id.as_bytes());
        let mut head = [0u8; 8];
        head.copy_from_slice(&digest[..8]);
        let number = u64::from_be_bytes(head) % 10u64.pow(self.tracking_digits);
        format!("SB{number:0width$}", width = self.tracking_digits as usize)
    }
}

impl Default for SandboxCarrier {
    fn default() -> Self {
        Self {
            tracking_digits: 12,
        }
    }
}

impl Carrier for SandboxCarrier {
    fn name(&self) -> &str {
        NAME
    }

    fn issue_label<'a>(&'a self, shipment: &'a ShipmentInfo) -> CarrierFuture<'a, Label> {
        Box::pin(async move {
            let tracking_number = self.tracking_number(&shipment.shipment_id);
            let document = render_label(shipment, &tracking_number)?;
            Ok(Label {
                barcode: tracking_number.clone(),
                tracking_number,
                content_type: LABEL_CONTENT_TYPE.to_owned(),
                document,
            })
        })
    }
}

fn escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&apos;".to_owned(),
            other => other.to_string(),
        })
        .collect()
}

fn address_lines(address: &Address) -> Vec<String> {
    let mut lines = vec![address.recipient.clone()];
    lines.extend(address.lines.iter().cloned());
    lines.push(
        [address.postal_code.as_str(), address.city.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" "),
    );
    lines.push(address.country.clone());
    lines
}

/// A 100 × 150 mm shipping label: sender, recipient, and the tracking number as
/// a Code 128 barcode (one `rect` per bar, 0.4 mm a module).
pub fn render_label(
    shipment: &ShipmentInfo,
    tracking_number: &str,
) -> Result<String, CarrierError> {
    let code = code128::Code128::encode_str(tracking_number)
        .ok_or_else(|| CarrierError::Refused("tracking number is not Code 128 text".into()))?;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="100mm" height="150mm" viewBox="0 0 100 150">
<title>{carrier} {tracking}</title>
<rect x="0" y="0" width="100" height="150" fill="white"/>
<text x="4" y="8" font-size="5" font-family="sans-serif">{carrier} · {direction}</text>
"#,
        carrier = escape(&shipment.carrier),
        tracking = escape(tracking_number),
        direction = match shipment.direction {
            crate::domain::shipment::Direction::Inbound => "INBOUND",
            crate::domain::shipment::Direction::Outbound => "OUTBOUND",
        },
    );
    let mut y = 16.0;
    for (heading, address) in [("FROM", &shipment.from), ("TO", &shipment.to)] {
        let _ = writeln!(
            svg,
            r#"<text x="4" y="{y}" font-size="3" font-family="sans-serif">{heading}</text>"#
        );
        y += 5.0;
        for line in address_lines(address) {
            let _ = writeln!(
                svg,
                r#"<text x="4" y="{y}" font-size="4" font-family="sans-serif">{}</text>"#,
                escape(&line)
            );
            y += 5.0;
        }
        y += 4.0;
    }
    let module = 80.0 / code.len() as f64;
    let _ = writeln!(svg, r#"<g id="barcode" data-modules="{}">"#, code.len());
    for bar in code.bar_coordinates() {
        let _ = writeln!(
            svg,
            r#"<rect x="{:.4}" y="112" width="{:.4}" height="22" fill="black" data-x="{}" data-w="{}"/>"#,
            10.0 + f64::from(bar.x) * module - 10.0 * module,
            f64::from(bar.width) * module,
            bar.x,
            bar.width,
        );
    }
    let _ = write!(
        svg,
        r#"</g>
<text x="50" y="142" font-size="5" text-anchor="middle" font-family="monospace">{}</text>
</svg>
"#,
        escape(tracking_number)
    );
    Ok(svg)
}

/// A scan the sandbox will report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptedScan {
    pub status: Status,
    pub location: &'static str,
    pub description: &'static str,
}

/// The scripted sequences, by name.
pub fn script(name: &str) -> Option<Vec<ScriptedScan>> {
    let s = |status, location, description| ScriptedScan {
        status,
        location,
        description,
    };
    let accepted = s(
        Status::PreTransit,
        "Drop-off point",
        "Label scanned at drop-off",
    );
    let picked = s(Status::InTransit, "Origin hub", "Picked up");
    let sorted = s(Status::InTransit, "Sorting center", "Sorted");
    let out = s(
        Status::OutForDelivery,
        "Destination depot",
        "Out for delivery",
    );
    let delivered = s(Status::Delivered, "Destination", "Delivered, signed for");
    Some(match name {
        "" | "delivered" => vec![accepted, picked, sorted, out, delivered],
        "exception_then_delivered" => vec![
            accepted,
            picked,
            s(
                Status::Exception,
                "Sorting center",
                "Damaged label, relabelled",
            ),
            sorted,
            out,
            delivered,
        ],
        "returned" => vec![
            accepted,
            picked,
            s(Status::Exception, "Destination depot", "Address not found"),
            s(Status::ReturnedToSender, "Origin", "Returned to sender"),
        ],
        "lost" => vec![accepted, picked],
        _ => return None,
    })
}

/// The scripts there are.
pub const SCRIPTS: [&str; 4] = ["delivered", "exception_then_delivered", "returned", "lost"];

/// The carrier event id of the `step`th scan of a script on a tracking number:
/// playing the same script twice reports the same events (duplicates).
pub fn scripted_event_id(tracking_number: &str, script: &str, step: usize) -> String {
    format!("{tracking_number}-{script}-{step}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::shipment::{Direction, Parcel, Purpose};

    fn shipment(id: &str) -> ShipmentInfo {
        let address = |name: &str| Address {
            recipient: name.into(),
            lines: vec!["1 <Main> & Street".into()],
            city: "Berlin".into(),
            postal_code: "10115".into(),
            country: "DE".into(),
            ..Address::default()
        };
        ShipmentInfo {
            customer_id: None,
            shipment_id: id.into(),
            direction: Direction::Inbound,
            purpose: Purpose::RepairOrder("r-1".into()),
            from: address("Ana"),
            to: address("Depot"),
            parcel: Parcel {
                weight_grams: 300,
                length_mm: 200,
                width_mm: 100,
                height_mm: 50,
            },
            carrier: NAME.into(),
            depot: None,
        }
    }

    /// Reads the barcode back from the label's bars.
    pub(crate) fn decode_label(svg: &str) -> String {
        let mut bars: Vec<(u32, u8)> = Vec::new();
        for part in svg.split("data-x=\"").skip(1) {
            let x: u32 = part
                .split('"')
                .next()
                .and_then(|v| v.parse().ok())
                .expect("x");
            let w: u8 = part
                .split("data-w=\"")
                .nth(1)
                .and_then(|p| p.split('"').next())
                .and_then(|v| v.parse().ok())
                .expect("w");
            bars.push((x, w));
        }
        let decoded: Vec<code128::Bar> = bars
            .iter()
            .enumerate()
            .map(|(i, &(x, width))| code128::Bar {
                width,
                space: bars.get(i + 1).map_or(0, |&(next, _)| {
                    u8::try_from(next - x - u32::from(width)).expect("space")
                }),
            })
            .collect();
        code128::decode_str(&decoded).expect("a valid barcode")
    }

    #[tokio::test]
    async fn the_label_barcode_reads_back_as_the_tracking_number() {
        let carrier = SandboxCarrier::default();
        let label = carrier.issue_label(&shipment("s-1")).await.expect("label");
        assert_eq!(label.tracking_number, carrier.tracking_number("s-1"));
        assert_eq!(label.tracking_number.len(), 14);
        assert!(label.document.starts_with("<?xml"));
        assert!(
            label.document.contains("1 &lt;Main&gt; &amp; Street"),
            "text is escaped"
        );
        assert_eq!(decode_label(&label.document), label.tracking_number);
    }

    #[tokio::test]
    async fn the_same_shipment_gets_the_same_label() {
        let carrier = SandboxCarrier::default();
        let a = carrier.issue_label(&shipment("s-9")).await.expect("label");
        let b = carrier.issue_label(&shipment("s-9")).await.expect("label");
        assert_eq!(a, b);
    }

    #[test]
    fn a_small_number_space_recycles_numbers() {
        let carrier = SandboxCarrier::new(1).expect("valid");
        let numbers: std::collections::BTreeSet<_> = (0..11)
            .map(|i| carrier.tracking_number(&format!("s-{i}")))
            .collect();
        assert!(numbers.len() <= 10);
        assert!(SandboxCarrier::new(0).is_err());
        assert!(SandboxCarrier::new(19).is_err());
    }

    #[test]
    fn every_script_ends_somewhere_sensible() {
        for name in SCRIPTS {
            let scans = script(name).expect("known script");
            assert_eq!(scans[0].status, Status::PreTransit, "{name}");
        }
        assert!(script("teleport").is_none());
    }
}
