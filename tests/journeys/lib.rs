//! The journeys are in `main.rs`, an integration test; this library is empty.
