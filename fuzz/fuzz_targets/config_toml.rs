//! The TOML files services load at start (warranty policies and programmes,
//! logistics depots, repair centers), as any text: loaded or refused with a
//! reason, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = aftersales_warranty::domain::policy::PolicyTable::from_sources([("fuzz.toml", text)]);
    let _ = aftersales_warranty::domain::programme::ProgrammeTable::from_sources([("fuzz.toml", text)]);
    let _ = aftersales_logistics::domain::depots::Depots::parse(text);
    let _ = aftersales_repair::domain::centers::load(text);
});
