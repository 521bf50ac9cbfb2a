//! A webhook's signature header (carriers' and the payment provider's), as any
//! bytes a caller sends, and the replay window's arithmetic on any timestamp: an
//! answer, never a panic or an overflow.
#![no_main]

use std::time::Duration;

use aftersales_runtime::signature::{parse, within_window};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (clock, header) = data.split_at(data.len().min(8));
    let mut now = [0u8; 8];
    now[..clock.len()].copy_from_slice(clock);
    let now = i64::from_le_bytes(now);
    let Ok(header) = std::str::from_utf8(header) else {
        return;
    };
    if let Some((timestamp, _signature)) = parse(header) {
        for window in [0, 300, u64::MAX] {
            let _ = within_window(now, timestamp, Duration::from_secs(window));
        }
    }
});
