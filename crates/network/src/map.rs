//! A plan as a picture: the country's demand, its service points and the chosen
//! cities, each with its reach, in SVG (equirectangular, scaled by the cosine of
//! the middle latitude so the country keeps its shape).

use std::fmt::Write as _;

use crate::gazetteer::Point;
use crate::plan::{Area, Plan, ServicePoint};

const WIDTH: f64 = 800.0;
const MARGIN: f64 = 40.0;

/// The SVG document for `plan` over `areas` and `existing`.
pub fn svg(
    title: &str,
    areas: &[Area],
    existing: &[ServicePoint],
    plan: &Plan,
    within_km: f64,
) -> String {
    let points = areas
        .iter()
        .map(|a| a.point)
        .chain(existing.iter().map(|e| e.point))
        .chain(plan.choices.iter().map(|c| c.candidate.point));
    let frame = Frame::around(points);
    let height = frame.height();
    let mut out = String::new();
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height:.0}" width="{WIDTH}" height="{height:.0}" font-family="sans-serif" font-size="12" role="img" aria-labelledby="t">"##
    );
    let _ = write!(
        out,
        r##"<title id="t">{}</title><rect width="100%" height="100%" fill="#f7f7f4"/>"##,
        escape(title)
    );
    let reach = frame.km(within_km);
    for s in existing {
        let (x, y) = frame.xy(s.point);
        let _ = write!(
            out,
            r##"<circle cx="{x:.1}" cy="{y:.1}" r="{reach:.1}" fill="#1f77b4" fill-opacity="0.08" stroke="#1f77b4" stroke-opacity="0.3"/>"##
        );
    }
    for c in &plan.choices {
        let (x, y) = frame.xy(c.candidate.point);
        let _ = write!(
            out,
            r##"<circle cx="{x:.1}" cy="{y:.1}" r="{reach:.1}" fill="#e6550d" fill-opacity="0.10" stroke="#e6550d" stroke-opacity="0.5" stroke-dasharray="4 3"/>"##
        );
    }
    let most = areas.iter().map(|a| a.customers).max().unwrap_or(1).max(1);
    for a in areas.iter().filter(|a| a.customers > 0) {
        let (x, y) = frame.xy(a.point);
        let r = 1.5 + 8.0 * (ratio(a.customers, most)).sqrt();
        let _ = write!(
            out,
            r##"<circle cx="{x:.1}" cy="{y:.1}" r="{r:.1}" fill="#555" fill-opacity="0.45"><title>{}: {} customers</title></circle>"##,
            escape(&a.name),
            a.customers
        );
    }
    for s in existing {
        let (x, y) = frame.xy(s.point);
        let _ = write!(
            out,
            r##"<rect x="{:.1}" y="{:.1}" width="10" height="10" fill="#1f77b4"><title>{}</title></rect>"##,
            x - 5.0,
            y - 5.0,
            escape(&s.name)
        );
        let _ = write!(
            out,
            r##"<text x="{:.1}" y="{:.1}" fill="#1f77b4">{}</text>"##,
            x + 8.0,
            y + 4.0,
            escape(&s.name)
        );
    }
    for (n, c) in plan.choices.iter().enumerate() {
        let (x, y) = frame.xy(c.candidate.point);
        let _ = write!(
            out,
            r##"<path d="M{x:.1} {:.1} L{:.1} {:.1} L{:.1} {:.1} Z" fill="#e6550d"><title>{}. {}: {}</title></path>"##,
            y - 8.0,
            x + 7.0,
            y + 5.0,
            x - 7.0,
            y + 5.0,
            n + 1,
            escape(&c.candidate.name),
            escape(&c.why)
        );
        let _ = write!(
            out,
            r##"<text x="{:.1}" y="{:.1}" fill="#e6550d" font-weight="bold">{}. {}</text>"##,
            x + 9.0,
            y + 4.0,
            n + 1,
            escape(&c.candidate.name)
        );
    }
    let legend_y = height - 14.0;
    let _ = write!(
        out,
        r##"<text x="{MARGIN}" y="{legend_y:.0}" fill="#333">■ service points   ▲ chosen   ● customers by city   circles: {within_km} km   customers beyond reach {} → {}</text></svg>"##,
        plan.before.beyond_reach, plan.after.beyond_reach
    );
    out
}

#[allow(clippy::cast_precision_loss)]
fn ratio(part: u64, whole: u64) -> f64 {
    part as f64 / whole as f64
}

/// From degrees to the picture's pixels.
struct Frame {
    west: f64,
    north: f64,
    scale: f64,
    squeeze: f64,
    south: f64,
}

impl Frame {
    fn around(points: impl Iterator<Item = Point>) -> Self {
        let (mut west, mut east, mut south, mut north) = (180.0f64, -180.0f64, 90.0f64, -90.0f64);
        for p in points {
            west = west.min(p.longitude);
            east = east.max(p.longitude);
            south = south.min(p.latitude);
            north = north.max(p.latitude);
        }
        if west > east {
            (west, east, south, north) = (-1.0, 1.0, -1.0, 1.0);
        }
        let squeeze = ((south + north) / 2.0).to_radians().cos().max(0.1);
        let span = ((east - west) * squeeze).max(north - south).max(0.5);
        Self {
            west,
            north,
            scale: (WIDTH - 2.0 * MARGIN) / span,
            squeeze,
            south,
        }
    }

    fn xy(&self, p: Point) -> (f64, f64) {
        (
            MARGIN + (p.longitude - self.west) * self.squeeze * self.scale,
            MARGIN + (self.north - p.latitude) * self.scale,
        )
    }

    fn height(&self) -> f64 {
        (self.north - self.south) * self.scale + 2.0 * MARGIN + 20.0
    }

    /// A distance on the ground as pixels (a degree of latitude is 111.2 km).
    fn km(&self, km: f64) -> f64 {
        km / 111.2 * self.scale
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Candidate, Planner};

    #[test]
    fn the_picture_shows_every_point_and_escapes_names() {
        let areas = vec![
            Area {
                id: 1,
                name: "A<&>".into(),
                point: Point::new(10.0, 70.0),
                customers: 10,
                mail_in_p90_days: None,
            },
            Area {
                id: 2,
                name: "B".into(),
                point: Point::new(20.0, 80.0),
                customers: 5,
                mail_in_p90_days: None,
            },
        ];
        let existing = [ServicePoint {
            name: "Center".into(),
            point: Point::new(10.0, 70.0),
        }];
        let candidates = [Candidate {
            id: 2,
            name: "B".into(),
            point: Point::new(20.0, 80.0),
        }];
        let planner = Planner {
            within_km: 50.0,
            new_points: 1,
            walk_in_p90_days: 3.0,
            mail_in_p90_days: 8.0,
        };
        let plan = planner
            .plan(&areas, &existing, &candidates)
            .expect("a plan");
        let svg = svg("Plan for IN", &areas, &existing, &plan, 50.0);
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.ends_with("</svg>"));
        assert!(svg.contains("A&lt;&amp;&gt;: 10 customers"));
        assert!(svg.contains("1. B"));
        assert!(svg.contains("customers beyond reach 5 → 0"));
        assert!(!svg.contains("NaN"));
        // Two reach circles, two customer dots.
        assert_eq!(svg.matches("<circle").count(), 4);
    }
}
