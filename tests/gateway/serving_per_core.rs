//! Serving per core (`examples/support/per_core.rs`), as the example gateway, the minimal
//! gateway and the bare proxy serve: workers that share one port, each serving connections.

use std::collections::BTreeSet;
use std::future::Future;
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::pin::Pin;

use tokio::io::AsyncWriteExt;

use crate::per_core;

/// One worker's serving future.
type Serving = Pin<Box<dyn Future<Output = ()>>>;

/// Workers that each answer a connection with their index and close it.
fn numbered_workers(
    count: u8,
) -> impl Iterator<Item = impl FnOnce(tokio::net::TcpListener) -> Serving + Send> {
    (0..count).map(|index| {
        move |listener: tokio::net::TcpListener| {
            Box::pin(async move {
                loop {
                    let Ok((mut stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let _ = stream.write_all(&[index]).await;
                }
            }) as Serving
        }
    })
}

fn answering_worker(address: SocketAddr) -> u8 {
    let mut stream = TcpStream::connect(address).unwrap();
    let mut index = [0u8; 1];
    stream.read_exact(&mut index).unwrap();
    index[0]
}

#[test]
fn workers_given_port_0_share_the_first_ones_port_and_each_serves() {
    let (address, _workers) =
        per_core::spawn("127.0.0.1:0".parse().unwrap(), numbered_workers(2)).unwrap();
    assert_ne!(address.port(), 0);
    // The kernel hashes each connection to one of the two sockets: 64 connections all landing
    // on one has a chance of 2^-63.
    let answered: BTreeSet<u8> = (0..64).map(|_| answering_worker(address)).collect();
    assert_eq!(answered, BTreeSet::from([0, 1]));
}

#[test]
fn a_port_held_by_a_socket_that_does_not_share_it_is_an_error_not_a_hang() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap();
    let error = per_core::spawn(address, numbered_workers(2)).err().unwrap();
    assert_eq!(error.kind(), std::io::ErrorKind::AddrInUse, "{error}");
}

#[test]
fn join_waits_for_every_worker_and_returns_once_all_have_ended() {
    // As the example gateway stops its workers: one signal, every worker's future ends.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (ended, ends) = std::sync::mpsc::channel();
    let workers = (0..2).map(|index| {
        let (mut stopped, ended) = (stopped.clone(), ended.clone());
        move |_listener: tokio::net::TcpListener| async move {
            let _ = stopped.wait_for(|stop| *stop).await;
            ended.send(index).unwrap();
        }
    });
    let (_, workers) = per_core::spawn("127.0.0.1:0".parse().unwrap(), workers).unwrap();
    let (all_joined, joined) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        workers.join();
        all_joined.send(()).unwrap();
    });
    let wait = std::time::Duration::from_millis(200);
    assert!(joined.recv_timeout(wait).is_err(), "joined before the stop");
    stop.send(true).unwrap();
    joined
        .recv_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    let mut ended: Vec<u8> = ends.try_iter().collect();
    ended.sort_unstable();
    assert_eq!(ended, [0, 1]);
}

#[test]
fn workers_is_a_positive_number_or_one_per_cpu() {
    assert_eq!(per_core::workers(Some("3")), Ok(3));
    for wrong in ["0", "-1", "two", ""] {
        let error = per_core::workers(Some(wrong)).unwrap_err();
        assert!(
            error.contains("WORKERS must be a positive number"),
            "{error}"
        );
    }
    let default = per_core::workers(None).unwrap();
    assert!(default >= 1);
    if cfg!(target_os = "linux") {
        assert_eq!(
            default,
            std::thread::available_parallelism().map_or(1, usize::from)
        );
    }
}
