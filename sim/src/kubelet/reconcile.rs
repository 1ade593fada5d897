//! The kubelet's decision, as a pure function: from what should run (the static pods
//! and the pods bound here) and what runs (the runtime's containers), the actions that
//! close the gap — start, restart, remove, report status, record an event.
//!
//! This is the same shape as the controllers' reconciles: [`reconcile`] does no I/O
//! and reads no clock (`now` comes in); the loop in [`super`] observes, calls it, and
//! carries the actions out. What the kubelet must remember between two rounds (a
//! container's back-off, why its last start failed, the IPs it handed out) is
//! [`Memory`]; everything else it reads again each round, so a restarted kubelet picks
//! up where the last one left off.
//!
//! The rules, per container of each pod that should run:
//! - **not there** → create it (unless its image name is not valid, or its last
//!   attempt failed and its back-off has not passed);
//! - **running** → report it running;
//! - **exited** → if the pod's `restartPolicy` says so, start it again, at once the
//!   first time, then after a back-off that doubles (`CrashLoopBackOff`); if not,
//!   report it terminated.
//!
//! A container of the kubelet's (it has the kubelet's labels) that no pod wants is
//! removed: at once if it was a static pod's (the manifests are read from disk), and
//! only once the apiserver's pods are known if it was one of theirs — a kubelet that
//! cannot reach an apiserver leaves their containers alone. A pod whose containers were
//! acted on this round reports its status next round, from what it then observes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use api::types::{
    Container, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, Event, ObjectReference, Pod, PodStatus,
};
use jiff::Timestamp;

use super::images::invalid_reference;
use super::status::{self, time};
use super::types::{self, ContainerKey, CONFIG_MIRROR, FILE_SOURCE, SOURCE_LABEL};
use crate::runtime::{ContainerInfo, ContainerSpec, State};
use crate::workloads::effective_command;

/// The first wait before a crashed container starts again, and the longest. (The
/// real kubelet waits 10 s, doubling up to 5 min.)
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(500);
pub const MAX_BACKOFF: Duration = Duration::from_secs(32);

/// Why a container cannot run, as the kubelet reports it.
pub const CREATE_CONTAINER_ERROR: &str = "CreateContainerError";
pub const RUN_CONTAINER_ERROR: &str = "RunContainerError";
pub const INVALID_IMAGE_NAME: &str = "InvalidImageName";
pub const CRASH_LOOP_BACK_OFF: &str = "CrashLoopBackOff";

/// The node the kubelet runs on.
#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    pub ip: String,
    /// Pod IPs are `10.244.<subnet>.<n>`.
    pub subnet: u32,
}

/// What should run here.
pub struct Desired<'a> {
    /// The static pods from the manifests, defaults applied ([`super::config`]).
    pub static_pods: &'a [Pod],
    /// The pods the apiserver has bound here, mirror pods included; `None` until the
    /// kubelet has a complete view of them.
    pub api_pods: Option<&'a [Pod]>,
}

/// One thing for the kubelet's edge to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Stop and remove a container no pod wants.
    RemoveContainer { name: String },
    /// Create a pod's container and start it.
    CreateContainer {
        key: ContainerKey,
        spec: ContainerSpec,
    },
    /// Start a pod's existing container (again).
    StartContainer { key: ContainerKey, name: String },
    /// Delete a pod for good (grace period 0): a deleted pod's containers are gone, or
    /// a mirror pod has no static pod any more.
    DeletePod { namespace: String, name: String },
    /// Create the mirror pod of a static pod, then write its status.
    CreateMirrorPod { pod: Pod },
    /// Write a pod's status.
    PatchStatus {
        namespace: String,
        name: String,
        status: PodStatus,
    },
    /// Record an event: create it (`count` 1) or count it again.
    RecordEvent { event: Event },
}

/// Why a container's last attempt to start failed.
#[derive(Debug, Clone, PartialEq)]
struct Failure {
    reason: String,
    message: String,
    /// Whether its event has been recorded.
    recorded: bool,
    at: Timestamp,
}

/// How long a container waits before its next start.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Backoff {
    period: Duration,
    until: Timestamp,
}

/// The events recorded so far, to count repeats: (pod, container, reason, message).
type EventKey = (ContainerKey, String, String);

/// What the kubelet remembers between rounds.
#[derive(Debug, Default)]
pub struct Memory {
    backoff: BTreeMap<ContainerKey, Backoff>,
    /// The kubelet's reason cache: the last failure of each container.
    failures: BTreeMap<ContainerKey, Failure>,
    /// Pod UID → its IP.
    ips: BTreeMap<String, String>,
    next_ip: u32,
    /// Event key → (the event's name, count).
    events: BTreeMap<EventKey, (String, i32)>,
}

impl Memory {
    /// The edge reports that an action on `key` failed (`reason` is
    /// [`CREATE_CONTAINER_ERROR`] or [`RUN_CONTAINER_ERROR`]): the next attempt waits
    /// out a back-off, and the failure shows in the pod's status and as an event.
    pub fn failed(&mut self, key: &ContainerKey, reason: &str, message: String, now: Timestamp) {
        // A restart has counted its attempt already; a first start has not.
        if self.in_backoff(key, now).is_none() {
            self.next_backoff(key, now);
        }
        self.failures.insert(
            key.clone(),
            Failure {
                reason: reason.into(),
                message,
                recorded: false,
                at: now,
            },
        );
    }

    fn in_backoff(&self, key: &ContainerKey, now: Timestamp) -> Option<Duration> {
        self.backoff
            .get(key)
            .filter(|b| now < b.until)
            .map(|b| b.period)
    }

    /// An attempt now: the wait before the next one doubles (client-go's
    /// `flowcontrol.Backoff`, as the kubelet uses it).
    fn next_backoff(&mut self, key: &ContainerKey, now: Timestamp) {
        let period = match self.backoff.get(key) {
            Some(b) => (b.period * 2).min(MAX_BACKOFF),
            None => INITIAL_BACKOFF,
        };
        let until = now.checked_add(period).unwrap_or(Timestamp::MAX);
        self.backoff.insert(key.clone(), Backoff { period, until });
    }

    fn ip(&mut self, pod: &Pod, host: &Host) -> String {
        if pod.spec.host_network {
            return host.ip.clone();
        }
        let next = &mut self.next_ip;
        self.ips
            .entry(pod.metadata.uid.clone())
            .or_insert_with(|| {
                *next += 1;
                format!("10.244.{}.{}", host.subnet, *next + 1)
            })
            .clone()
    }

    /// Takes the IPs pods already have as handed out: a restarted kubelet keeps them
    /// (a real one finds them on the pods' sandboxes, which outlive it).
    fn adopt_ips(&mut self, pods: &[&Pod], host: &Host) {
        let prefix = format!("10.244.{}.", host.subnet);
        for pod in pods {
            let ip = &pod.status.pod_ip;
            let Some(n) = ip.strip_prefix(&prefix).and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if !self.ips.contains_key(&pod.metadata.uid) {
                self.ips.insert(pod.metadata.uid.clone(), ip.clone());
                self.next_ip = self.next_ip.max(n.saturating_sub(1));
            }
        }
    }

    /// Forgets what it knew about pods that are gone.
    fn forget(&mut self, wanted: &BTreeSet<&str>) {
        self.backoff
            .retain(|k, _| wanted.contains(k.pod_uid.as_str()));
        self.failures
            .retain(|k, _| wanted.contains(k.pod_uid.as_str()));
        self.events
            .retain(|(k, _, _), _| wanted.contains(k.pod_uid.as_str()));
        self.ips.retain(|uid, _| wanted.contains(uid.as_str()));
    }
}

/// The actions that bring what runs on `host` to what should: removals first (a
/// container's name may be needed by its successor), then starts, then the API's.
pub fn reconcile(
    host: &Host,
    desired: &Desired,
    observed: &[ContainerInfo],
    memory: &mut Memory,
    now: Timestamp,
) -> Vec<Action> {
    let api: Vec<&Pod> = desired
        .api_pods
        .unwrap_or_default()
        .iter()
        .filter(|p| !types::is_mirror(p))
        .collect();
    let running: Vec<&Pod> = desired
        .static_pods
        .iter()
        .chain(
            api.iter()
                .copied()
                .filter(|p| p.metadata.deletion_timestamp.is_none()),
        )
        .collect();
    let wanted: BTreeMap<&str, &Pod> = running
        .iter()
        .map(|p| (p.metadata.uid.as_str(), *p))
        .collect();
    let mut ours: BTreeMap<ContainerKey, &ContainerInfo> = BTreeMap::new();
    let mut removals = Vec::new();
    for c in observed {
        let Some(key) = types::key_of(&c.labels) else {
            continue; // not the kubelet's: someone ran it with docker
        };
        let still_wanted = wanted
            .get(key.pod_uid.as_str())
            .is_some_and(|p| p.spec.containers.iter().any(|s| s.name == key.container));
        let from_file = c.labels.get(SOURCE_LABEL).map(String::as_str) == Some(FILE_SOURCE);
        if still_wanted {
            ours.insert(key, c);
        } else if from_file || desired.api_pods.is_some() {
            removals.push(Action::RemoveContainer {
                name: c.name.clone(),
            });
        }
    }
    let mut starts = Vec::new();
    let mut api_actions = Vec::new();
    let api_known = desired.api_pods.is_some();
    if api_known {
        memory.adopt_ips(&running, host);
    }
    for pod in &running {
        let mut statuses = Vec::new();
        let mut acted = false;
        for spec in &pod.spec.containers {
            let key = ContainerKey {
                pod_uid: pod.metadata.uid.clone(),
                container: spec.name.clone(),
            };
            let found = ours.get(&key).copied();
            let (status, action) = sync_container(pod, spec, &key, found, memory, now);
            acted |= action.is_some();
            starts.extend(action);
            if api_known {
                api_actions.extend(failure_event(host, pod, &key, memory));
            }
            statuses.push(status);
        }
        if acted || !api_known {
            continue; // reported next round, from what it then observes
        }
        let ip = memory.ip(pod, host);
        let status = status::pod_status(pod, &host.ip, &ip, statuses, now);
        api_actions.extend(report(pod, status, desired.api_pods.unwrap_or_default()));
    }
    if let Some(api_pods) = desired.api_pods {
        for pod in api
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_some())
        {
            api_actions.push(delete(pod));
        }
        api_actions.extend(stale_mirrors(desired.static_pods, api_pods));
        let mut keep: BTreeSet<&str> = wanted.keys().copied().collect();
        // A pod being deleted may still have containers to stop next round.
        keep.extend(api.iter().map(|p| p.metadata.uid.as_str()));
        memory.forget(&keep);
    }
    removals
        .into_iter()
        .chain(starts)
        .chain(api_actions)
        .collect()
}

/// One container: its status, and what to do to it, if anything.
fn sync_container(
    pod: &Pod,
    spec: &Container,
    key: &ContainerKey,
    found: Option<&ContainerInfo>,
    memory: &mut Memory,
    now: Timestamp,
) -> (ContainerStatus, Option<Action>) {
    let mut status = ContainerStatus {
        name: spec.name.clone(),
        image: spec.image.clone(),
        image_id: format!("docker-pullable://{}", spec.image),
        container_id: found
            .map(|c| format!("docker://{}", c.id))
            .unwrap_or_default(),
        restart_count: found.map_or(0, |c| c.restarts as i32),
        ..ContainerStatus::default()
    };
    let waiting = |reason: &str, message: String| {
        Some(ContainerStateWaiting {
            reason: reason.into(),
            message,
        })
    };
    let failure = memory
        .failures
        .get(key)
        .map(|f| (f.reason.clone(), f.message.clone()));
    let action = match found.map(|c| &c.state) {
        None | Some(State::Created) => {
            if found.is_none() {
                if let Some(message) = invalid_reference(&spec.image) {
                    if failure.as_ref().is_none_or(|(_, m)| *m != message) {
                        memory.failures.insert(
                            key.clone(),
                            Failure {
                                reason: INVALID_IMAGE_NAME.into(),
                                message: message.clone(),
                                recorded: false,
                                at: now,
                            },
                        );
                    }
                    status.state.waiting = waiting(INVALID_IMAGE_NAME, message);
                    return (status, None);
                }
            }
            let (reason, message) =
                failure.unwrap_or_else(|| ("ContainerCreating".into(), String::new()));
            status.state.waiting = waiting(&reason, message);
            if memory.in_backoff(key, now).is_some() {
                None
            } else if let Some(c) = found {
                Some(Action::StartContainer {
                    key: key.clone(),
                    name: c.name.clone(),
                })
            } else {
                Some(Action::CreateContainer {
                    key: key.clone(),
                    spec: container_spec(pod, spec),
                })
            }
        }
        Some(State::Running { since }) => {
            memory.failures.remove(key);
            status.state.running = Some(ContainerStateRunning {
                started_at: Some(time(*since)),
            });
            status.ready = true;
            status.started = Some(true);
            None
        }
        Some(State::Exited { code, at }) => {
            let terminated = ContainerStateTerminated {
                exit_code: *code,
                reason: if *code == 0 { "Completed" } else { "Error" }.into(),
                finished_at: Some(time(*at)),
                ..ContainerStateTerminated::default()
            };
            let restart = match pod.spec.restart_policy.as_str() {
                "Never" => false,
                "OnFailure" => *code != 0,
                _ => true, // Always, the default
            };
            status.started = Some(false);
            if !restart {
                status.state.terminated = Some(terminated);
                None
            } else if let Some(period) = memory.in_backoff(key, now) {
                status.last_state.terminated = Some(terminated);
                let (reason, message) = match failure {
                    Some((reason, message)) if reason == RUN_CONTAINER_ERROR => (reason, message),
                    _ => (
                        CRASH_LOOP_BACK_OFF.to_string(),
                        format!(
                            "back-off {} restarting failed container={} pod={}_{}({})",
                            go_duration(period),
                            spec.name,
                            pod.metadata.name,
                            pod.metadata.namespace,
                            pod.metadata.uid
                        ),
                    ),
                };
                status.state.waiting = waiting(&reason, message);
                None
            } else {
                memory.next_backoff(key, now);
                status.last_state.terminated = Some(terminated);
                status.state.waiting = waiting("ContainerCreating", String::new());
                Some(Action::StartContainer {
                    key: key.clone(),
                    name: found.map(|c| c.name.clone()).unwrap_or_default(),
                })
            }
        }
    };
    (status, action)
}

/// `500ms`, `1s`, `32s`: a back-off as Go prints it.
fn go_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs())
    }
}

/// What the runtime is given for a pod's container: its docker name, its command as
/// Docker decides it, and the labels that say whose it is.
pub fn container_spec(pod: &Pod, c: &Container) -> ContainerSpec {
    ContainerSpec {
        name: types::container_name(pod, &c.name),
        image: c.image.clone(),
        command: effective_command(&c.image, &c.command, &c.args),
        labels: types::container_labels(pod, &c.name),
    }
}

/// The event of a failure not yet recorded.
fn failure_event(
    host: &Host,
    pod: &Pod,
    key: &ContainerKey,
    memory: &mut Memory,
) -> Option<Action> {
    let failure = memory.failures.get_mut(key).filter(|f| !f.recorded)?;
    failure.recorded = true;
    let (reason, message) = if failure.reason == INVALID_IMAGE_NAME {
        ("InspectFailed", failure.message.clone())
    } else {
        ("Failed", format!("Error: {}", failure.message))
    };
    let t = time(failure.at);
    let at = failure.at;
    let counted = memory
        .events
        .entry((key.clone(), reason.to_string(), message.clone()))
        .or_insert_with(|| (format!("{}.{:x}", pod.metadata.name, at.as_nanosecond()), 0));
    counted.1 += 1;
    let mut e = Event::default();
    e.metadata.name = counted.0.clone();
    e.metadata.namespace = pod.metadata.namespace.clone();
    e.involved_object = ObjectReference {
        kind: "Pod".into(),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        api_version: "v1".into(),
        resource_version: String::new(),
        field_path: format!("spec.containers{{{}}}", key.container),
    };
    e.reason = reason.into();
    e.message = message;
    e.type_ = "Warning".into();
    e.source.component = "kubelet".into();
    e.source.host = host.name.clone();
    e.first_timestamp = Some(t.clone());
    e.last_timestamp = Some(t);
    e.count = counted.1;
    e.reporting_component = "kubelet".into();
    e.reporting_instance = host.name.clone();
    Some(Action::RecordEvent { event: e })
}

/// The status write for `pod` (its mirror pod's, for a static pod), if it changes
/// anything.
fn report(pod: &Pod, status: PodStatus, api_pods: &[Pod]) -> Option<Action> {
    let m = &pod.metadata;
    let in_api = api_pods
        .iter()
        .find(|p| p.metadata.namespace == m.namespace && p.metadata.name == m.name);
    if types::source(pod) == FILE_SOURCE {
        let Some(mirror) = in_api else {
            let mut mirror = pod.clone();
            mirror.metadata.uid.clear();
            mirror
                .metadata
                .annotations
                .insert(CONFIG_MIRROR.into(), m.uid.clone());
            mirror.status = status;
            return Some(Action::CreateMirrorPod { pod: mirror });
        };
        // A pod of the same name that is not this static pod's mirror (a user's, or a
        // stale mirror about to be deleted) is left alone.
        if mirror.metadata.annotations.get(CONFIG_MIRROR) != Some(&m.uid) {
            return None;
        }
        return patch(mirror, status);
    }
    patch(in_api.unwrap_or(pod), status)
}

fn patch(pod: &Pod, status: PodStatus) -> Option<Action> {
    (!status::same(&status, &pod.status)).then(|| Action::PatchStatus {
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        status,
    })
}

fn delete(pod: &Pod) -> Action {
    Action::DeletePod {
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
    }
}

/// Mirror pods whose static pod is gone or changed (or that someone deleted: the
/// kubelet confirms, then makes a new one).
fn stale_mirrors(statics: &[Pod], api_pods: &[Pod]) -> Vec<Action> {
    api_pods
        .iter()
        .filter(|p| types::is_mirror(p))
        .filter(|mirror| {
            let hash = mirror.metadata.annotations.get(CONFIG_MIRROR);
            let current = statics.iter().any(|s| {
                s.metadata.namespace == mirror.metadata.namespace
                    && s.metadata.name == mirror.metadata.name
                    && Some(&s.metadata.uid) == hash
            });
            !current || mirror.metadata.deletion_timestamp.is_some()
        })
        .map(delete)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubelet::types::{CONFIG_SOURCE, POD_UID_LABEL};

    fn host() -> Host {
        Host {
            name: "node3".into(),
            ip: "10.0.0.13".into(),
            subnet: 3,
        }
    }

    fn t(ms: i64) -> Timestamp {
        Timestamp::from_millisecond(1_700_000_000_000 + ms).unwrap()
    }

    /// A pod from the apiserver, bound to node3, with one container `c`.
    fn api_pod(namespace: &str, name: &str, uid: &str) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.namespace = namespace.into();
        pod.metadata.name = name.into();
        pod.metadata.uid = uid.into();
        pod.metadata
            .annotations
            .insert(CONFIG_SOURCE.into(), "api".into());
        pod.spec.node_name = "node3".into();
        pod.spec.containers.push(Container {
            name: "c".into(),
            image: "alpine".into(),
            args: vec!["ping".into(), "8.8.8.8".into()],
            ..Container::default()
        });
        pod
    }

    fn static_pod(name: &str, uid: &str) -> Pod {
        let mut pod = api_pod("kube-system", name, uid);
        pod.metadata
            .annotations
            .insert(CONFIG_SOURCE.into(), "file".into());
        pod.spec.host_network = true;
        pod
    }

    fn mirror_of(pod: &Pod, hash: &str) -> Pod {
        let mut mirror = pod.clone();
        mirror.metadata.uid = "mirror-uid".into();
        mirror
            .metadata
            .annotations
            .insert(CONFIG_MIRROR.into(), hash.into());
        mirror
    }

    /// The kubelet's container for `pod`'s `c`, in `state`.
    fn container(pod: &Pod, state: State) -> ContainerInfo {
        let spec = container_spec(pod, &pod.spec.containers[0]);
        ContainerInfo {
            id: format!("id-{}", pod.metadata.uid),
            name: spec.name,
            image: spec.image,
            command: spec.command.join(" "),
            labels: spec.labels,
            created: t(0),
            state,
            restarts: 0,
        }
    }

    fn key(pod: &Pod) -> ContainerKey {
        ContainerKey {
            pod_uid: pod.metadata.uid.clone(),
            container: "c".into(),
        }
    }

    fn run(
        statics: &[Pod],
        api: Option<&[Pod]>,
        observed: &[ContainerInfo],
        memory: &mut Memory,
        now: Timestamp,
    ) -> Vec<Action> {
        let desired = Desired {
            static_pods: statics,
            api_pods: api,
        };
        reconcile(&host(), &desired, observed, memory, now)
    }

    fn statuses(actions: &[Action]) -> Vec<&PodStatus> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::PatchStatus { status, .. } => Some(status),
                _ => None,
            })
            .collect()
    }

    fn waiting(status: &PodStatus) -> (&str, &str) {
        let w = status.container_statuses[0].state.waiting.as_ref().unwrap();
        (&w.reason, &w.message)
    }

    #[test]
    fn a_new_pod_gets_a_container_labelled_with_its_identity() {
        let pod = api_pod("default", "alpine", "u1");
        let actions = run(
            &[],
            Some(std::slice::from_ref(&pod)),
            &[],
            &mut Memory::default(),
            t(0),
        );
        let [Action::CreateContainer { key: k, spec }] = &actions[..] else {
            panic!("{actions:?}");
        };
        assert_eq!(k, &key(&pod));
        assert_eq!(spec.name, "k8s_c_alpine_default");
        assert_eq!(spec.command, ["ping", "8.8.8.8"]);
        let label = |k: &str| spec.labels[k].as_str();
        assert_eq!(label("io.kubernetes.pod.name"), "alpine");
        assert_eq!(label("io.kubernetes.pod.namespace"), "default");
        assert_eq!(label("io.kubernetes.pod.uid"), "u1");
        assert_eq!(label("io.kubernetes.container.name"), "c");
        assert_eq!(label("annotation.kubernetes.io/config.source"), "api");
    }

    #[test]
    fn a_running_container_is_reported_running_once() {
        let pod = api_pod("default", "alpine", "u1");
        let running = container(&pod, State::Running { since: t(0) });
        let mut memory = Memory::default();
        let actions = run(
            &[],
            Some(std::slice::from_ref(&pod)),
            std::slice::from_ref(&running),
            &mut memory,
            t(1),
        );
        let [Action::PatchStatus { name, status, .. }] = &actions[..] else {
            panic!("{actions:?}");
        };
        assert_eq!(name, "alpine");
        assert_eq!(status.phase, "Running");
        assert_eq!(status.pod_ip, "10.244.3.2");
        assert_eq!(status.host_ip, "10.0.0.13");
        assert!(status.container_statuses[0].ready);
        assert_eq!(status.container_statuses[0].container_id, "docker://id-u1");
        // Reported: the next round has nothing to do.
        let mut reported = pod;
        reported.status = status.clone();
        let again = run(&[], Some(&[reported]), &[running], &mut memory, t(2));
        assert_eq!(again, []);
    }

    /// The bug this replaced: any `k8s_*_kube-system` container was taken for a static
    /// pod's, so a user's pod in kube-system was removed whenever the kubelet started.
    #[test]
    fn a_users_pod_in_kube_system_is_not_a_static_pod() {
        let user = api_pod("kube-system", "keeper", "u1");
        let running = container(&user, State::Running { since: t(0) });
        assert_eq!(running.name, "k8s_c_keeper_kube-system");
        // A kubelet that just started: the manifests read, the apiserver not yet.
        let actions = run(
            &[],
            None,
            std::slice::from_ref(&running),
            &mut Memory::default(),
            t(1),
        );
        assert_eq!(actions, []);
        // Once it has the apiserver's pods: the pod is there, so its container stays.
        let actions = run(&[], Some(&[user]), &[running], &mut Memory::default(), t(1));
        assert!(
            actions
                .iter()
                .all(|a| matches!(a, Action::PatchStatus { .. })),
            "{actions:?}"
        );
    }

    #[test]
    fn a_static_pods_container_goes_with_its_manifest_apiserver_or_not() {
        let apiserver = static_pod("kube-apiserver-node3", "hash1");
        let running = container(&apiserver, State::Running { since: t(0) });
        let removed = vec![Action::RemoveContainer {
            name: running.name.clone(),
        }];
        assert_eq!(
            run(
                &[],
                None,
                std::slice::from_ref(&running),
                &mut Memory::default(),
                t(1)
            ),
            removed
        );
        // An edited manifest is a new pod: the old container goes first, then the new
        // one (of the same name) is made.
        let edited = static_pod("kube-apiserver-node3", "hash2");
        let actions = run(
            std::slice::from_ref(&edited),
            None,
            &[running],
            &mut Memory::default(),
            t(1),
        );
        assert_eq!(actions.len(), 2, "{actions:?}");
        assert_eq!(actions[0], removed[0]);
        assert!(
            matches!(&actions[1], Action::CreateContainer { key: k, .. } if *k == key(&edited))
        );
    }

    #[test]
    fn containers_the_kubelet_did_not_make_are_left_alone() {
        let pod = api_pod("kube-system", "x", "u1");
        let mut lookalike = container(&pod, State::Running { since: t(0) });
        lookalike.labels.clear();
        assert_eq!(
            run(&[], Some(&[]), &[lookalike], &mut Memory::default(), t(1)),
            []
        );
        // One whose UID label is empty is not the kubelet's either.
        let mut unowned = container(&pod, State::Running { since: t(0) });
        unowned.labels.insert(POD_UID_LABEL.into(), String::new());
        assert_eq!(
            run(&[], Some(&[]), &[unowned], &mut Memory::default(), t(1)),
            []
        );
    }

    #[test]
    fn a_failed_create_waits_with_its_reason_an_event_and_a_back_off() {
        let pod = api_pod("default", "web", "u1");
        let mut memory = Memory::default();
        let pods = [pod.clone()];
        let conflict = "Conflict. The container name \"/k8s_c_web_default\" is already in use";
        memory.failed(&key(&pod), CREATE_CONTAINER_ERROR, conflict.into(), t(0));
        let actions = run(&[], Some(&pods), &[], &mut memory, t(100));
        let [Action::RecordEvent { event }, Action::PatchStatus { status, .. }] = &actions[..]
        else {
            panic!("{actions:?}");
        };
        assert_eq!(
            (event.type_.as_str(), event.reason.as_str(), event.count),
            ("Warning", "Failed", 1)
        );
        assert_eq!(event.message, format!("Error: {conflict}"));
        assert_eq!(event.involved_object.name, "web");
        assert_eq!(event.involved_object.field_path, "spec.containers{c}");
        assert_eq!(event.source.host, "node3");
        assert_eq!(waiting(status), (CREATE_CONTAINER_ERROR, conflict));
        assert_eq!(status.phase, "Pending");
        // Not tried again before its back-off (500 ms) has passed; then tried.
        let quiet = run(&[], Some(&pods), &[], &mut memory, t(200));
        assert!(statuses(&quiet).len() == 1 && quiet.len() == 1, "{quiet:?}");
        let retry = run(&[], Some(&pods), &[], &mut memory, t(500));
        assert!(
            matches!(&retry[..], [Action::CreateContainer { .. }]),
            "{retry:?}"
        );
        // It fails again: the same event, counted twice; the next wait is longer.
        memory.failed(&key(&pod), CREATE_CONTAINER_ERROR, conflict.into(), t(500));
        let actions = run(&[], Some(&pods), &[], &mut memory, t(600));
        let Action::RecordEvent { event: again } = &actions[0] else {
            panic!("{actions:?}");
        };
        assert_eq!(
            (again.metadata.name.as_str(), again.count),
            (event.metadata.name.as_str(), 2)
        );
        assert!(!run(&[], Some(&pods), &[], &mut memory, t(1400))
            .iter()
            .any(|a| matches!(a, Action::CreateContainer { .. })));
        assert!(run(&[], Some(&pods), &[], &mut memory, t(1500))
            .iter()
            .any(|a| matches!(a, Action::CreateContainer { .. })));
    }

    #[test]
    fn a_start_that_fails_is_a_run_container_error_not_running() {
        let pod = api_pod("default", "web", "u1");
        let mut memory = Memory::default();
        let created = container(&pod, State::Created);
        memory.failed(&key(&pod), RUN_CONTAINER_ERROR, "no such flag".into(), t(0));
        let actions = run(
            &[],
            Some(std::slice::from_ref(&pod)),
            std::slice::from_ref(&created),
            &mut memory,
            t(1),
        );
        let status = statuses(&actions)[0];
        assert_eq!(waiting(status), (RUN_CONTAINER_ERROR, "no such flag"));
        assert_eq!(status.phase, "Pending");
        // After the back-off: started again (the container exists: docker start).
        let retry = run(
            &[],
            Some(&[pod]),
            std::slice::from_ref(&created),
            &mut memory,
            t(500),
        );
        assert!(
            matches!(&retry[..], [Action::StartContainer { name, .. }] if *name == created.name),
            "{retry:?}"
        );
    }

    #[test]
    fn a_crashed_container_restarts_at_once_then_after_a_doubling_back_off() {
        let pod = api_pod("default", "broken", "u1");
        let pods = [pod.clone()];
        let mut memory = Memory::default();
        let crashed = |at| {
            let mut c = container(&pod, State::Exited { code: 127, at });
            c.restarts = 1;
            c
        };
        let first = run(&[], Some(&pods), &[crashed(t(0))], &mut memory, t(10));
        assert!(
            matches!(&first[..], [Action::StartContainer { .. }]),
            "{first:?}"
        );
        // It crashed again at once: CrashLoopBackOff until 500 ms after the restart.
        let waiting_now = run(&[], Some(&pods), &[crashed(t(20))], &mut memory, t(100));
        let status = statuses(&waiting_now)[0];
        let (reason, message) = waiting(status);
        assert_eq!(reason, CRASH_LOOP_BACK_OFF);
        assert_eq!(
            message,
            "back-off 500ms restarting failed container=c pod=broken_default(u1)"
        );
        assert_eq!(status.phase, "Running");
        assert_eq!(status.container_statuses[0].restart_count, 1);
        let last = status.container_statuses[0].last_state.terminated.as_ref();
        assert_eq!(last.map(|t| t.exit_code), Some(127));
        let second = run(&[], Some(&pods), &[crashed(t(20))], &mut memory, t(510));
        assert!(
            matches!(&second[..], [Action::StartContainer { .. }]),
            "{second:?}"
        );
        let longer = run(&[], Some(&pods), &[crashed(t(520))], &mut memory, t(600));
        assert!(waiting(statuses(&longer)[0]).1.starts_with("back-off 1s "));
    }

    #[test]
    fn restart_policy_decides_whether_an_exited_container_runs_again() {
        let mut memory = Memory::default();
        for (policy, code, phase) in [
            ("Never", 0, "Succeeded"),
            ("Never", 1, "Failed"),
            ("OnFailure", 0, "Succeeded"),
        ] {
            let mut pod = api_pod("default", "job", policy);
            pod.spec.restart_policy = policy.into();
            let exited = container(&pod, State::Exited { code, at: t(0) });
            let actions = run(&[], Some(&[pod]), &[exited], &mut memory, t(1));
            let [Action::PatchStatus { status, .. }] = &actions[..] else {
                panic!("{policy} {code}: {actions:?}");
            };
            assert_eq!(status.phase, phase, "{policy} {code}");
            let terminated = status.container_statuses[0]
                .state
                .terminated
                .as_ref()
                .unwrap();
            assert_eq!(
                terminated.reason,
                if code == 0 { "Completed" } else { "Error" }
            );
        }
    }

    #[test]
    fn an_invalid_image_name_waits_without_a_container() {
        let mut pod = api_pod("default", "bad", "u1");
        pod.spec.containers[0].image = "Alpine".into();
        let mut memory = Memory::default();
        let actions = run(
            &[],
            Some(std::slice::from_ref(&pod)),
            &[],
            &mut memory,
            t(0),
        );
        let [Action::RecordEvent { event }, Action::PatchStatus { status, .. }] = &actions[..]
        else {
            panic!("{actions:?}");
        };
        assert_eq!(event.reason, "InspectFailed");
        assert_eq!(waiting(status).0, INVALID_IMAGE_NAME);
        // Said once, not every round.
        let actions = run(&[], Some(&[pod]), &[], &mut memory, t(1000));
        assert!(!actions
            .iter()
            .any(|a| matches!(a, Action::RecordEvent { .. })));
    }

    #[test]
    fn a_deleted_pods_containers_go_before_it_is_confirmed_gone() {
        let mut pod = api_pod("default", "alpine", "u1");
        pod.metadata.deletion_timestamp = Some("2024-01-01T00:00:00Z".into());
        let running = container(&pod, State::Running { since: t(0) });
        let actions = run(
            &[],
            Some(&[pod]),
            std::slice::from_ref(&running),
            &mut Memory::default(),
            t(1),
        );
        assert_eq!(
            actions,
            [
                Action::RemoveContainer { name: running.name },
                Action::DeletePod {
                    namespace: "default".into(),
                    name: "alpine".into()
                }
            ]
        );
    }

    #[test]
    fn mirror_pods_follow_the_static_pods() {
        let apiserver = static_pod("kube-apiserver-node3", "hash1");
        let running = container(&apiserver, State::Running { since: t(0) });
        let statics = [apiserver.clone()];
        // No mirror yet: one is made, carrying the hash, with the static pod's status.
        let actions = run(
            &statics,
            Some(&[]),
            std::slice::from_ref(&running),
            &mut Memory::default(),
            t(1),
        );
        let [Action::CreateMirrorPod { pod: mirror }] = &actions[..] else {
            panic!("{actions:?}");
        };
        assert_eq!(mirror.metadata.annotations[CONFIG_MIRROR], "hash1");
        assert_eq!(mirror.metadata.uid, "");
        assert_eq!(mirror.status.phase, "Running");
        assert_eq!(mirror.status.pod_ip, "10.0.0.13", "host network");
        // A mirror of an older manifest, or of no manifest at all: deleted.
        let old = mirror_of(&apiserver, "hash0");
        let mut orphan = mirror_of(&apiserver, "hash9");
        orphan.metadata.name = "kube-scheduler-node3".into();
        let actions = run(
            &statics,
            Some(&[old, orphan]),
            &[running],
            &mut Memory::default(),
            t(1),
        );
        let deleted: Vec<&str> = actions
            .iter()
            .filter_map(|a| match a {
                Action::DeletePod { name, .. } => Some(name.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(deleted, ["kube-apiserver-node3", "kube-scheduler-node3"]);
        assert!(!actions
            .iter()
            .any(|a| matches!(a, Action::CreateMirrorPod { .. })));
    }
}
