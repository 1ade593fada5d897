//! A test apiserver whose configuration each test chooses (limits, tokens), over a
//! one-member kvstore, and raw HTTP/1.1 over TLS on real sockets: for the requests a
//! polite client never sends (dribbled headers, short bodies, odd paths, odd schemes).
#![allow(dead_code)] // each test binary uses a different part

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apiserver::pki::Ca;
use apiserver::server::{start, Config, Running};
use kvstore::server::local::{LocalCluster, Timing};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// The admin's bearer token.
pub const TOKEN: &str = "admin-token-0123456789";

/// How long anything may take before the test calls it a hang. Generous: it only
/// bounds a hang, it measures nothing.
pub const DEADLINE: Duration = Duration::from_secs(30);

pub struct Server {
    pub running: Running,
    pub etcd: LocalCluster,
    pub ca: Ca,
    connector: tokio_rustls::TlsConnector,
    _dir: tempfile::TempDir,
}

/// One HTTP response: status code, head and body as text.
#[derive(Debug)]
pub struct Reply {
    pub code: u16,
    pub head: String,
    pub body: String,
}

impl Reply {
    /// The body as JSON (a `Status` for errors); `null` when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_default()
    }

    /// A response header's value.
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    /// `(code, reason)` of a `Status` body.
    pub fn status(&self) -> (u16, String) {
        let s = self.json();
        assert_eq!(s["kind"], "Status", "not a Status: {self:?}");
        (self.code, s["reason"].as_str().unwrap_or("").to_string())
    }
}

impl Server {
    /// etcd (one member) and an apiserver over it, HTTPS with a CA made here and the
    /// admin token; `configure` changes the configuration first. Returns once the
    /// apiserver has created its namespaces.
    pub async fn start(configure: impl FnOnce(&mut Config)) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let etcd = LocalCluster::start(&dir.path().join("etcd"), 1, Timing::default())
            .await
            .unwrap();
        let ca = Ca::generate().unwrap();
        // The default etcd timeout (5 s): a loaded machine must not fail a health check.
        let mut config = Config::new(etcd.endpoints());
        config.tls = Some(
            ca.issue_serving("kube-apiserver", &["127.0.0.1".to_string()])
                .unwrap(),
        );
        config.tokens = [(TOKEN.to_string(), "kubernetes-admin".to_string())].into();
        configure(&mut config);
        let listener = seams::Network::listen(&seams::Tcp, "127.0.0.1:0").unwrap();
        let running = start(listener, config).await.unwrap();
        let tls = client_go::tls::client_config(&ca.cert_pem).unwrap();
        let server = Server {
            running,
            etcd,
            ca,
            connector: tokio_rustls::TlsConnector::from(Arc::new(tls)),
            _dir: dir,
        };
        server
            .until("the apiserver created its namespaces", || async {
                server
                    .call("GET", "/api/v1/namespaces/kube-node-lease", "", b"")
                    .await
                    .code
                    == 200
            })
            .await;
        server
    }

    pub fn addr(&self) -> SocketAddr {
        self.running.addr.parse().expect("a TCP address")
    }

    /// A new TCP connection.
    pub async fn tcp(&self) -> TcpStream {
        let tcp = TcpStream::connect(self.addr()).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        tcp
    }

    /// A new TLS connection, handshake done.
    pub async fn tls(&self) -> TlsStream<TcpStream> {
        self.try_tls().await.expect("the TLS handshake succeeded")
    }

    /// A new TLS connection, or `None` if the server closed it during the handshake.
    pub async fn try_tls(&self) -> Option<TlsStream<TcpStream>> {
        let tcp = self.tcp().await;
        let name = ServerName::try_from("127.0.0.1").unwrap();
        tokio::time::timeout(DEADLINE, self.connector.connect(name, tcp))
            .await
            .expect("the TLS handshake finished in time")
            .ok()
    }

    /// Sends raw bytes on a new TLS connection and reads the answer to its end (the
    /// request should say `Connection: close`).
    pub async fn send(&self, raw: &[u8]) -> Reply {
        let mut tls = self.tls().await;
        tls.write_all(raw).await.unwrap();
        read_to_end(&mut tls).await
    }

    /// `GET path`, with `authorization` as the Authorization header when given.
    pub async fn get(&self, path: &str, authorization: Option<&str>) -> Reply {
        let mut headers = Vec::new();
        if let Some(a) = authorization {
            headers.push(("Authorization", a));
        }
        self.send(&request("GET", path, &headers, b"")).await
    }

    /// A request as the admin, with a body of `content_type` (none when empty).
    pub async fn call(&self, method: &str, path: &str, content_type: &str, body: &[u8]) -> Reply {
        let bearer = format!("Bearer {TOKEN}");
        let mut headers = vec![("Authorization", bearer.as_str())];
        if !content_type.is_empty() {
            headers.push(("Content-Type", content_type));
        }
        self.send(&request(method, path, &headers, body)).await
    }

    /// Waits until `done` holds (deadline [`DEADLINE`]).
    pub async fn until<F, Fut>(&self, what: &str, done: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + DEADLINE;
        while !done().await {
            assert!(Instant::now() < deadline, "never: {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A raw HTTP/1.1 request that closes its connection after the answer.
pub fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut raw = head.into_bytes();
    raw.extend_from_slice(body);
    raw
}

/// Reads a response to the end of the connection (deadline [`DEADLINE`]). A
/// connection closed without a byte gives code 0.
pub async fn read_to_end<S: AsyncRead + Unpin>(stream: &mut S) -> Reply {
    let mut bytes = Vec::new();
    let read = tokio::time::timeout(DEADLINE, async {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "no end of the answer in time: {:?}",
        parse(&bytes)
    );
    parse(&bytes)
}

/// Reads exactly one response (by its Content-Length), leaving the connection open.
pub async fn read_one<S: AsyncRead + Unpin>(stream: &mut S) -> Reply {
    let mut bytes = Vec::new();
    let read = tokio::time::timeout(DEADLINE, async {
        let mut buf = [0u8; 16 * 1024];
        loop {
            if let Some(end) = find(&bytes, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&bytes[..end]).to_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if bytes.len() >= end + 4 + length {
                    return true;
                }
            }
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer in time: {:?}", parse(&bytes));
    parse(&bytes)
}

/// Whether the server closes `stream` (EOF or an error on reading) before the deadline;
/// whatever it sends first is read and ignored.
pub async fn is_closed_by_server<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> bool {
    tokio::time::timeout(DEADLINE, async {
        let mut buf = [0u8; 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn parse(bytes: &[u8]) -> Reply {
    let (head, body) = match find(bytes, b"\r\n\r\n") {
        Some(end) => (&bytes[..end], &bytes[end + 4..]),
        None => (bytes, &b""[..]),
    };
    let head = String::from_utf8_lossy(head).into_owned();
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Reply {
        code,
        head,
        body: String::from_utf8_lossy(body).into_owned(),
    }
}
