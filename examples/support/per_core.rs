//! Thread-per-core serving, as nginx's worker processes serve: one OS thread per core, each
//! with its own single-threaded Tokio runtime, its own listening socket on the shared address
//! (`SO_REUSEPORT`: the kernel spreads new connections over the sockets) and its own copy of
//! the service, so its own upstream connection pool. A request is then accepted, checked,
//! forwarded and answered on one thread, and its upstream connection's task runs there too.
//!
//! Why not Tokio's multi-threaded runtime: there a connection's task, the pooled upstream
//! connection's task and the timer are woken from whichever worker last ran them, and each
//! hand-off parks one worker and unparks another. `benches/profile.sh minimal_gateway` showed
//! the kernel's `finish_task_switch` at 16% of the minimal gateway's samples on 2 cores; served
//! per core, 1.9% and 10.8% in two runs (what is left is wrk, the upstream and the workers
//! taking turns on 2 cores), and `MODE=nginx benches/load.sh` went from 0.77 to 0.93 of
//! nginx's requests/s (README, "Benchmarks"). What it costs: no work stealing, so one busy
//! connection cannot borrow an idle core, and `SO_REUSEPORT` lets another process of the same
//! user join the port (Linux allows only the same effective user).
//!
//! Included with `#[path]` by the examples that serve this way, and by
//! `tests/gateway/serving_per_core.rs`.
#![allow(dead_code)] // each includer uses what it needs

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread::JoinHandle;

/// How many workers: `WORKERS` from the environment (see [`workers`]).
pub(crate) fn workers_from_env() -> Result<usize, String> {
    workers(std::env::var("WORKERS").ok().as_deref())
}

/// How many workers for a `WORKERS` setting: a positive number; unset, on Linux one per CPU
/// this process may run on (its affinity mask, so under `taskset -c 1` one), elsewhere one:
/// only Linux spreads a port's connections over the sockets that share it.
pub(crate) fn workers(setting: Option<&str>) -> Result<usize, String> {
    match setting {
        Some(text) => match text.parse::<usize>() {
            Ok(workers) if workers > 0 => Ok(workers),
            _ => Err(format!("WORKERS must be a positive number, not {text:?}")),
        },
        None if cfg!(target_os = "linux") => {
            Ok(std::thread::available_parallelism().map_or(1, usize::from))
        }
        None => Ok(1),
    }
}

/// The running workers.
pub(crate) struct Workers {
    threads: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Waits for every worker's serving future to end.
    pub(crate) fn join(self) {
        for thread in self.threads {
            // A worker that panicked has printed why; the others still finish.
            let _ = thread.join();
        }
    }
}

/// Starts one worker thread per item of `workers`, each on its own current-thread runtime with
/// its own listener on `address`, and runs the item there with that listener. Returns the
/// address they listen on (a port 0 becomes the port the first worker was given, which the
/// others then join) once every one of them listens, or the first error of binding one.
pub(crate) fn spawn<W, F>(
    address: SocketAddr,
    workers: impl IntoIterator<Item = W>,
) -> io::Result<(SocketAddr, Workers)>
where
    W: FnOnce(tokio::net::TcpListener) -> F + Send + 'static,
    F: Future<Output = ()>,
{
    let mut address = address;
    let mut threads = Vec::new();
    for (index, worker) in workers.into_iter().enumerate() {
        let (bound, listening) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(format!("worker-{index}"))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let _ = bound.send(Err(error));
                        return;
                    }
                };
                runtime.block_on(async move {
                    tokio::spawn(keep_a_timer_due());
                    // The socket is registered with the runtime that polls it: bound here.
                    match listen(address) {
                        Ok(listener) => {
                            let _ = bound.send(listener.local_addr());
                            worker(listener).await;
                        }
                        Err(error) => {
                            let _ = bound.send(Err(error));
                        }
                    }
                });
            })?;
        threads.push(thread);
        let started = listening
            .recv()
            .unwrap_or_else(|_| Err(io::Error::other("a worker thread ended before it listened")));
        match started {
            Ok(local) => address = local,
            Err(error) => {
                // The ones already listening serve until the process exits, which an error
                // here leads to.
                return Err(error);
            }
        }
    }
    Ok((address, Workers { threads }))
}

/// A timer always due within a second. Tokio wakes its parked driver (a write to an eventfd)
/// whenever a timer is armed earlier than every timer it parked with; hyper arms a header
/// read timeout for each request, and with no other timer armed each of those was the
/// earliest: strace showed 0.17 such writes per request under `wrk -c32`. With this one due
/// first, a 30 s timeout never is.
async fn keep_a_timer_due() {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
    }
}

/// A listening socket on `address` that other sockets of this process may listen on too.
fn listen(address: SocketAddr) -> io::Result<tokio::net::TcpListener> {
    let socket = match address {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    #[cfg(all(unix, not(target_os = "solaris"), not(target_os = "illumos")))]
    socket.set_reuseport(true)?;
    socket.bind(address)?;
    socket.listen(4096)
}
