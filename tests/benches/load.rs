//! `aftersales load` against the platform, release builds: the distributed form
//! (the journeys' platform: four service processes on PostgreSQL and NATS,
//! authentication off) and then `aftersales up` (one process on SQLite, signed
//! in as its demo staff). Each is driven with `--find-max`: the arrival rate is
//! raised by half after each hold until some call's p99 passes its target, or a
//! step's message reaches the customer's inbox later than its target at p99, and
//! the highest rate that held is named. Every service's resident memory is
//! sampled through the run; the largest sample is reported beside its idle
//! figure before the load.
//!
//! The default mix is the platform's target: 35 coverage checks to each walk-in
//! (seven repair steps, from opening to collection), so that 514 arrivals/s are
//! 500 coverage checks and 100 repair steps a second, held to 50 ms p99 for a
//! call and 150 ms p99 from a step's commit to the inbox. The first rate is that
//! point divided by 1.5 four times, so the fifth hold is the target itself.
//!
//! `cargo bench -p aftersales-journeys --bench load`; knobs `BENCH_RATE` (first
//! rate, default 101.6 arrivals/s), `BENCH_SECONDS` (each hold, default 20),
//! `BENCH_TARGET_P99_MS` (default 50), `BENCH_TARGET_INBOX_P99_MS` (default 150),
//! `BENCH_MIX` (the load's `--mix`), `BENCH_FORMS` (default `distributed,up`),
//! and `BENCH_SERVICES_BEFORE`: a directory of another build's service binaries,
//! with which the distributed form also runs, taking turns with this build's over
//! two rounds (the load generator is this build's in both). `BENCH_SERVICE_LOG`
//! is the services' `RUST_LOG` (default `warn`), their logs on the bench's stderr.
//! `BENCH_UP_BEFORE` is another build's `aftersales` binary, with which `up` also
//! runs, taking turns with this build's over two rounds (the load generator is
//! this build's in both). `BENCH_HOLDS=<n>` holds `BENCH_RATE` n times in turn
//! against each platform started, its history growing from one hold to the
//! next, instead of finding the highest rate. `BENCH_NATS_SYNC=default` runs
//! nats-server with its default sync (every two minutes) instead of an fsync
//! before each acknowledgement, to measure what that costs.
//! The generator shares the machine with what it measures; each hold's report
//! ends with how fast the machine was (a fixed task's time on a core, against
//! the same before the load, and its wait for a core).

#![allow(clippy::unwrap_used)]

#[allow(dead_code)] // the journeys' harness; this benchmark uses part of it
#[path = "../journeys/platform.rs"]
mod platform;

use std::io::{BufRead as _, BufReader, Read as _};
use std::process::{Command, Stdio};
use std::time::Duration;

use aftersales_testkit::resident_mib;

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// How fast the machine is while the load runs: the same small task every
/// quarter second, its time on a core (its wall time less its wait for one, the
/// thread's `run_delay` in `schedstat`, which the kernel adds up exactly at each
/// switch) and that wait. The same task takes longer on a core when the cores
/// give less, whether the host shares them out or the platform's own threads
/// crowd them (the probe cannot tell which): what sets one hold of a build apart
/// from the next on this machine. The waits are the queue for the two cores that
/// every hop of a journey also stands in.
struct MachineProbe {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    samples: std::thread::JoinHandle<Vec<(f64, f64)>>,
}

impl MachineProbe {
    const EVERY: Duration = Duration::from_millis(250);

    fn start() -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let samples = std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                samples.push(Self::sample());
                #[allow(clippy::disallowed_methods)] // a thread of its own
                std::thread::sleep(Self::EVERY);
            }
            samples
        });
        Self { stop, samples }
    }

    /// The task's time on a core and its wait for one, in ms (about 1 ms on a
    /// core when the machine is idle).
    fn sample() -> (f64, f64) {
        let (waited, started) = (Self::run_delay(), std::time::Instant::now());
        let mut x = 0u64;
        for i in 0..1_200_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        let wall = started.elapsed().as_secs_f64() * 1e3;
        #[allow(clippy::cast_precision_loss)] // ns to ms
        let wait = Self::run_delay().saturating_sub(waited) as f64 / 1e6;
        ((wall - wait).max(0.0), wait)
    }

    /// How long this thread has waited for a core so far, in ns.
    fn run_delay() -> u64 {
        let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
        text.split_whitespace()
            .nth(1)
            .and_then(|f| f.parse().ok())
            .unwrap_or(0)
    }

    /// The task's time on a core and its wait for one, each at p50 and p90, in ms.
    fn finish(self) -> [f64; 4] {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let samples = self.samples.join().unwrap();
        let quantile = |mut values: Vec<f64>, q: f64| {
            values.sort_by(f64::total_cmp);
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss
            )]
            let at = ((values.len().saturating_sub(1)) as f64 * q).round() as usize;
            values.get(at).copied().unwrap_or(0.0)
        };
        let on_core: Vec<f64> = samples.iter().map(|s| s.0).collect();
        let waits: Vec<f64> = samples.iter().map(|s| s.1).collect();
        [
            quantile(on_core.clone(), 0.5),
            quantile(on_core, 0.9),
            quantile(waits.clone(), 0.5),
            quantile(waits, 0.9),
        ]
    }
}

/// Runs `aftersales load` with `args` until it ends, sampling the resident memory
/// of `pids` every half second; its report, with how fast the machine was before
/// and during it, and each pid's largest sample.
fn drive(args: &[String], pids: &[u32]) -> (String, Vec<f64>) {
    let idle = MachineProbe::start();
    #[allow(clippy::disallowed_methods)] // the platform idle, for the probe's baseline
    std::thread::sleep(Duration::from_secs(2));
    let [idle_on_core, ..] = idle.finish();
    let probe = MachineProbe::start();
    let mut load = Command::new(platform::binary("aftersales"))
        .arg("load")
        .args(args)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = load.stdout.take().unwrap();
    let report = std::thread::spawn(move || {
        let mut text = String::new();
        stdout.read_to_string(&mut text).unwrap();
        text
    });
    let progress = BufReader::new(load.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in progress.lines().map_while(Result::ok) {
            eprintln!("{line}");
        }
    });
    let mut peaks = vec![0.0f64; pids.len()];
    while load.try_wait().unwrap().is_none() {
        for (peak, pid) in peaks.iter_mut().zip(pids) {
            *peak = peak.max(resident_mib(*pid));
        }
        #[allow(clippy::disallowed_methods)] // sampling beside a child process
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(load.wait().unwrap().success(), "aftersales load failed");
    let [on_core, on_core_p90, wait, wait_p90] = probe.finish();
    let machine = format!(
        "machine: a fixed task took {on_core:.2} / {on_core_p90:.2} ms on a core (p50 / p90; \
         {idle_on_core:.2} ms at p50 idle before the load) and waited {wait:.2} / {wait_p90:.2} ms \
         for one\n"
    );
    (report.join().unwrap() + &machine, peaks)
}

/// How many times `BENCH_RATE` is held against one platform, if it is not
/// raised until it fails.
fn holds() -> Option<u32> {
    std::env::var("BENCH_HOLDS").ok()?.parse().ok()
}

fn common_args() -> Vec<String> {
    let mut args: Vec<String> = holds()
        .is_none()
        .then(|| "--find-max".to_owned())
        .into_iter()
        .collect();
    args.extend(
        [
            "--rate",
            &env("BENCH_RATE", "101.6"),
            "--seconds",
            &env("BENCH_SECONDS", "20"),
            "--target-p99-ms",
            &env("BENCH_TARGET_P99_MS", "50"),
            "--target-inbox-p99-ms",
            &env("BENCH_TARGET_INBOX_P99_MS", "150"),
            "--mix",
            &env("BENCH_MIX", "coverage=35,walk-in=1"),
            // Walk-ins are worked the day they come, not booked for later.
            "--center-capacity",
            "10000",
        ]
        .map(str::to_owned),
    );
    args
}

/// [`drive`] once, or `BENCH_HOLDS` times in turn: the reports one after the
/// other, and each pid's largest sample over all of them.
fn drive_all(args: &[String], pids: &[u32]) -> (String, Vec<f64>) {
    let Some(holds) = holds() else {
        return drive(args, pids);
    };
    let (mut reports, mut peaks) = (String::new(), vec![0.0f64; pids.len()]);
    for hold in 1..=holds {
        let (report, hold_peaks) = drive(args, pids);
        reports.push_str(&format!("hold {hold} of {holds}:{report}\n"));
        for (peak, hold_peak) in peaks.iter_mut().zip(hold_peaks) {
            *peak = peak.max(hold_peak);
        }
    }
    (reports, peaks)
}

fn memory_table(names: &[&str], idle: &[f64], peaks: &[f64]) {
    println!("| process | idle before | largest under load |");
    println!("|---|---|---|");
    for ((name, idle), peak) in names.iter().zip(idle).zip(peaks) {
        println!("| {name} | {idle:.1} MiB | {peak:.1} MiB |");
    }
}

fn main() {
    let forms = env("BENCH_FORMS", "distributed,up");
    if forms.split(',').any(|f| f == "distributed") {
        match std::env::var_os("BENCH_SERVICES_BEFORE") {
            None => distributed(""),
            Some(before) => {
                for round in 1..=2 {
                    *platform::SERVICES_FROM.lock().unwrap() = Some(before.clone().into());
                    distributed(&format!(": the build before, round {round}"));
                    *platform::SERVICES_FROM.lock().unwrap() = None;
                    distributed(&format!(": this build, round {round}"));
                }
            }
        }
    }
    if forms.split(',').any(|f| f == "up") {
        match std::env::var_os("BENCH_UP_BEFORE") {
            None => up(&platform::binary("aftersales"), ""),
            Some(before) => {
                for round in 1..=2 {
                    up(
                        std::path::Path::new(&before),
                        &format!(": the build before, round {round}"),
                    );
                    up(
                        &platform::binary("aftersales"),
                        &format!(": this build, round {round}"),
                    );
                }
            }
        }
    }
}

/// `which` ends the report's heading.
fn distributed(which: &str) {
    // The distributed form, parcels moving every 100 ms.
    let platform = platform::Platform::start(100);
    let services = [
        &platform.warranty,
        &platform.repair,
        &platform.logistics,
        &platform.notification,
    ];
    let pids: Vec<u32> = services.iter().map(|s| s.pid().unwrap()).collect();
    #[allow(clippy::disallowed_methods)] // settling before the idle reading
    std::thread::sleep(Duration::from_secs(5));
    let idle: Vec<f64> = pids.iter().map(|p| resident_mib(*p)).collect();
    let mut args = common_args();
    args.extend(
        [
            "--no-auth",
            "--warranty-url",
            &platform.warranty.url(),
            "--repair-url",
            &platform.repair.url(),
            "--logistics-url",
            &platform.logistics.url(),
            "--notification-url",
            &platform.notification.url(),
        ]
        .map(str::to_owned),
    );
    let (report, peaks) = drive_all(&args, &pids);
    println!("## Distributed form (PostgreSQL, NATS, four processes){which}\n{report}");
    let names: Vec<String> = services
        .iter()
        .map(|s| format!("aftersales-{}", s.name))
        .collect();
    memory_table(
        &names.iter().map(String::as_str).collect::<Vec<_>>(),
        &idle,
        &peaks,
    );
}

/// `aftersales up` run from `binary`, signed in as its demo staff; `which` ends
/// the report's heading.
fn up(binary: &std::path::Path, which: &str) {
    let data = tempfile::tempdir().unwrap();
    let mut up = aftersales_testkit::up_on_free_ports(binary, data.path())
        .args(["--demo", "--sandbox-step-millis", "100"])
        .env("RUST_LOG", "error")
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(up.stdout.take().unwrap()).lines();
    let (mut services, mut issuer) = (Vec::new(), String::new());
    loop {
        let line = lines.next().unwrap().unwrap();
        if let Some(address) = line.split("grpc://").nth(1) {
            services.push(format!("http://{}", address.trim()));
        } else if let Some(url) = line.strip_prefix("identity") {
            url.trim().clone_into(&mut issuer);
        } else if line.starts_with("data in") {
            break;
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    #[allow(clippy::disallowed_methods)] // settling before the idle reading
    std::thread::sleep(Duration::from_secs(5));
    let idle = resident_mib(up.id());
    let mut args = common_args();
    args.extend(
        [
            // Signed in, the agent lists inboxes (only a customer may watch
            // theirs) and holds ten live streams at most.
            "--watchers",
            "10",
            "--demo-accounts",
            &data.path().join("demo-accounts.txt").display().to_string(),
            "--issuer-url",
            &issuer,
            "--warranty-url",
            &services[0],
            "--repair-url",
            &services[1],
            "--logistics-url",
            &services[2],
            "--notification-url",
            &services[3],
        ]
        .map(str::to_owned),
    );
    let (report, peaks) = drive_all(&args, &[up.id()]);
    println!("## aftersales up (SQLite, one process, authenticated){which}\n{report}");
    memory_table(&["aftersales up"], &[idle], &peaks);
    let _ = up.kill();
    let _ = up.wait();
}
