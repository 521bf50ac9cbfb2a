//! The customer's repair page at 50 concurrent signed-in users, next to a static
//! file from the same gateway in the same run: `aftersales up --demo` as a
//! process (release build, SQLite), one customer signed in with her emailed
//! code, then each page asked for by 50 clients for `BENCH_SECONDS` (default
//! 10), in two interleaved rounds. A repair page costs a session lookup, a
//! `GetRepair` call to the repair service with her token (verified there), and
//! rendering; the static file costs none of that.
//!
//! Then live fan-out: `BENCH_PAGES` (default 1,000) open repair pages (server-sent
//! event streams) on the gateway, the technician checks the phone in, and the time
//! from issuing the step to each page's receiving it; with the `up` process's
//! resident memory before the pages opened and while they are open.
//!
//! `cargo bench -p aftersales-cli --bench web`.

#![allow(
    clippy::unwrap_used,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Up(std::process::Child);

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The six digits of the newest sign-in email.
fn code_in(smtp: &aftersales_testkit::SmtpServer) -> Option<String> {
    smtp.messages().iter().rev().find_map(|mail| {
        let mail = aftersales_testkit::smtp::readable(mail);
        // The gateway asks in the browser's language: none given, English.
        let line = mail.lines().find(|l| l.contains("sign-in code is"))?;
        line.split(|c: char| !c.is_ascii_digit())
            .find(|w| w.len() == 6)
            .map(str::to_owned)
    })
}

async fn load(
    http: &reqwest::Client,
    url: &str,
    cookie: &str,
    clients: usize,
    seconds: u64,
) -> (f64, Vec<Duration>) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (http, url, cookie) = (http.clone(), url.to_owned(), cookie.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                let response = http
                    .get(&url)
                    .header("cookie", &cookie)
                    .send()
                    .await
                    .unwrap();
                assert!(
                    response.status().is_success(),
                    "{url}: {}",
                    response.status()
                );
                response.bytes().await.unwrap();
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let rate = all.len() as f64 / started.elapsed().as_secs_f64();
    all.sort();
    (rate, all)
}

fn report(name: &str, (rate, latencies): &(f64, Vec<Duration>)) {
    let at = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize];
    println!(
        "{name}: {rate:.0} pages/s, p50 {:.2} ms, p99 {:.2} ms ({} pages)",
        at(0.50).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        latencies.len()
    );
}

/// One open page: the stage events it receives, with when each arrived.
async fn page(
    http: reqwest::Client,
    url: String,
    cookie: String,
    ready: tokio::sync::mpsc::Sender<()>,
) -> Option<Instant> {
    use futures::StreamExt as _;
    let response = http.get(&url).header("cookie", &cookie).send().await.ok()?;
    let mut body = response.bytes_stream();
    let mut seen = String::new();
    let mut events = 0;
    while let Some(Ok(chunk)) = body.next().await {
        seen.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = seen.find("\n\n") {
            let event: String = seen.drain(..end + 2).collect();
            if !event.contains("event: stage") {
                continue;
            }
            events += 1;
            if events == 1 {
                let _ = ready.send(()).await;
            } else if event.contains("STAGE_RECEIVED") {
                return Some(Instant::now());
            }
        }
    }
    None
}

#[tokio::main]
async fn main() {
    let clients = env_usize("BENCH_CLIENTS", 50);
    let seconds = env_usize("BENCH_SECONDS", 10) as u64;
    let data = tempfile::tempdir().unwrap();
    let smtp = aftersales_testkit::SmtpServer::start().unwrap();
    let mut child = aftersales_testkit::up_on_free_ports(
        std::path::Path::new(env!("CARGO_BIN_EXE_aftersales")),
        data.path(),
    )
    .args(["--demo", "--smtp-url", &smtp.url()])
    .env("RUST_LOG", "error")
    .spawn()
    .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut web, mut issuer, mut repair_grpc) = (String::new(), String::new(), String::new());
    while issuer.is_empty() {
        let line = lines.next().unwrap().unwrap();
        if let Some(url) = line.strip_prefix("web") {
            url.trim().clone_into(&mut web);
        } else if let Some(url) = line.strip_prefix("identity") {
            url.trim().clone_into(&mut issuer);
        } else if let Some(address) = line.strip_prefix("repair") {
            address
                .trim()
                .trim_start_matches("grpc://")
                .clone_into(&mut repair_grpc);
        }
    }
    // Seeding is done when `up` says where its data is.
    loop {
        let line = lines.next().unwrap().unwrap();
        if line.starts_with("data in") {
            break;
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    let pid = child.id();
    let _up = Up(child);

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(clients)
        .build()
        .unwrap();
    http.post(format!("{web}/sign-in"))
        .header("origin", &web)
        .form(&[("address", "demo-lena@example.com")])
        .send()
        .await
        .unwrap();
    let code = loop {
        if let Some(code) = code_in(&smtp) {
            break code;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let signed_in = http
        .post(format!("{web}/sign-in/code"))
        .header("origin", &web)
        .form(&[("address", "demo-lena@example.com"), ("code", &code)])
        .send()
        .await
        .unwrap();
    let cookie = signed_in
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("aftersales_session="))
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_owned();
    let devices = http
        .get(format!("{web}/devices"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let order = devices
        .split("/repairs/")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let repair = format!("{web}/repairs/{order}");
    let asset = format!("{web}/static/app.css");
    println!("{clients} clients, {seconds} s per phase, two interleaved rounds");
    let cookie = Arc::new(cookie);
    for round in 1..=2 {
        report(
            &format!("round {round} static file"),
            &load(&http, &asset, &cookie, clients, seconds).await,
        );
        report(
            &format!("round {round} repair page"),
            &load(&http, &repair, &cookie, clients, seconds).await,
        );
    }

    // Live fan-out.
    let pages = env_usize("BENCH_PAGES", 1000);
    let before = aftersales_testkit::resident_mib(pid);
    let streams = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let (ready, mut opened) = tokio::sync::mpsc::channel(pages);
    let mut open = Vec::new();
    for _ in 0..pages {
        open.push(tokio::spawn(page(
            streams.clone(),
            format!("{repair}/events"),
            cookie.to_string(),
            ready.clone(),
        )));
    }
    for _ in 0..pages {
        opened.recv().await.unwrap();
    }
    let during = aftersales_testkit::resident_mib(pid);
    // The technician checks the phone in (signed in with the tool).
    let config = tempfile::tempdir().unwrap();
    let accounts = std::fs::read_to_string(data.path().join("demo-accounts.txt")).unwrap();
    let password = accounts
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(1) == Some(&"tech-berlin")).then(|| f[2].to_owned())
        })
        .unwrap();
    let tool = |args: &[&str]| {
        let status = Command::new(env!("CARGO_BIN_EXE_aftersales"))
            .args(args)
            .env("AFTERSALES_CONFIG_DIR", config.path())
            .env("AFTERSALES_ISSUER_URL", &issuer)
            .env("AFTERSALES_REPAIR_URL", format!("http://{repair_grpc}"))
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "aftersales {args:?}");
    };
    tool(&[
        "login",
        "--username",
        "tech-berlin",
        "--password",
        &password,
    ]);
    let step = Instant::now();
    tool(&[
        "repair", "advance", "--order", &order, "--step", "check-in", "--notes", "ok",
    ]);
    let committed = step.elapsed();
    let mut arrivals = Vec::new();
    for page in open {
        arrivals.push(
            page.await
                .unwrap()
                .expect("the page saw the step")
                .duration_since(step),
        );
    }
    arrivals.sort();
    let at = |q: f64| arrivals[((arrivals.len() as f64 - 1.0) * q) as usize];
    println!(
        "fan-out to {pages} open pages: from issuing the step (the tool's run took {:.0} ms), \
         p50 {:.0} ms, p99 {:.0} ms, last {:.0} ms; up's memory {before:.0} MiB before the \
         pages, {during:.0} MiB with them open",
        committed.as_secs_f64() * 1e3,
        at(0.50).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        arrivals.last().unwrap().as_secs_f64() * 1e3,
    );
}
