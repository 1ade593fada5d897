//! A node's container runtime — what `docker ps`, `docker stop` and `docker start` act
//! on.
//!
//! A container here is a command line, not an image: `etcd --name etcd2 ...` starts a
//! real kvstore member, `kube-apiserver --etcd-servers=...` a real apiserver, and so on
//! ([`crate::process`]). Stopping a container stops that component the way killing its
//! process would: its sockets close, its data directory stays. Starting it again runs
//! the same command line, so an etcd member comes back from its data on disk.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use jiff::Timestamp;

use crate::error::{Error, Result};
use crate::node::NodeContext;
use crate::process::{self, Process};

/// What `docker run` is given.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    /// Entrypoint and arguments together.
    pub command: Vec<String>,
}

/// A container's state.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    Running { since: Timestamp },
    Exited { code: i32, at: Timestamp },
}

/// Its output, shared with the process writing it.
pub type Logs = Arc<Mutex<Vec<String>>>;

struct Container {
    id: String,
    spec: ContainerSpec,
    created: Timestamp,
    state: State,
    restarts: u32,
    logs: Logs,
    process: Option<Process>,
}

/// One line of `docker ps`.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub image: String,
    pub command: String,
    pub created: Timestamp,
    pub state: State,
    pub restarts: u32,
}

/// A node's containers.
pub struct Runtime {
    node: Arc<NodeContext>,
    containers: tokio::sync::Mutex<BTreeMap<String, Container>>,
}

impl Runtime {
    pub fn new(node: Arc<NodeContext>) -> Arc<Runtime> {
        Arc::new(Runtime {
            node,
            containers: tokio::sync::Mutex::new(BTreeMap::new()),
        })
    }

    /// `docker run`: creates and starts a container.
    pub async fn run(&self, spec: ContainerSpec) -> Result<String> {
        let mut containers = self.containers.lock().await;
        if containers.contains_key(&spec.name) {
            return Err(Error::Conflict(format!(
                "Conflict. The container name \"/{}\" is already in use",
                spec.name
            )));
        }
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        let logs: Logs = Arc::default();
        let now = api::time::now(&*self.node.clock);
        let process = process::start(&self.node, &spec.command, logs.clone()).await;
        let state = match &process {
            Ok(_) => State::Running { since: now },
            Err(_) => State::Exited { code: 1, at: now },
        };
        if let Err(e) = &process {
            logs.lock().expect("logs lock").push(format!("error: {e}"));
        }
        containers.insert(
            spec.name.clone(),
            Container {
                id: id.clone(),
                spec,
                created: now,
                state,
                restarts: 0,
                logs,
                process: process.ok(),
            },
        );
        Ok(id)
    }

    /// `docker stop NAME`.
    pub async fn stop(&self, name: &str) -> Result<()> {
        let mut containers = self.containers.lock().await;
        let c = containers.get_mut(name).ok_or_else(|| no_such(name))?;
        if let Some(p) = c.process.take() {
            p.stop().await;
        }
        if matches!(c.state, State::Running { .. }) {
            c.state = State::Exited {
                code: 0,
                at: api::time::now(&*self.node.clock),
            };
        }
        Ok(())
    }

    /// `docker start NAME`: the same command line again.
    pub async fn start(&self, name: &str) -> Result<()> {
        let mut containers = self.containers.lock().await;
        let c = containers.get_mut(name).ok_or_else(|| no_such(name))?;
        if matches!(c.state, State::Running { .. }) {
            return Ok(());
        }
        let process = process::start(&self.node, &c.spec.command, c.logs.clone()).await?;
        c.process = Some(process);
        c.state = State::Running {
            since: api::time::now(&*self.node.clock),
        };
        c.restarts += 1;
        Ok(())
    }

    /// Stops and forgets a container (`docker rm -f`).
    pub async fn remove(&self, name: &str) -> Result<()> {
        self.stop(name).await?;
        self.containers.lock().await.remove(name);
        Ok(())
    }

    /// Every container, running or not (`docker ps -a`).
    pub async fn list(&self) -> Vec<ContainerInfo> {
        let mut out = Vec::new();
        for c in self.containers.lock().await.values_mut() {
            // A process that ended by itself (a finished `sleep`, a crash) shows Exited.
            if let Some(code) = c.process.as_ref().and_then(Process::exit_code) {
                c.process = None;
                c.state = State::Exited {
                    code,
                    at: api::time::now(&*self.node.clock),
                };
            }
            out.push(ContainerInfo {
                id: c.id.clone(),
                name: c.spec.name.clone(),
                image: c.spec.image.clone(),
                command: c.spec.command.join(" "),
                created: c.created,
                state: c.state.clone(),
                restarts: c.restarts,
            });
        }
        out
    }

    /// One container's state, if it exists.
    pub async fn info(&self, name: &str) -> Option<ContainerInfo> {
        self.list().await.into_iter().find(|c| c.name == name)
    }

    /// `docker logs NAME`.
    pub async fn logs(&self, name: &str) -> Result<Vec<String>> {
        let containers = self.containers.lock().await;
        let c = containers.get(name).ok_or_else(|| no_such(name))?;
        let lines = c.logs.lock().expect("logs lock").clone();
        Ok(lines)
    }

    /// Stops every container (the node powers off).
    pub async fn stop_all(&self) {
        let names: Vec<String> = self.containers.lock().await.keys().cloned().collect();
        for name in names {
            let _ = self.stop(&name).await;
        }
    }
}

fn no_such(name: &str) -> Error {
    Error::NotFound(format!(
        "Error response from daemon: No such container: {name}"
    ))
}
