//! Where the service network is thin, and which centers are uneven.
//!
//! - [`gazetteer`]: the cities of every served country with their coordinates
//!   (GeoNames), and a postal address's city resolved against them;
//! - [`plan`]: a budget of new service points placed by greedy maximal covering;
//! - [`map`]: the country, its demand, its centers and the chosen cities as SVG;
//! - [`quality`]: percentiles, and a center's figure flagged against the network's median.
//!
//! Pure: callers bring the facts (read models) and get figures back.

pub mod gazetteer;
pub mod map;
pub mod plan;
pub mod quality;

pub use gazetteer::{City, Gazetteer, Point};
pub use plan::{Area, Candidate, Choice, Figures, Plan, PlanError, Planner, ServicePoint};
