//! Ten thousand customers following their repairs at once on one repair
//! process: idle, they cost next to nothing; one more is refused; a step reaches
//! every watcher of its order within a second.

use std::time::{Duration, Instant};

use aftersales_proto::repair as rpb;
use aftersales_proto::repair::repair_service_client::RepairServiceClient;
use futures::StreamExt as _;
use tonic::transport::Channel;

use crate::journey::device;
use crate::{Platform, imei};

const ORDERS: usize = 500;
const WATCHERS_PER_ORDER: usize = 20;
/// Streams per connection, under the server's limit of 256.
const STREAMS_PER_CONNECTION: usize = 200;
const CENTERS: [&str; 8] = [
    "sc-berlin-01",
    "sc-paris-01",
    "sc-madrid-01",
    "sc-shanghai-01",
    "sc-bengaluru-01",
    "sc-newyork-01",
    "sc-sydney-01",
    "sc-johannesburg-01",
];

/// Seconds of CPU (user and system) the process has used, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    #[allow(unsafe_code)]
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    ticks as f64 / per_second as f64
}

/// The share of a core the process uses over five quiet seconds.
async fn idle_cpu(pid: u32) -> f64 {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (cpu, started) = (cpu_seconds(pid), Instant::now());
    tokio::time::sleep(Duration::from_secs(5)).await;
    (cpu_seconds(pid) - cpu) / started.elapsed().as_secs_f64()
}

/// The `n`th walk-in order: at one of the centers, on a day ahead that still
/// takes one.
async fn open_walk_in(r: &mut RepairServiceClient<Channel>, n: usize) -> String {
    let center = CENTERS[n % CENTERS.len()];
    let mut ahead = i64::try_from(1 + n / CENTERS.len() % 50).unwrap();
    loop {
        #[allow(clippy::disallowed_methods)] // a booking day relative to the real today
        let day = chrono::Utc::now().date_naive() + chrono::Duration::days(ahead);
        let opened = r
            .open_repair(rpb::OpenRepairRequest {
                device_id: device(&imei(10_000 + u64::try_from(n).unwrap())),
                channel: rpb::Channel::WalkIn.into(),
                service_center_id: center.into(),
                customer_id: format!("watcher-{n}"),
                symptoms: "screen flickers".into(),
                walk_in_day: day.to_string(),
                ..Default::default()
            })
            .await;
        match opened {
            Ok(order) => return order.into_inner().order_id,
            // Closed that day, or full: the next day.
            Err(status) if status.code() == tonic::Code::ResourceExhausted => ahead += 1,
            Err(status) => panic!("opening a walk-in at {center} on {day}: {status:?}"),
        }
    }
}

#[tokio::test]
async fn ten_thousand_idle_watchers_cost_next_to_nothing_and_a_step_reaches_them_all() {
    let platform = Platform::start(50);
    let pid = platform.repair.pid().unwrap();
    let endpoint = tonic::transport::Endpoint::from_shared(platform.repair.url()).unwrap();
    let mut r = RepairServiceClient::new(endpoint.connect().await.unwrap());
    let orders: Vec<String> = futures::stream::iter(0..ORDERS)
        .map(|n| {
            let mut r = r.clone();
            async move { open_walk_in(&mut r, n).await }
        })
        .buffered(8)
        .collect()
        .await;
    let rss_before = aftersales_testkit::resident_mib(pid);
    let idle_before = idle_cpu(pid).await;

    // Each watcher on a connection of its own group, as many browsers' worth.
    let connections = ORDERS * WATCHERS_PER_ORDER / STREAMS_PER_CONNECTION;
    let mut clients = Vec::new();
    for _ in 0..connections {
        clients.push(RepairServiceClient::new(endpoint.connect().await.unwrap()));
    }
    let opened = Instant::now();
    let watches: Vec<(usize, tonic::Streaming<rpb::RepairOrder>)> =
        futures::stream::iter(0..ORDERS * WATCHERS_PER_ORDER)
            .map(|w| {
                let order = w % ORDERS;
                let mut client = clients[w / STREAMS_PER_CONNECTION].clone();
                let order_id = orders[order].clone();
                async move {
                    let mut watch = client
                        .watch_repair(rpb::OrderRef { order_id })
                        .await
                        .unwrap()
                        .into_inner();
                    // The order as it stands comes first.
                    watch.message().await.unwrap().unwrap();
                    (order, watch)
                }
            })
            .buffer_unordered(64)
            .collect()
            .await;
    let opened_in = opened.elapsed();

    // The next one, past the process's cap of 10,000, is refused.
    let refused = r
        .watch_repair(rpb::OrderRef {
            order_id: orders[0].clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );

    let idle_cpu = idle_cpu(pid).await;
    let rss_after = aftersales_testkit::resident_mib(pid);
    eprintln!(
        "{} watchers on {ORDERS} orders over {connections} connections, opened in {opened_in:?}; \
         idle repair process: {:.2}% of a core ({:.2}% without watchers), RSS {rss_before:.0} MiB before the watchers and \
         {rss_after:.0} MiB with them",
        watches.len(),
        idle_cpu * 100.0,
        idle_before * 100.0
    );
    assert!(
        idle_cpu < 0.05,
        "10,000 idle watchers cost {:.1}% of a core",
        idle_cpu * 100.0
    );

    // A step on some orders reaches every watcher of each within a second.
    let mut by_order: Vec<Vec<tonic::Streaming<rpb::RepairOrder>>> =
        (0..ORDERS).map(|_| Vec::new()).collect();
    for (order, watch) in watches {
        by_order[order].push(watch);
    }
    for order in [0, ORDERS / 2, ORDERS - 1] {
        r.check_in_device(rpb::CheckInDeviceRequest {
            order_id: orders[order].clone(),
            condition_notes: "as described".into(),
            ..Default::default()
        })
        .await
        .unwrap();
        // From the step's commit.
        let started = Instant::now();
        let seen = futures::future::join_all(by_order[order].iter_mut().map(|watch| async {
            let next = tokio::time::timeout(Duration::from_secs(1), watch.message()).await;
            next.ok().and_then(|m| m.ok().flatten()).map(|o| o.stage())
        }))
        .await;
        let slowest = started.elapsed();
        assert!(
            seen.iter().all(|s| *s == Some(rpb::Stage::Received)),
            "every watcher sees the check-in within a second: {seen:?}"
        );
        eprintln!(
            "check-in of order {order} reached its {WATCHERS_PER_ORDER} watchers within {slowest:?}"
        );
    }
}
