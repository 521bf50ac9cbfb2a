//! The warranty service.
//!
//! - [`domain`]: pure rules (identities, policies, coverage, the device decider).

pub mod domain;
