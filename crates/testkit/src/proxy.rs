//! A TCP proxy a test can cut and heal: the link between two regions, made to
//! fail for real (connections reset, new ones refused) and to come back.

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::TestkitError;

/// Forwards `127.0.0.1:<port>` to a target until dropped.
#[derive(Debug)]
pub struct TcpProxy {
    port: u16,
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    cut: AtomicBool,
    stop: AtomicBool,
    /// Both ends of every open connection, to reset them on a cut.
    open: Mutex<Vec<TcpStream>>,
    /// Bytes carried, both ways.
    carried: AtomicU64,
}

impl TcpProxy {
    /// Starts forwarding a free loopback port to `target`.
    pub fn start(target: SocketAddr) -> Result<Self, TestkitError> {
        let listener =
            TcpListener::bind(("127.0.0.1", 0)).map_err(TestkitError::io("binding the proxy"))?;
        let port = listener
            .local_addr()
            .map_err(TestkitError::io("reading the proxy's address"))?
            .port();
        listener
            .set_nonblocking(true)
            .map_err(TestkitError::io("configuring the proxy"))?;
        let shared = Arc::new(Shared::default());
        let accepting = Arc::clone(&shared);
        std::thread::Builder::new()
            .name(format!("proxy-{port}"))
            .spawn(move || accept(&listener, target, &accepting))
            .map_err(TestkitError::io("starting the proxy"))?;
        Ok(Self { port, shared })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Resets every connection through the proxy and refuses new ones.
    pub fn cut(&self) {
        self.shared.cut.store(true, Ordering::SeqCst);
        if let Ok(mut open) = self.shared.open.lock() {
            for stream in open.drain(..) {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
    }

    /// Accepts connections again.
    pub fn heal(&self) {
        self.shared.cut.store(false, Ordering::SeqCst);
    }

    /// Bytes forwarded so far, both ways.
    pub fn carried(&self) -> u64 {
        self.shared.carried.load(Ordering::Relaxed)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.cut();
    }
}

fn accept(listener: &TcpListener, target: SocketAddr, shared: &Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        let client = match listener.accept() {
            Ok((client, _)) => client,
            Err(_) => {
                #[allow(clippy::disallowed_methods)] // a plain thread, outside any runtime
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        if shared.cut.load(Ordering::SeqCst) {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        let _ = client.set_nonblocking(false);
        let Ok(server) = TcpStream::connect_timeout(&target, Duration::from_secs(2)) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let (Ok(client_copy), Ok(server_copy)) = (client.try_clone(), server.try_clone()) else {
            continue;
        };
        if let Ok(mut open) = shared.open.lock() {
            open.extend(client.try_clone().ok());
            open.extend(server.try_clone().ok());
        }
        pipe(client, server_copy, shared);
        pipe(server, client_copy, shared);
    }
}

/// Copies `from` into `to` on a thread of its own until either side closes.
fn pipe(mut from: TcpStream, mut to: TcpStream, shared: &Arc<Shared>) {
    let shared = Arc::clone(shared);
    let _ = std::thread::Builder::new()
        .name("proxy-pipe".into())
        .spawn(move || {
            let mut buffer = [0u8; 16 * 1024];
            while let Ok(n) = from.read(&mut buffer) {
                if n == 0 || to.write_all(&buffer[..n]).is_err() {
                    break;
                }
                shared.carried.fetch_add(n as u64, Ordering::Relaxed);
            }
            let _ = from.shutdown(Shutdown::Both);
            let _ = to.shutdown(Shutdown::Both);
        });
}
