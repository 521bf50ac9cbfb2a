//! The support service: cases from the hotline, chat, email, the web and the
//! platform itself, routed to the team and agent that can answer them, with SLA
//! clocks counted in each team's working hours.

pub mod api;
pub mod app;
pub mod domain;
pub mod integration;
pub mod knowledge;
pub mod privacy;
pub mod projections;
pub mod quality;
pub mod reactions;
pub mod selfhelp;
pub mod server;
pub mod surveys;
