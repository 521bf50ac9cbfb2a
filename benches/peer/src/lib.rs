//! Only a benchmark: `benches/commands.rs`.
