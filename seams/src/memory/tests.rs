use super::pipe::Dir;
use super::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Whether `fut` is still waiting once every task is idle (the paused clock then
/// jumps the second at once).
async fn still_pending<F: Future>(fut: F) -> bool {
    tokio::time::timeout(Duration::from_secs(1), fut)
        .await
        .is_err()
}

/// `fut`'s output, or a failure (not a hang) if nothing ever wakes it.
async fn soon<F: Future>(fut: F) -> F::Output {
    let waited = tokio::time::timeout(Duration::from_secs(60), fut).await;
    waited.expect("never woken")
}

async fn pair(net: &dyn Network, listener: &mut Box<dyn Listener>) -> (BoxStream, Accepted) {
    let addr = listener.local_addr();
    let (dialed, accepted) = tokio::join!(net.connect(&addr), listener.accept());
    (dialed.unwrap(), accepted.unwrap())
}

/// How many readers wait on the network, and how many of them on a cut link.
fn waiting_readers(net: &MemoryNetwork) -> (usize, usize) {
    let state = lock(&net.shared);
    let dirs = state.conns.values().flat_map(|c| c.dirs.iter());
    let waiting: Vec<&Dir> = dirs.filter(|d| d.reader.is_some()).collect();
    (waiting.len(), waiting.iter().filter(|d| d.held).count())
}

async fn read_string(stream: &mut BoxStream, n: usize) -> String {
    let mut buf = vec![0; n];
    stream.read_exact(&mut buf).await.unwrap();
    String::from_utf8(buf).unwrap()
}

#[tokio::test(start_paused = true)]
async fn listens_connects_and_echoes() {
    let net = MemoryNetwork::new();
    let mut listener = net.listen("10.0.0.11:2380").unwrap();
    assert_eq!(listener.local_addr(), "10.0.0.11:2380");
    let from = net.host("10.0.0.12");
    let (mut client, accepted) = pair(&*from, &mut listener).await;
    assert_eq!(accepted.peer, "10.0.0.12:50000");
    let mut server = accepted.stream;
    client.write_all(b"vote").await.unwrap();
    assert_eq!(read_string(&mut server, 4).await, "vote");
    server.write_all(b"granted").await.unwrap();
    assert_eq!(read_string(&mut client, 7).await, "granted");

    let (_, second) = pair(&*from, &mut listener).await;
    assert_eq!(second.peer, "10.0.0.12:50001", "ports count up per host");
    let (_, anonymous) = pair(&*net, &mut listener).await;
    assert_eq!(anonymous.peer, "0.0.0.0:50000");
}

#[tokio::test(start_paused = true)]
async fn connections_are_accepted_in_the_order_they_were_made() {
    let net = MemoryNetwork::new();
    let mut listener = net.listen("10.0.0.11:6443").unwrap();
    for ip in ["10.0.0.13", "10.0.0.12", "10.0.0.14"] {
        net.host(ip).connect("10.0.0.11:6443").await.unwrap();
    }
    let mut peers = Vec::new();
    for _ in 0..3 {
        peers.push(listener.accept().await.unwrap().peer);
    }
    assert_eq!(
        peers,
        ["10.0.0.13:50000", "10.0.0.12:50000", "10.0.0.14:50000"]
    );
}

#[tokio::test(start_paused = true)]
async fn nobody_listening_is_refused_at_once() {
    let net = MemoryNetwork::new();
    let err = net.connect("10.0.0.11:6443").await.err().expect("refused");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    assert_eq!(err.to_string(), "10.0.0.11:6443: connection refused");
    let err = net.connect("no port").await.err().expect("bad address");
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

/// No runtime is needed to listen, as with real sockets.
#[test]
fn an_address_is_in_use_until_its_listener_is_dropped() {
    let net = MemoryNetwork::new();
    let first = net.listen("10.0.0.11:6443").unwrap();
    let err = net.listen("10.0.0.11:6443").err().expect("in use");
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    assert!(err.to_string().contains("address already in use"), "{err}");
    let other_host = net.listen("10.0.0.12:6443").unwrap();
    drop(first);
    let again = net.listen("10.0.0.11:6443").unwrap();
    drop((again, other_host));
    assert!(net.listen("10.0.0.11").is_err(), "no port");
}

#[test]
fn port_zero_counts_up_per_host_past_ports_in_use() {
    let net = MemoryNetwork::new();
    let taken = net.listen("10.0.0.11:40001").unwrap();
    let a = net.listen("10.0.0.11:0").unwrap();
    let b = net.listen("10.0.0.11:0").unwrap();
    let c = net.listen("10.0.0.12:0").unwrap();
    assert_eq!(a.local_addr(), "10.0.0.11:40000");
    assert_eq!(b.local_addr(), "10.0.0.11:40002");
    assert_eq!(c.local_addr(), "10.0.0.12:40000");
    drop(taken);
}

#[tokio::test(start_paused = true)]
async fn a_writer_waits_for_its_reader_at_64_kib() {
    let net = MemoryNetwork::new();
    let mut listener = net.listen("10.0.0.11:2379").unwrap();
    let (mut client, accepted) = pair(&*net, &mut listener).await;
    let mut server = accepted.stream;
    let data: Vec<u8> = (0..3 * WINDOW).map(|i| (i % 251) as u8).collect();
    assert_eq!(
        client.write(&data).await.unwrap(),
        WINDOW,
        "a window's worth"
    );
    assert!(still_pending(client.write(&data[WINDOW..])).await, "full");

    let rest = data[WINDOW..].to_vec();
    let writer = tokio::spawn(async move {
        client.write_all(&rest).await.unwrap();
        client
    });
    let mut got = vec![0; data.len()];
    soon(server.read_exact(&mut got)).await.unwrap();
    assert!(got == data, "every byte, in order");
    soon(writer).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn shutdown_and_drop_are_eof_at_the_peer() {
    let net = MemoryNetwork::new();
    let mut listener = net.listen("10.0.0.11:2379").unwrap();
    let (mut client, accepted) = pair(&*net, &mut listener).await;
    let mut server = accepted.stream;
    client.write_all(b"last").await.unwrap();
    client.shutdown().await.unwrap();
    let mut got = Vec::new();
    server.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"last", "the bytes, then EOF");
    let err = client.write_all(b"more").await.expect_err("shut down");
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);

    server.write_all(b"reply").await.unwrap(); // the other direction still flows
    drop(server);
    let mut got = Vec::new();
    client.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"reply");

    let (mut client, accepted) = pair(&*net, &mut listener).await;
    drop(accepted);
    let err = client.write_all(b"x").await.expect_err("peer gone");
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
}

#[tokio::test(start_paused = true)]
async fn a_partition_holds_bytes_until_it_is_repaired() {
    let net = MemoryNetwork::new();
    let mut listener = net.listen("10.0.0.11:2380").unwrap();
    let (mut client, accepted) = pair(&*net.host("10.0.0.12"), &mut listener).await;
    let mut server = accepted.stream;
    net.partition("10.0.0.11", "10.0.0.12");
    client.write_all(b"append").await.unwrap();
    server.write_all(b"ack").await.unwrap();
    let mut buf = [0; 3];
    assert!(still_pending(server.read_exact(&mut buf)).await, "held");
    assert!(still_pending(client.read_exact(&mut buf)).await, "held");

    let reader = tokio::spawn(async move { read_string(&mut server, 6).await });
    tokio::task::yield_now().await;
    // The reader waits on the cut (and so, still parked, does the client's read
    // that was given up above).
    assert_eq!(waiting_readers(&net), (2, 2));
    net.repair("10.0.0.12", "10.0.0.11");
    assert_eq!(soon(reader).await.unwrap(), "append", "woken by the repair");
    assert_eq!(read_string(&mut client, 3).await, "ack");
}

#[tokio::test(start_paused = true)]
async fn a_one_way_partition_lets_the_other_direction_through() {
    let net = MemoryNetwork::new();
    let mut listener = net.listen("10.0.0.11:2380").unwrap();
    let (mut client, accepted) = pair(&*net.host("10.0.0.12"), &mut listener).await;
    let mut server = accepted.stream;
    net.partition_oneway("10.0.0.12", "10.0.0.11");
    client.write_all(b"lost?").await.unwrap();
    server.write_all(b"fine").await.unwrap();
    assert_eq!(read_string(&mut client, 4).await, "fine");
    let mut buf = [0; 5];
    assert!(still_pending(server.read_exact(&mut buf)).await);
    net.repair_all();
    assert_eq!(read_string(&mut server, 5).await, "lost?");
}

#[tokio::test(start_paused = true)]
async fn a_dial_across_a_partition_waits_for_the_repair() {
    let net = MemoryNetwork::new();
    let mut listener = net.listen("10.0.0.11:2380").unwrap();
    net.partition("10.0.0.11", "10.0.0.12");
    let from = net.host("10.0.0.12");
    assert!(still_pending(from.connect("10.0.0.11:2380")).await);
    assert!(
        still_pending(from.connect("10.0.0.11:9999")).await,
        "no SYN, no refusal"
    );
    assert!(
        net.connect("10.0.0.11:2380").await.is_ok(),
        "the anonymous host is never cut off"
    );
    listener.accept().await.unwrap();

    let dial = tokio::spawn(from.connect("10.0.0.11:2380"));
    tokio::task::yield_now().await;
    assert_eq!(
        lock(&net.shared).dials.len(),
        1,
        "the dial waits on the cut"
    );
    net.repair("10.0.0.11", "10.0.0.12");
    let mut client = soon(dial).await.unwrap().unwrap();
    let mut server = listener.accept().await.unwrap().stream;
    client.write_all(b"hi").await.unwrap();
    assert_eq!(read_string(&mut server, 2).await, "hi");
    assert!(
        lock(&net.shared).dials.is_empty(),
        "abandoned dials are forgotten"
    );
}

#[tokio::test(start_paused = true)]
async fn a_crash_resets_both_ends_and_closes_the_hosts_listeners() {
    let net = MemoryNetwork::new();
    let mut listener = net.listen("10.0.0.11:2380").unwrap();
    let mut elsewhere = net.listen("10.0.0.13:2380").unwrap();
    let (mut client, accepted) = pair(&*net.host("10.0.0.12"), &mut listener).await;
    let mut server = accepted.stream;
    let (mut bystander, _kept) = pair(&*net.host("10.0.0.12"), &mut elsewhere).await;
    let reader = tokio::spawn(async move {
        let mut buf = [0; 1];
        client.read(&mut buf).await
    });
    let accepting = tokio::spawn(async move {
        let first = listener.accept().await.map(|_| ());
        (first, still_pending(listener.accept()).await)
    });
    tokio::task::yield_now().await;
    assert_eq!(waiting_readers(&net), (1, 0));

    net.crash("10.0.0.11");
    let err = soon(reader).await.unwrap().expect_err("reset");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "the far end");
    let err = server.write_all(b"x").await.expect_err("reset");
    assert_eq!(
        err.kind(),
        io::ErrorKind::ConnectionReset,
        "the crashed end"
    );
    let (first, then_pending) = soon(accepting).await.unwrap();
    assert_eq!(
        first.expect_err("closed").kind(),
        io::ErrorKind::ConnectionAborted
    );
    assert!(
        then_pending,
        "a closed listener reports it once, then waits"
    );
    assert!(net.listen("10.0.0.11:2380").is_ok(), "the address is free");
    bystander.write_all(b"still up").await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_dropped_listener_resets_what_it_never_accepted() {
    let net = MemoryNetwork::new();
    let listener = net.listen("10.0.0.11:2380").unwrap();
    let mut client = net.connect("10.0.0.11:2380").await.unwrap();
    drop(listener);
    let mut buf = [0; 1];
    let err = client.read(&mut buf).await.expect_err("reset");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
}

/// A free loopback port, found by binding port 0 and letting it go.
fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap().port()
}

#[tokio::test]
async fn bridged_listeners_accept_real_tcp_too() {
    let net = MemoryNetwork::new();
    let addr = format!("127.0.0.1:{}", free_port());
    let mut before = net.listen(&addr).unwrap();
    net.bridge_tcp().unwrap();
    let mut after = net.listen("127.0.0.1:0").unwrap();
    assert!(
        !after.local_addr().ends_with(":0"),
        "{}",
        after.local_addr()
    );

    for listener in [&mut before, &mut after] {
        let addr = listener.local_addr();
        let (dialed, accepted) =
            tokio::join!(tokio::net::TcpStream::connect(&addr), listener.accept());
        let (mut tcp, accepted) = (dialed.unwrap(), accepted.unwrap());
        assert!(accepted.peer.starts_with("127.0.0.1:"), "{}", accepted.peer);
        let mut server = accepted.stream;
        tcp.write_all(b"GET /").await.unwrap();
        assert_eq!(read_string(&mut server, 5).await, "GET /");
        server.write_all(b"200").await.unwrap();
        let mut buf = [0; 3];
        tcp.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"200");
        // Dials through the network itself stay in memory.
        let (_, accepted) = pair(&*net.host("10.0.0.12"), listener).await;
        assert!(
            accepted.peer.starts_with("10.0.0.12:5000"),
            "{}",
            accepted.peer
        );
    }

    // A crash closes the host's real connections too.
    let (dialed, accepted) = tokio::join!(
        tokio::net::TcpStream::connect(after.local_addr()),
        after.accept()
    );
    let (mut tcp, mut server) = (dialed.unwrap(), accepted.unwrap().stream);
    net.crash("127.0.0.1");
    let err = server.write_all(b"x").await.expect_err("reset");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
    let mut rest = Vec::new();
    let _ = tcp.read_to_end(&mut rest).await; // EOF or reset: closed either way
    assert!(rest.is_empty());

    // Dropping a listener closes its socket.
    drop(before);
    let err = tokio::net::TcpStream::connect(&addr)
        .await
        .expect_err("closed");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
}

/// A reader that was waiting before the link was cut (a watch, idle) is woken by the
/// repair for what was written meanwhile: the bug the whole-cluster fault tests found
/// (a kubelet's watch that never saw its pods after a one-way partition healed).
#[tokio::test]
async fn a_reader_parked_before_a_cut_gets_what_was_written_during_it() {
    let net = MemoryNetwork::new();
    let mut listener = net.host("10.0.0.1").listen("10.0.0.1:80").unwrap();
    let (accepted, dialed) = tokio::join!(
        listener.accept(),
        net.host("10.0.0.3").connect("10.0.0.1:80")
    );
    let (mut server, mut client) = (accepted.unwrap().stream, dialed.unwrap());
    let reader = tokio::spawn(async move {
        let mut got = [0; 5];
        client.read_exact(&mut got).await.map(|_| got)
    });
    tokio::task::yield_now().await; // the reader parks on an empty pipe
    net.partition_oneway("10.0.0.1", "10.0.0.3");
    server.write_all(b"event").await.unwrap();
    tokio::task::yield_now().await;
    assert!(!reader.is_finished(), "held while the link is cut");
    net.repair_all();
    let got = tokio::time::timeout(Duration::from_secs(10), reader).await;
    assert_eq!(
        &got.expect("woken by the repair").unwrap().unwrap(),
        b"event"
    );
}

/// A server's accept loop is already waiting when the network goes live (the
/// simulator's `--keep`): the bridge wakes it, so it takes real TCP connections too.
#[tokio::test]
async fn an_accept_waiting_before_the_bridge_takes_real_tcp() {
    let net = MemoryNetwork::new();
    let addr = format!("127.0.0.1:{}", free_port());
    let mut listener = net.listen(&addr).unwrap();
    let server = tokio::spawn(async move {
        let mut stream = listener.accept().await.unwrap().stream;
        stream.write_all(b"hello").await.unwrap();
    });
    tokio::task::yield_now().await; // the accept parks, before any TCP socket exists
    net.bridge_tcp().unwrap();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut got = [0; 5];
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read_exact(&mut got)).await;
    assert!(
        read.is_ok(),
        "the waiting accept never saw the TCP connection"
    );
    assert_eq!(&got, b"hello");
    server.await.unwrap();
}

#[tokio::test]
async fn an_address_that_cannot_be_bridged_is_an_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let net = MemoryNetwork::new();
    let _existing = net.listen(&addr).unwrap();
    let err = net.bridge_tcp().expect_err("taken");
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    assert!(err.to_string().contains(&addr), "{err}");
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let err = net
        .listen(&other.local_addr().unwrap().to_string())
        .err()
        .expect("taken");
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    assert!(err.to_string().starts_with("bridging "), "{err}");
}

#[test]
fn bridging_needs_a_runtime() {
    let err = MemoryNetwork::new().bridge_tcp().expect_err("no runtime");
    assert!(err.to_string().contains("tokio runtime"), "{err}");
}

/// One busy run of a small cluster's traffic, as a transcript of what each side saw
/// and in what order.
async fn traffic() -> Vec<String> {
    let net = MemoryNetwork::new();
    let log = Arc::new(Mutex::new(Vec::new()));
    let note = |log: &Arc<Mutex<Vec<String>>>, line: String| {
        log.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(line)
    };
    let mut servers = Vec::new();
    for ip in ["10.0.0.11", "10.0.0.12", "10.0.0.13"] {
        let mut listener = net.listen(&format!("{ip}:2380")).unwrap();
        let log = log.clone();
        servers.push(tokio::spawn(async move {
            while let Ok(accepted) = listener.accept().await {
                let (log, peer) = (log.clone(), accepted.peer);
                let mut stream = accepted.stream;
                tokio::spawn(async move {
                    let mut buf = [0; 64];
                    while let Ok(n @ 1..) = stream.read(&mut buf).await {
                        note(&log, format!("{peer} sent {n}"));
                        if stream.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    note(&log, format!("{peer} gone"));
                });
            }
        }));
    }
    net.partition("10.0.0.11", "10.0.0.14");
    let mut clients = Vec::new();
    for (i, ip) in ["10.0.0.14", "10.0.0.15", "10.0.0.14", "10.0.0.16"]
        .iter()
        .enumerate()
    {
        let (from, log) = (net.host(ip), log.clone());
        clients.push(tokio::spawn(async move {
            for server in ["10.0.0.11", "10.0.0.12", "10.0.0.13"] {
                let mut stream = match from.connect(&format!("{server}:2380")).await {
                    Ok(stream) => stream,
                    Err(e) => {
                        note(&log, format!("{} -> {server}: {}", from.ip(), e.kind()));
                        continue;
                    }
                };
                for round in 0..3 {
                    let mut buf = vec![0; 3 + i];
                    let sent = stream.write_all(&buf).await;
                    let echoed = stream.read_exact(&mut buf).await.map(|_| ());
                    let ip = from.ip();
                    note(
                        &log,
                        format!("{ip} -> {server} #{round}: {sent:?} {echoed:?}"),
                    );
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    // The crash comes in the middle of the first round of talks with 10.0.0.11.
    let lines = || log.lock().unwrap_or_else(PoisonError::into_inner).len();
    while lines() < 6 {
        tokio::task::yield_now().await;
    }
    net.crash("10.0.0.11");
    net.repair_all();
    for client in clients {
        soon(client).await.unwrap();
    }
    servers.into_iter().for_each(|s| s.abort());
    let lines = log.lock().unwrap_or_else(PoisonError::into_inner).clone();
    lines
}

#[test]
fn the_same_traffic_gives_the_same_transcript() {
    let run = || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(traffic())
    };
    let first = run();
    assert!(first.len() > 10, "{first:#?}");
    assert!(first.iter().any(|l| l.contains("reset")), "{first:#?}");
    for _ in 0..5 {
        assert_eq!(run(), first);
    }
}
