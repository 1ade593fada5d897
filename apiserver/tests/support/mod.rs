//! A 3-member kvstore and one apiserver on loopback, and the real `kubectl` pointed at
//! it through a kubeconfig written here.
#![allow(dead_code)] // each test binary uses a different part

/// Finding kubectl, or skipping visibly: one copy for the workspace's tests.
#[path = "../../../kvstore/tests/support/tools.rs"]
pub mod tools;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use apiserver::pki::Ca;
use apiserver::server::{start_local, Running};
use client_go::kubeconfig::Kubeconfig;
use kvstore::server::local::{LocalCluster, Timing};

pub struct Env {
    pub etcd: LocalCluster,
    pub apiserver: Running,
    pub ca: Ca,
    pub kubeconfig: PathBuf,
    pub home: PathBuf,
    pub dir: tempfile::TempDir,
}

/// What a command printed.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// The admin's bearer token in the test cluster's token file.
pub const ADMIN_TOKEN: &str = "admin-token-0123456789";

impl Env {
    /// etcd ×3 and one apiserver serving HTTPS with a CA made here and the admin token.
    pub async fn start() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let etcd = LocalCluster::start(&dir.path().join("etcd"), 3, Timing::default())
            .await
            .unwrap();
        let ca = Ca::generate().unwrap();
        let (apiserver, ca) = start_apiserver(&etcd, ca).await;
        let kubeconfig = dir.path().join("kubeconfig");
        let server = format!("https://{}", apiserver.addr);
        let config = Kubeconfig::new(
            "kubernetes",
            &server,
            &ca.cert_pem,
            "kubernetes-admin",
            ADMIN_TOKEN,
        );
        std::fs::write(&kubeconfig, config.to_yaml()).unwrap();
        // A fresh HOME: kubectl caches discovery there for hours.
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let env = Env {
            etcd,
            apiserver,
            ca,
            kubeconfig,
            home,
            dir,
        };
        // The namespaces the apiserver creates at start (asked through the API, not
        // kubectl: the API tests run where kubectl is not installed).
        let client = env.client(vec![env.url()]);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let answer = client
                .raw(
                    hyper::Method::GET,
                    "/api/v1/namespaces/kube-system",
                    "application/json",
                    None,
                )
                .await;
            if matches!(answer, Ok((200, _))) {
                break;
            }
            assert!(Instant::now() < deadline, "no kube-system: {answer:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        env
    }

    /// Another apiserver over the same etcd (a second control-plane node).
    pub async fn second_apiserver(&self) -> Running {
        self.apiserver_on("127.0.0.1:0").await
    }

    /// An apiserver over the same etcd on a given address (to restart one in place).
    pub async fn apiserver_on(&self, addr: &str) -> Running {
        let ca = Ca::load(&self.ca.cert_pem, &self.ca.key_pem).unwrap();
        let listener = seams::Network::listen(&seams::Tcp, addr).unwrap();
        start_apiserver_on(&self.etcd, ca, listener).await.0
    }

    /// A client of the API as the admin.
    pub fn client(&self, endpoints: Vec<String>) -> client_go::client::Client {
        client_go::client::Client::new(
            &seams::Host::real(),
            endpoints,
            Some(&self.ca.cert_pem),
            Some(ADMIN_TOKEN.into()),
        )
        .unwrap()
    }

    /// `https://127.0.0.1:port` of the first apiserver.
    pub fn url(&self) -> String {
        format!("https://{}", self.apiserver.addr)
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("kubectl");
        cmd.args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", &self.home)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    /// Runs `kubectl ARGS`.
    pub async fn kubectl(&self, args: &[&str]) -> Output {
        let out = self
            .command(args)
            .output()
            .await
            .expect("kubectl runs (the test checked it is on PATH)");
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs `kubectl ARGS` and requires success.
    pub async fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args).await;
        assert_eq!(out.code, 0, "kubectl {args:?}: {out:?}");
        out.stdout
    }

    /// Runs `kubectl ARGS` with `stdin` as its input (`apply -f -`).
    pub async fn ok_with_input(&self, args: &[&str], stdin: &str) -> String {
        use tokio::io::AsyncWriteExt;
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.as_bytes()).await.unwrap();
        drop(input);
        let out = child.wait_with_output().await.unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "kubectl {args:?}: {stderr}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `kubectl ARGS` until `done` holds for its output (deadline 20 s).
    pub async fn until(&self, args: &[&str], done: impl Fn(&Output) -> bool) -> Output {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = self.kubectl(args).await;
            if done(&out) {
                return out;
            }
            assert!(
                Instant::now() < deadline,
                "kubectl {args:?} never got there: {out:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Starts `kubectl ARGS` in the background with its stdout piped (`get -w`).
    pub fn spawn(&self, args: &[&str]) -> tokio::process::Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

/// An apiserver over `etcd`, serving HTTPS for 127.0.0.1 with a certificate from `ca`.
async fn start_apiserver(etcd: &LocalCluster, ca: Ca) -> (Running, Ca) {
    let listener = seams::Network::listen(&seams::Tcp, "127.0.0.1:0").unwrap();
    start_apiserver_on(etcd, ca, listener).await
}

async fn start_apiserver_on(
    etcd: &LocalCluster,
    ca: Ca,
    listener: Box<dyn seams::net::Listener>,
) -> (Running, Ca) {
    let tokens = [(ADMIN_TOKEN.to_string(), "kubernetes-admin".to_string())].into();
    let running = start_local(listener, etcd.endpoints(), &ca, &[], tokens)
        .await
        .unwrap();
    (running, ca)
}
/// A stand-in kubelet: answers `/containerLogs/...` with two ping lines, echoing the
/// path and query it was asked for.
pub async fn fake_kubelet() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let service = hyper::service::service_fn(
                |req: hyper::Request<hyper::body::Incoming>| async move {
                    let text = format!(
                        "asked {}\n64 bytes from 8.8.8.8: seq=0 ttl=117 time=1.1 ms\n",
                        req.uri()
                    );
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(
                        http_body_util::Full::new(bytes::Bytes::from(text)),
                    ))
                },
            );
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), service),
            );
        }
    });
    addr
}
