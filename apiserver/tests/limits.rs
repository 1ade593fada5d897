//! Slow, idle and too many clients cannot wedge the apiserver (issue 12, item 5): a
//! connection past the cap is closed at once, a head or a body that does not arrive in
//! time ends its connection, and requests past the in-flight budget get a `429` to
//! retry, while everything else goes on being served. Real sockets, short timeouts
//! set in the server's configuration.

mod harness;

use std::time::{Duration, Instant};

use harness::{is_closed_by_server, read_one, read_to_end, request, Server, DEADLINE, TOKEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A keep-alive `GET /healthz` (which needs no token).
fn keep_alive_healthz() -> Vec<u8> {
    b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_are_closed_and_served_again_once_one_goes() {
    let server = Server::start(|c| c.limits.max_connections = 3).await;

    // Three connections, each shown to be served and kept open (one the harness used
    // to start the server may still be on its way out, so a refused one is retried).
    let mut held = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    while held.len() < 3 {
        assert!(Instant::now() < deadline, "could not hold 3 connections");
        let Some(mut tls) = server.try_tls().await else {
            continue;
        };
        if tls.write_all(&keep_alive_healthz()).await.is_err() {
            continue;
        }
        if read_one(&mut tls).await.code == 200 {
            held.push(tls);
        }
    }

    // A fourth is closed as soon as it is accepted.
    let mut fourth = server.tcp().await;
    assert!(
        is_closed_by_server(&mut fourth).await,
        "a connection past the cap was kept open"
    );

    // The held ones are still served; once one goes, a new connection is served.
    held[0].write_all(&keep_alive_healthz()).await.unwrap();
    assert_eq!(read_one(&mut held[0]).await.code, 200);
    held.pop();
    server
        .until("a connection is served again", || async {
            let Some(mut tls) = server.try_tls().await else {
                return false;
            };
            let raw = request("GET", "/healthz", &[], b"");
            tls.write_all(&raw).await.is_ok() && read_to_end(&mut tls).await.code == 200
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_clients_are_cut_off() {
    let server = Server::start(|c| c.limits.header_read_timeout = Duration::from_secs(1)).await;

    // A header dribbled one line every 200 ms: each line is progress, but the whole head
    // must arrive within the timeout.
    let mut tls = server.tls().await;
    tls.write_all(b"GET /version HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    let deadline = Instant::now() + DEADLINE;
    let mut buf = [0u8; 1024];
    loop {
        assert!(
            Instant::now() < deadline,
            "a dribbling client was never cut off"
        );
        if tls.write_all(b"X-Dribble: 1\r\n").await.is_err() {
            break;
        }
        match tokio::time::timeout(Duration::from_millis(200), tls.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => panic!(
                "a head never finished got an answer: {}",
                String::from_utf8_lossy(&buf[..n])
            ),
            Err(_) => {}
        }
    }

    // A connection that never starts its TLS handshake.
    let mut silent = server.tcp().await;
    assert!(
        is_closed_by_server(&mut silent).await,
        "a silent connection was kept open"
    );

    // A keep-alive connection left idle after its request.
    let mut idle = server.tls().await;
    idle.write_all(&keep_alive_healthz()).await.unwrap();
    assert_eq!(read_one(&mut idle).await.code, 200);
    assert!(
        is_closed_by_server(&mut idle).await,
        "an idle keep-alive connection was kept open"
    );

    // Meanwhile, and after, the server serves.
    assert_eq!(server.get("/healthz", None).await.code, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stops_short_gets_a_timeout_status() {
    let server = Server::start(|c| c.limits.body_read_timeout = Duration::from_secs(1)).await;
    let mut tls = server.tls().await;
    let head = format!(
        "POST /api/v1/namespaces/default/pods HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n{{\"a\":"
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    let reply = read_to_end(&mut tls).await;
    assert_eq!(reply.status(), (408, "Timeout".into()), "{reply:?}");
    assert!(
        reply.json()["message"]
            .as_str()
            .unwrap_or("")
            .contains("the request body"),
        "{reply:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_the_in_flight_budget_are_answered_429() {
    let server = Server::start(|c| {
        c.limits.max_mutating_requests_inflight = 1;
        c.limits.max_requests_inflight = 1;
    })
    .await;

    // A write whose body stops short holds the only mutating place while the server
    // waits for the rest of it.
    let mut slow = server.tls().await;
    let head = format!(
        "POST /api/v1/namespaces/default/pods HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n\
         Connection: close\r\nContent-Length: 100\r\n\r\n{{\"a\":"
    );
    slow.write_all(head.as_bytes()).await.unwrap();

    // Another write is refused at once, with a time to come back. (It is a body the
    // server would refuse anyway, so nothing is created before the slow one is in.)
    let deadline = Instant::now() + DEADLINE;
    let refused = loop {
        let reply = server
            .call(
                "POST",
                "/api/v1/namespaces/default/pods",
                "application/json",
                b"{}",
            )
            .await;
        if reply.code == 429 {
            break reply;
        }
        assert!(
            Instant::now() < deadline,
            "a second write was never refused: {reply:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(refused.status(), (429, "TooManyRequests".into()));
    assert_eq!(refused.header("retry-after").as_deref(), Some("1"));
    assert_eq!(refused.json()["details"]["retryAfterSeconds"], 1);

    // Reads have their own budget, and health checks are never refused.
    let reply = server.call("GET", "/api/v1/namespaces", "", b"").await;
    assert_eq!(reply.code, 200, "{reply:?}");
    assert_eq!(server.get("/healthz", None).await.code, 200);

    // The slow write finishes (with a body that is not JSON): its place is free again.
    slow.write_all(&[b' '; 95]).await.unwrap();
    assert_eq!(read_to_end(&mut slow).await.code, 400);
    server
        .until("writes are served again", || async {
            server
                .call(
                    "POST",
                    "/api/v1/namespaces/default/pods",
                    "application/json",
                    b"{}",
                )
                .await
                .code
                != 429
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_announced_over_3_mib_is_refused_before_it_is_read() {
    let server = Server::start(|_| {}).await;
    let mut tls = server.tls().await;
    let head = format!(
        "POST /api/v1/namespaces/default/pods HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n\
         Connection: close\r\nContent-Length: {}\r\n\r\n",
        4 * 1024 * 1024
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    // Not a byte of the body is sent: the answer comes from the head alone (the
    // connection stays open a while, for a client that goes on sending to read it).
    let reply = read_one(&mut tls).await;
    assert_eq!(
        reply.status(),
        (413, "RequestEntityTooLarge".into()),
        "{reply:?}"
    );
    assert_eq!(
        reply.json()["message"],
        "Request entity too large: limit is 3145728"
    );
}
