//! A 3-member kvstore and one apiserver on loopback, and the real `kubectl` pointed at
//! it through a kubeconfig written here.
#![allow(dead_code)] // each test binary uses a different part

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use apiserver::server::{start, Config, Running};
use kvstore::server::local::{LocalCluster, Timing};

pub struct Env {
    pub etcd: LocalCluster,
    pub apiserver: Running,
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

impl Env {
    pub async fn start() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let etcd = LocalCluster::start(&dir.path().join("etcd"), 3, Timing::default())
            .await
            .unwrap();
        let mut config = Config::new(etcd.endpoints());
        config.etcd_timeout = Duration::from_secs(2);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let apiserver = start(listener, config).await.unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: mini\n  cluster:\n    server: http://{}\n\
                 contexts:\n- name: mini\n  context:\n    cluster: mini\n    user: admin\n\
                 current-context: mini\nusers:\n- name: admin\n  user: {{}}\n",
                apiserver.addr
            ),
        )
        .unwrap();
        // A fresh HOME: kubectl caches discovery there for hours.
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let env = Env {
            etcd,
            apiserver,
            kubeconfig,
            home,
            dir,
        };
        // The namespaces the apiserver creates at start.
        env.until(&["get", "ns", "kube-system"], |o| o.code == 0)
            .await;
        env
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
            .expect("kubectl is installed (v1.32 on the course machines)");
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
