//! `aftersales network`: where the network is thin and which centers are uneven.

use std::fmt::Write as _;

use aftersales_proto::common::CountryCode;
use aftersales_proto::repair as rpb;
use serde_json::json;

use crate::client::{Endpoints, failed, repair_client};

#[derive(Debug, clap::Subcommand)]
pub enum Network {
    /// Where a country's customers are, city by city.
    Areas {
        /// ISO country code, e.g. IN.
        #[arg(long)]
        country: String,
    },
    /// Where new service points would bring the most customers within reach.
    Plan {
        #[arg(long)]
        country: String,
        /// How many new points.
        #[arg(long = "new")]
        new_points: u32,
        /// How far customers travel to a service point, in km.
        #[arg(long, default_value_t = 50.0)]
        within_km: f64,
        /// A city to choose among (repeat it); every city of the country if none.
        #[arg(long = "candidate")]
        candidates: Vec<String>,
        /// Where to write the map (SVG); `network-plan-<country>.svg` if not given.
        #[arg(long)]
        map: Option<std::path::PathBuf>,
    },
    /// Each center's (or technician's) figures per week, far ones flagged.
    Quality {
        #[arg(long)]
        country: String,
        /// Weeks back from this one, 1 to 52.
        #[arg(long, default_value_t = 8)]
        weeks: u32,
        /// Per technician within each center.
        #[arg(long)]
        by_technician: bool,
        /// One center only.
        #[arg(long)]
        center: Option<String>,
        /// Every row as CSV (the window's rows have an empty week).
        #[arg(long)]
        csv: bool,
    },
}

fn country(code: &str) -> Result<Option<CountryCode>, String> {
    let value = code.trim().to_ascii_uppercase();
    if value.len() == 2 && value.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(Some(CountryCode { value }))
    } else {
        Err(format!(
            "--country: {code:?} is not an ISO country code such as IN"
        ))
    }
}

fn days(d: Option<f64>) -> String {
    d.map_or_else(|| "-".into(), |d| format!("{d:.1}"))
}

pub async fn network(command: Network, endpoints: &Endpoints) -> Result<(), String> {
    match command {
        Network::Areas { country: code } => {
            let request = rpb::ListDemandAreasRequest {
                country: country(&code)?,
            };
            let areas = repair_client(endpoints)
                .await?
                .list_demand_areas(request)
                .await
                .map_err(failed)?
                .into_inner();
            if endpoints.json {
                let rows: Vec<_> = areas
                    .areas
                    .iter()
                    .map(|a| {
                        json!({"area_id": a.area_id, "city": a.city, "customers": a.customers,
                            "devices": a.devices, "repairs": a.repairs, "mail_in_share": a.mail_in_share,
                            "mail_in_p50_days": a.mail_in_p50_days, "mail_in_p90_days": a.mail_in_p90_days,
                            "nearest_center_km": a.nearest_center_km, "nearest_center_id": a.nearest_center_id})
                    })
                    .collect();
                println!(
                    "{}",
                    json!({"country": areas.country, "areas": rows, "unplaced_customers": areas.unplaced_customers})
                );
                return Ok(());
            }
            println!(
                "{:<24} {:>9} {:>8} {:>8} {:>7} {:>9} {:>9} {:>10}",
                "city",
                "customers",
                "devices",
                "repairs",
                "mail-in",
                "p50 days",
                "p90 days",
                "center km"
            );
            for a in &areas.areas {
                println!(
                    "{:<24} {:>9} {:>8} {:>8} {:>6.0}% {:>9} {:>9} {:>10}",
                    a.city,
                    a.customers,
                    a.devices,
                    a.repairs,
                    a.mail_in_share * 100.0,
                    days(a.mail_in_p50_days),
                    days(a.mail_in_p90_days),
                    a.nearest_center_km
                        .map_or_else(|| "-".into(), |km| format!("{km:.0}")),
                );
            }
            if areas.unplaced_customers > 0 {
                println!("{} customers with no known city", areas.unplaced_customers);
            }
            Ok(())
        }
        Network::Plan {
            country: code,
            new_points,
            within_km,
            candidates,
            map,
        } => {
            let country = country(&code)?;
            if new_points == 0 {
                return Err("--new: at least 1".into());
            }
            if !within_km.is_finite() || within_km <= 0.0 {
                return Err("--within-km: a positive number of kilometres".into());
            }
            let code = country
                .as_ref()
                .map(|c| c.value.clone())
                .unwrap_or_default();
            let plan = repair_client(endpoints)
                .await?
                .plan_network(rpb::PlanNetworkRequest {
                    country,
                    new_points,
                    within_km: Some(within_km),
                    candidates,
                })
                .await
                .map_err(failed)?
                .into_inner();
            let path = map.unwrap_or_else(|| format!("network-plan-{code}.svg").into());
            std::fs::write(&path, &plan.map_svg)
                .map_err(|e| format!("--map {}: {e}", path.display()))?;
            let figures = |f: Option<rpb::PlanFigures>| {
                let f = f.unwrap_or_default();
                json!({"customers": f.customers, "beyond_reach": f.beyond_reach, "expected_p90_days": f.expected_p90_days})
            };
            if endpoints.json {
                let choices: Vec<_> = plan
                    .choices
                    .iter()
                    .map(|c| json!({"city": c.city, "area_id": c.area_id, "before": figures(c.before), "after": figures(c.after), "areas_reached": c.areas_reached, "why": c.why}))
                    .collect();
                println!(
                    "{}",
                    json!({"country": plan.country, "within_km": plan.within_km, "before": figures(plan.before), "after": figures(plan.after), "choices": choices, "method": plan.method, "map": path.display().to_string()})
                );
                return Ok(());
            }
            let before = plan.before.unwrap_or_default();
            let after = plan.after.unwrap_or_default();
            println!(
                "{}: {} of {} customers beyond {} km of a service point today; {} after {} new point(s)",
                plan.country,
                before.beyond_reach,
                before.customers,
                plan.within_km,
                after.beyond_reach,
                plan.choices.len()
            );
            println!(
                "expected turnaround p90 {:.1} → {:.1} days",
                before.expected_p90_days, after.expected_p90_days
            );
            for (n, c) in plan.choices.iter().enumerate() {
                let (b, a) = (c.before.unwrap_or_default(), c.after.unwrap_or_default());
                println!(
                    "{}. {:<20} beyond reach {} → {}   p90 {:.1} → {:.1} days",
                    n + 1,
                    c.city,
                    b.beyond_reach,
                    a.beyond_reach,
                    b.expected_p90_days,
                    a.expected_p90_days
                );
                println!("   {}", c.why);
            }
            println!("method: {}", plan.method);
            println!("map: {}", path.display());
            Ok(())
        }
        Network::Quality {
            country: code,
            weeks,
            by_technician,
            center,
            csv,
        } => {
            let country = country(&code)?;
            if !(1..=52).contains(&weeks) {
                return Err("--weeks: 1 to 52".into());
            }
            let quality = repair_client(endpoints)
                .await?
                .get_network_quality(rpb::GetNetworkQualityRequest {
                    country,
                    weeks,
                    by_technician,
                    service_center_id: center.unwrap_or_default(),
                })
                .await
                .map_err(failed)?
                .into_inner();
            if csv {
                print!("{}", quality_csv(&quality));
            } else if endpoints.json {
                let rows = |rows: &[rpb::QualityRow]| -> Vec<serde_json::Value> {
                    rows.iter().map(row_json).collect()
                };
                println!(
                    "{}",
                    json!({"country": quality.country, "from_week": quality.from_week, "summary": rows(&quality.summary), "weeks": rows(&quality.weeks)})
                );
            } else {
                print!("{}", quality_table(&quality));
            }
            Ok(())
        }
    }
}

const COLUMNS: [&str; 13] = [
    "center",
    "technician",
    "week",
    "orders",
    "turnaround_p50_h",
    "turnaround_p90_h",
    "repaired",
    "first_time_fix",
    "qc_failures",
    "quotes",
    "declined",
    "slow_in",
    "slow_out",
];

fn cells(row: &rpb::QualityRow) -> [String; 13] {
    let f = row.figures.clone().unwrap_or_default();
    let opt =
        |v: Option<f64>, scale: f64| v.map_or_else(String::new, |v| format!("{:.1}", v * scale));
    [
        if row.service_center_id.is_empty() {
            "mail-in".to_owned()
        } else {
            row.service_center_id.clone()
        },
        row.technician.clone(),
        row.week.clone(),
        f.orders.to_string(),
        opt(f.turnaround_p50_hours, 1.0),
        opt(f.turnaround_p90_hours, 1.0),
        f.repaired.to_string(),
        opt(f.first_time_fix_rate, 100.0),
        opt(f.qc_failure_rate, 100.0),
        f.quotes_issued.to_string(),
        f.quotes_declined.to_string(),
        f.parcels_slow_in.to_string(),
        f.parcels_slow_out.to_string(),
    ]
}

fn row_json(row: &rpb::QualityRow) -> serde_json::Value {
    let mut value: serde_json::Map<String, serde_json::Value> = COLUMNS
        .iter()
        .zip(cells(row))
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect();
    value.insert(
        "flags".into(),
        json!(row.flags.iter().map(|f| json!({"figure": f.figure, "value": f.value, "network_median": f.network_median, "why": f.why})).collect::<Vec<_>>()),
    );
    value.into()
}

/// Every row, the window's first, as RFC 4180 CSV; rates in percent.
fn quality_csv(quality: &rpb::NetworkQuality) -> String {
    let mut out = COLUMNS.join(",");
    out.push_str(",flags\n");
    for row in quality.summary.iter().chain(&quality.weeks) {
        let flags: Vec<&str> = row.flags.iter().map(|f| f.why.as_str()).collect();
        let mut fields: Vec<String> = cells(row).into_iter().collect();
        fields.push(flags.join("; "));
        let quoted: Vec<String> = fields
            .iter()
            .map(|f| {
                if f.contains([',', '"', '\n']) {
                    format!("\"{}\"", f.replace('"', "\"\""))
                } else {
                    f.clone()
                }
            })
            .collect();
        out.push_str(&quoted.join(","));
        out.push('\n');
    }
    out
}

fn quality_table(quality: &rpb::NetworkQuality) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} since the week of {}",
        quality.country, quality.from_week
    );
    let header = |out: &mut String| {
        let _ = writeln!(
            out,
            "{:<20} {:<12} {:<10} {:>6} {:>8} {:>8} {:>8} {:>6} {:>6} {:>7} {:>7} {:>7}",
            "center",
            "technician",
            "week",
            "orders",
            "p50 h",
            "p90 h",
            "1st fix",
            "QC ✗",
            "quotes",
            "decl.",
            "slow in",
            "slow out"
        );
    };
    let line = |out: &mut String, row: &rpb::QualityRow| {
        let c = cells(row);
        let pct = |s: &str| {
            if s.is_empty() {
                "-".to_owned()
            } else {
                format!("{s}%")
            }
        };
        let or_dash = |s: &str| {
            if s.is_empty() {
                "-".to_owned()
            } else {
                s.to_owned()
            }
        };
        let _ = writeln!(
            out,
            "{:<20} {:<12} {:<10} {:>6} {:>8} {:>8} {:>8} {:>6} {:>6} {:>7} {:>7} {:>7}",
            c[0],
            c[1],
            or_dash(&c[2]),
            c[3],
            or_dash(&c[4]),
            or_dash(&c[5]),
            pct(&c[7]),
            pct(&c[8]),
            c[9],
            c[10],
            c[11],
            c[12]
        );
        for flag in &row.flags {
            let _ = writeln!(out, "  ⚑ {}", flag.why);
        }
    };
    let _ = writeln!(out, "\nthe whole window");
    header(&mut out);
    for row in &quality.summary {
        line(&mut out, row);
    }
    let _ = writeln!(out, "\nby week");
    header(&mut out);
    for row in &quality.weeks {
        line(&mut out, row);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_it_and_keeps_every_column() {
        let row = rpb::QualityRow {
            service_center_id: "sc-1".into(),
            technician: "Lee, \"Sam\"".into(),
            week: "2026-11-30".into(),
            figures: Some(rpb::QualityFigures {
                orders: 4,
                first_time_fix_rate: Some(0.5),
                qc_failure_rate: None,
                ..Default::default()
            }),
            flags: vec![rpb::QualityFlag {
                why: "QC failures 40% against a network median of 10%".into(),
                ..Default::default()
            }],
        };
        let csv = quality_csv(&rpb::NetworkQuality {
            summary: Vec::new(),
            weeks: vec![row],
            ..Default::default()
        });
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0].split(',').count(), COLUMNS.len() + 1);
        assert_eq!(
            lines[1],
            "sc-1,\"Lee, \"\"Sam\"\"\",2026-11-30,4,,,0,50.0,,0,0,0,0,QC failures 40% against a network median of 10%"
        );
    }

    #[test]
    fn bad_input_is_refused_before_any_call() {
        assert!(country("india").is_err());
        assert!(country("I1").is_err());
        assert_eq!(
            country(" in ").ok().flatten().map(|c| c.value),
            Some("IN".into())
        );
    }
}
