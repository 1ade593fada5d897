//! The apiserver survives running out of file descriptors (issue 12, item 5): under
//! `ulimit -n 256`, 300 connections made `accept()` fail with EMFILE and the accept
//! loop ended for good, leaving a process that was up and refused everything.
//!
//! This test runs in its own binary because it changes a limit of the whole process:
//! it lowers RLIMIT_NOFILE, takes every descriptor left, lets connections arrive, then
//! gives the descriptors back and checks that those connections (and new ones) are
//! served. No etcd runs in this process (an etcd member out of descriptors is another
//! story); `/version` needs none.

use std::fs::File;
use std::time::{Duration, Instant};

use apiserver::server::{start, Config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const DEADLINE: Duration = Duration::from_secs(30);

const VERSION: &[u8] = b"GET /version HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";

/// The answer on `stream` to its end: its status line.
async fn status_line(stream: &mut TcpStream) -> String {
    let mut bytes = Vec::new();
    tokio::time::timeout(DEADLINE, stream.read_to_end(&mut bytes))
        .await
        .expect("an answer in time")
        .expect("reading the answer");
    String::from_utf8_lossy(&bytes)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

fn set_soft_nofile(n: libc::rlim_t) -> libc::rlim_t {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed to them.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        let old = limit.rlim_cur;
        limit.rlim_cur = n.min(limit.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
        old
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_accept_loop_survives_running_out_of_file_descriptors() {
    // Plain HTTP, no tokens; the etcd address is a port nothing listens on.
    let config = Config::new(vec!["http://127.0.0.1:1".into()]);
    let listener = seams::Network::listen(&seams::Tcp, "127.0.0.1:0").unwrap();
    let running = start(listener, config).await.unwrap();
    let addr: std::net::SocketAddr = running.addr.parse().unwrap();
    let mut first = TcpStream::connect(addr).await.unwrap();
    first.write_all(VERSION).await.unwrap();
    assert!(status_line(&mut first).await.contains("200"));

    // Client sockets are made now, while descriptors are left; connecting them later
    // needs none.
    let sockets: Vec<TcpSocket> = (0..4).map(|_| TcpSocket::new_v4().unwrap()).collect();

    // `ulimit -n 256`, then every descriptor left is taken.
    let old = set_soft_nofile(256);
    let mut hoard = Vec::new();
    loop {
        match File::open("/dev/null") {
            Ok(f) => hoard.push(f),
            Err(e) if e.raw_os_error() == Some(libc::EMFILE) => break,
            Err(e) => panic!("opening /dev/null: {e}"),
        }
        assert!(hoard.len() < 100_000, "RLIMIT_NOFILE did not bind");
    }

    // Connections arrive: the kernel completes them, the server's accept() fails.
    let mut waiting = Vec::new();
    for socket in sockets {
        let mut stream = socket
            .connect(addr)
            .await
            .expect("the server still listens");
        stream
            .write_all(VERSION)
            .await
            .expect("the server still listens");
        waiting.push(stream);
    }
    let deadline = Instant::now() + DEADLINE;
    while running.accept_errors() == 0 {
        assert!(Instant::now() < deadline, "accept() never failed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Descriptors come back: the waiting connections are served, and new ones too.
    drop(hoard);
    set_soft_nofile(old);
    for stream in &mut waiting {
        let line = status_line(stream).await;
        assert!(line.contains("200"), "{line:?}");
    }
    let mut fresh = TcpStream::connect(addr).await.unwrap();
    fresh.write_all(VERSION).await.unwrap();
    assert!(status_line(&mut fresh).await.contains("200"));
}
