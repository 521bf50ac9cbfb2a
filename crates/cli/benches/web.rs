//! The customer's repair page at 50 concurrent signed-in users, next to a static
//! file from the same gateway in the same run: `aftersales up --demo` as a
//! process (release build, SQLite), one customer signed in with her emailed
//! code, then each page asked for by 50 clients for `BENCH_SECONDS` (default
//! 10), in two interleaved rounds. A repair page costs a session lookup, a
//! `GetRepair` call to the repair service with her token (verified there), and
//! rendering; the static file costs none of that.
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

#[tokio::main]
async fn main() {
    let clients = env_usize("BENCH_CLIENTS", 50);
    let seconds = env_usize("BENCH_SECONDS", 10) as u64;
    let data = tempfile::tempdir().unwrap();
    let smtp = aftersales_testkit::SmtpServer::start().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_aftersales"))
        .args(["up", "--demo", "--smtp-url", &smtp.url()])
        .args([
            "--warranty-listen",
            "127.0.0.1:0",
            "--repair-listen",
            "127.0.0.1:0",
        ])
        .args([
            "--logistics-listen",
            "127.0.0.1:0",
            "--notification-listen",
            "127.0.0.1:0",
        ])
        .args([
            "--metrics-listen",
            "127.0.0.1:0",
            "--issuer-listen",
            "127.0.0.1:0",
        ])
        .args(["--gateway-listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let web = loop {
        let line = lines.next().unwrap().unwrap();
        if let Some(url) = line.strip_prefix("web") {
            break url.trim().to_owned();
        }
    };
    // Seeding is done when `up` says where its data is.
    loop {
        let line = lines.next().unwrap().unwrap();
        if line.starts_with("data in") {
            break;
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
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
}
