//! Ties every server's life to the test process.
//!
//! Test binaries keep shared servers in statics, whose destructors never run. Two
//! guards cover that: children are forked from one immortal thread with a parent-death
//! signal (Linux sends it when the forking *thread* exits, so the thread must outlive
//! every test), and an `atexit` hook stops the children and removes their directories
//! on a normal exit.

#![allow(unsafe_code)] // fork-time prctl and atexit have no safe wrappers in std

use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::{Mutex, OnceLock, mpsc};

type Reply = mpsc::Sender<std::io::Result<Child>>;

struct Request {
    command: Command,
    death_signal: i32,
    reply: Reply,
}

/// What the exit hook stops and removes.
struct Owned {
    pid: u32,
    stop_signal: i32,
    dir: PathBuf,
}

static SPAWNER: OnceLock<Mutex<mpsc::Sender<Request>>> = OnceLock::new();
static OWNED: Mutex<Vec<Owned>> = Mutex::new(Vec::new());

/// Spawns `command` so that it receives `death_signal` if this process dies.
pub(crate) fn spawn(command: Command, death_signal: i32) -> std::io::Result<Child> {
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("testkit-spawner".into())
            .spawn(move || {
                for request in rx {
                    let _ = request
                        .reply
                        .send(spawn_here(request.command, request.death_signal));
                }
                // The sender lives in a static, so this loop only ends at process exit.
            })
            .expect("the testkit spawner thread starts");
        // SAFETY: `stop_all` is an `extern "C" fn()` with no arguments, as atexit wants.
        unsafe { libc::atexit(stop_all) };
        Mutex::new(tx)
    });
    let (reply, answer) = mpsc::channel();
    spawner
        .lock()
        .map_err(|_| std::io::Error::other("testkit spawner lock poisoned"))?
        .send(Request {
            command,
            death_signal,
            reply,
        })
        .map_err(|_| std::io::Error::other("testkit spawner thread is gone"))?;
    answer
        .recv()
        .map_err(|_| std::io::Error::other("testkit spawner thread is gone"))?
}

fn spawn_here(mut command: Command, death_signal: i32) -> std::io::Result<Child> {
    let parent = std::process::id();
    // SAFETY: only async-signal-safe calls (prctl, getppid) run between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, death_signal) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid().cast_unsigned() != parent {
                return Err(std::io::Error::other("test process exited during spawn"));
            }
            Ok(())
        });
    }
    command.spawn()
}

/// Registers a running server for the exit hook.
pub(crate) fn own(pid: u32, stop_signal: i32, dir: PathBuf) {
    if let Ok(mut owned) = OWNED.lock() {
        owned.push(Owned {
            pid,
            stop_signal,
            dir,
        });
    }
}

/// Forgets a server that was stopped normally.
pub(crate) fn disown(pid: u32) {
    if let Ok(mut owned) = OWNED.lock() {
        owned.retain(|o| o.pid != pid);
    }
}

/// Sends `signal` to `pid` and waits up to five seconds for it to exit.
pub(crate) fn stop(child: &mut Child, signal: i32) {
    let Ok(pid) = libc::pid_t::try_from(child.id()) else {
        return;
    };
    // SAFETY: plain kill(2) on a child we spawned and have not yet reaped.
    unsafe { libc::kill(pid, signal) };
    for _ in 0..100 {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        #[allow(clippy::disallowed_methods)] // blocking teardown, outside any runtime
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

extern "C" fn stop_all() {
    let owned = match OWNED.lock() {
        Ok(mut owned) => std::mem::take(&mut *owned),
        Err(_) => return,
    };
    for server in &owned {
        if let Ok(pid) = libc::pid_t::try_from(server.pid) {
            // SAFETY: kill(2) on a child of ours; at worst it has already exited.
            unsafe { libc::kill(pid, server.stop_signal) };
        }
    }
    for server in owned {
        if let Ok(pid) = libc::pid_t::try_from(server.pid) {
            for _ in 0..100 {
                // SAFETY: kill with signal 0 only probes for existence.
                if unsafe { libc::kill(pid, 0) } != 0 {
                    break;
                }
                let mut status = 0;
                // SAFETY: reaps our own child if it has exited; WNOHANG never blocks.
                unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
                #[allow(clippy::disallowed_methods)] // process exit, no runtime left
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
        let _ = std::fs::remove_dir_all(&server.dir);
    }
}
