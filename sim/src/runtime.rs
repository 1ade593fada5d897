//! A node's container runtime — what `docker ps`, `docker stop` and `docker start` act
//! on, and what the kubelet drives.
//!
//! A container here is a command line, not an image: `etcd --name etcd2 ...` starts a
//! real kvstore member, `kube-apiserver --etcd-servers=...` a real apiserver, and so on.
//! Stopping a container stops that component the way killing its process would: its
//! sockets close, its data directory stays. Starting it again runs the same command
//! line, so an etcd member comes back from its data on disk.
//!
//! The runtime does not know what a command line means. It is given an [`Exec`] that
//! turns one into a running [`Process`] ([`crate::process`] is the node's), the way
//! dockerd hands a container to runc without knowing what the binary does. So the
//! dependencies go one way: `process` and [`crate::workloads`] depend on these two
//! traits, and the runtime on neither.
//!
//! As with Docker, making a container and starting it are two steps, and each can fail
//! on its own: `create` when the name is taken, `start` when the program cannot run.
//! The kubelet reports the first as `CreateContainerError` and the second as
//! `RunContainerError` ([`crate::kubelet`]). A container carries labels
//! (`io.kubernetes.pod.uid=...`) that say whose it is; the runtime only keeps them.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use seams::Clock;

use crate::error::{Error, Result};

/// A future that can be sent between threads (what the traits below return).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Something running for a container: a component or a simulated workload.
pub trait Process: Send {
    /// Stops it like `kill`: sockets close, files stay.
    fn stop(self: Box<Self>) -> BoxFuture<'static, ()>;
    /// The exit code of a process that ended by itself (a finished `sleep`, a crash).
    fn exit_code(&self) -> Option<i32>;
}

/// Starts what a command line says: the runtime's only way to run anything.
pub trait Exec: Send + Sync {
    /// Starts `command` (entrypoint plus arguments), its output going to `logs`. An
    /// error means it could not be started at all.
    fn start<'a>(
        &'a self,
        command: &'a [String],
        logs: Logs,
    ) -> BoxFuture<'a, Result<Box<dyn Process>>>;
}

/// What `docker create` is given.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    /// Entrypoint and arguments together.
    pub command: Vec<String>,
    /// `docker create --label`: the kubelet records whose container it is.
    pub labels: BTreeMap<String, String>,
}

/// A container's state.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// Made, never started (or its first start failed).
    Created,
    Running {
        since: Timestamp,
    },
    Exited {
        code: i32,
        at: Timestamp,
    },
}

/// Its output, shared with the process writing it.
pub type Logs = Arc<Mutex<Vec<String>>>;

/// Adds a line to `logs`.
pub fn log(logs: &Logs, line: impl Into<String>) {
    logs.lock().expect("logs lock").push(line.into());
}

struct Container {
    id: String,
    spec: ContainerSpec,
    created: Timestamp,
    state: State,
    restarts: u32,
    logs: Logs,
    process: Option<Box<dyn Process>>,
}

/// One line of `docker ps`, with the labels.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub image: String,
    pub command: String,
    pub labels: BTreeMap<String, String>,
    pub created: Timestamp,
    pub state: State,
    /// How often it was started again after it had run (Docker's `RestartCount`).
    pub restarts: u32,
}

/// A node's containers.
pub struct Runtime {
    clock: Arc<dyn Clock>,
    /// Where container IDs come from.
    rng: seams::Rng,
    exec: Arc<dyn Exec>,
    containers: tokio::sync::Mutex<BTreeMap<String, Container>>,
}

impl Runtime {
    /// The clock the runtime stamps containers with.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn new(clock: Arc<dyn Clock>, rng: seams::Rng, exec: Arc<dyn Exec>) -> Arc<Runtime> {
        Arc::new(Runtime {
            rng,
            clock,
            exec,
            containers: tokio::sync::Mutex::new(BTreeMap::new()),
        })
    }

    /// `docker create`: a container that does not run yet. Fails if the name is taken.
    pub async fn create(&self, spec: ContainerSpec) -> Result<String> {
        if spec.command.is_empty() {
            return Err(Error::Invalid(format!(
                "no command specified for container \"{}\"",
                spec.name
            )));
        }
        let mut containers = self.containers.lock().await;
        if let Some(other) = containers.get(&spec.name) {
            return Err(Error::Conflict(format!(
                "Conflict. The container name \"/{}\" is already in use by container \"{}\". \
                 You have to remove (or rename) that container to be able to reuse that name.",
                spec.name, other.id
            )));
        }
        let id = self.rng.hex(12);
        containers.insert(
            spec.name.clone(),
            Container {
                id: id.clone(),
                spec,
                created: api::time::now(&*self.clock),
                state: State::Created,
                restarts: 0,
                logs: Arc::default(),
                process: None,
            },
        );
        Ok(id)
    }

    /// `docker run`: creates and starts a container. A container whose start failed
    /// stays, `Created`, as Docker leaves it.
    pub async fn run(&self, spec: ContainerSpec) -> Result<String> {
        let name = spec.name.clone();
        let id = self.create(spec).await?;
        self.start(&name).await?;
        Ok(id)
    }

    /// `docker start NAME`: the same command line again. Starting a running container
    /// does nothing. If the program cannot start, the container keeps its state and its
    /// log says why.
    pub async fn start(&self, name: &str) -> Result<()> {
        let mut containers = self.containers.lock().await;
        let key = named(&containers, name)?;
        let c = containers.get_mut(&key).ok_or_else(|| no_such(name))?;
        if matches!(c.state, State::Running { .. }) {
            return Ok(());
        }
        let process = match self.exec.start(&c.spec.command, c.logs.clone()).await {
            Ok(p) => p,
            Err(e) => {
                log(&c.logs, format!("error: {e}"));
                return Err(e);
            }
        };
        c.process = Some(process);
        if matches!(c.state, State::Exited { .. }) {
            c.restarts += 1;
        }
        c.state = State::Running {
            since: api::time::now(&*self.clock),
        };
        Ok(())
    }

    /// `docker stop NAME`.
    pub async fn stop(&self, name: &str) -> Result<()> {
        let mut containers = self.containers.lock().await;
        let key = named(&containers, name)?;
        let c = containers.get_mut(&key).ok_or_else(|| no_such(name))?;
        if let Some(p) = c.process.take() {
            p.stop().await;
        }
        if matches!(c.state, State::Running { .. }) {
            c.state = State::Exited {
                code: 0,
                at: api::time::now(&*self.clock),
            };
        }
        Ok(())
    }

    /// Stops and forgets a container (`docker rm -f`).
    pub async fn remove(&self, name: &str) -> Result<()> {
        self.stop(name).await?;
        let mut containers = self.containers.lock().await;
        let key = named(&containers, name)?;
        containers.remove(&key);
        Ok(())
    }

    /// Every container, running or not (`docker ps -a`).
    pub async fn list(&self) -> Vec<ContainerInfo> {
        let mut out = Vec::new();
        for c in self.containers.lock().await.values_mut() {
            // A process that ended by itself (a finished `sleep`, a crash) shows Exited.
            if let Some(code) = c.process.as_ref().and_then(|p| p.exit_code()) {
                c.process = None;
                c.state = State::Exited {
                    code,
                    at: api::time::now(&*self.clock),
                };
            }
            out.push(ContainerInfo {
                id: c.id.clone(),
                name: c.spec.name.clone(),
                image: c.spec.image.clone(),
                command: c.spec.command.join(" "),
                labels: c.spec.labels.clone(),
                created: c.created,
                state: c.state.clone(),
                restarts: c.restarts,
            });
        }
        out
    }

    /// One container's state, if it exists.
    pub async fn info(&self, name: &str) -> Option<ContainerInfo> {
        let all = self.list().await;
        if let Some(c) = all.iter().find(|c| c.name == name) {
            return Some(c.clone());
        }
        let mut by_id = all
            .into_iter()
            .filter(|c| !name.is_empty() && c.id.starts_with(name));
        match (by_id.next(), by_id.next()) {
            (Some(one), None) => Some(one),
            _ => None,
        }
    }

    /// `docker logs NAME`.
    pub async fn logs(&self, name: &str) -> Result<Vec<String>> {
        let containers = self.containers.lock().await;
        let c = containers
            .get(&named(&containers, name)?)
            .ok_or_else(|| no_such(name))?;
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

/// The container `docker stop X` means: the one named X, else the one whose ID
/// starts with X (refused when several do, as docker refuses).
fn named(containers: &BTreeMap<String, Container>, name: &str) -> Result<String> {
    if containers.contains_key(name) {
        return Ok(name.to_string());
    }
    let by_id: Vec<&String> = containers
        .iter()
        .filter(|(_, c)| !name.is_empty() && c.id.starts_with(name))
        .map(|(key, _)| key)
        .collect();
    match by_id[..] {
        [one] => Ok(one.clone()),
        [] => Err(no_such(name)),
        _ => Err(Error::NotFound(format!(
            "Error response from daemon: multiple IDs found with provided prefix: {name}"
        ))),
    }
}

fn no_such(name: &str) -> Error {
    Error::NotFound(format!(
        "Error response from daemon: No such container: {name}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use seams::SystemClock;

    /// Runs `sleep` as a process that never ends, and fails on anything else.
    struct Fake;

    struct Forever;

    impl Process for Forever {
        fn stop(self: Box<Self>) -> BoxFuture<'static, ()> {
            Box::pin(async {})
        }
        fn exit_code(&self) -> Option<i32> {
            None
        }
    }

    impl Exec for Fake {
        fn start<'a>(
            &'a self,
            command: &'a [String],
            _logs: Logs,
        ) -> BoxFuture<'a, Result<Box<dyn Process>>> {
            Box::pin(async move {
                match command[0].as_str() {
                    "sleep" => Ok(Box::new(Forever) as Box<dyn Process>),
                    other => Err(Error::Invalid(format!("{other}: cannot start"))),
                }
            })
        }
    }

    fn spec(name: &str, command: &str) -> ContainerSpec {
        ContainerSpec {
            name: name.into(),
            image: "alpine".into(),
            command: vec![command.into()],
            ..ContainerSpec::default()
        }
    }

    #[tokio::test]
    async fn create_and_start_fail_each_for_their_own_reason() {
        let runtime = Runtime::new(Arc::new(SystemClock), seams::Rng::seeded(1), Arc::new(Fake));
        runtime.run(spec("a", "sleep")).await.unwrap();
        let taken = runtime.create(spec("a", "sleep")).await.unwrap_err();
        assert!(
            matches!(&taken, Error::Conflict(m) if m.contains("\"/a\" is already in use")),
            "{taken:?}"
        );
        // A start that fails leaves the container created, its log saying why.
        let failed = runtime.run(spec("b", "nope")).await.unwrap_err();
        assert_eq!(failed, Error::Invalid("nope: cannot start".into()));
        assert_eq!(runtime.info("b").await.unwrap().state, State::Created);
        assert_eq!(
            runtime.logs("b").await.unwrap(),
            ["error: nope: cannot start"]
        );
        // A restart after a stop counts; the first start does not.
        runtime.stop("a").await.unwrap();
        runtime.start("a").await.unwrap();
        let a = runtime.info("a").await.unwrap();
        assert!(matches!(a.state, State::Running { .. }));
        assert_eq!(a.restarts, 1);
        assert!(runtime.create(ContainerSpec::default()).await.is_err());
        // `docker stop 3f2a`: a unique prefix of the ID names the container too.
        runtime.stop(&a.id[..4]).await.unwrap();
        assert!(matches!(
            runtime.info(&a.id[..4]).await.unwrap().state,
            State::Exited { .. }
        ));
        assert_eq!(runtime.stop("zz-none").await, Err(no_such("zz-none")));
        // Every ID starts with one of 16 hex digits: with 17 containers, some first
        // digit is shared, and that prefix is ambiguous.
        for i in 0..15 {
            runtime
                .create(spec(&format!("c{i}"), "sleep"))
                .await
                .unwrap();
        }
        let ids: Vec<String> = runtime.list().await.into_iter().map(|c| c.id).collect();
        let shared = ids
            .iter()
            .find(|id| ids.iter().filter(|o| o[..1] == id[..1]).count() > 1)
            .unwrap();
        let e = runtime.stop(&shared[..1]).await.unwrap_err();
        assert!(
            format!("{e:?}").contains("multiple IDs found with provided prefix"),
            "{e:?}"
        );
    }
}
