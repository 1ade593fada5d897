//! Server-side printing: the `meta.k8s.io/v1` Table kubectl asks for with
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`.
//!
//! kubectl prints whatever cells the server sends, so the columns here are
//! kube-apiserver's (`pkg/printers/internalversion/printers.go`): NAME READY STATUS
//! RESTARTS AGE for pods, and so on. Columns with priority 1 appear only with `-o wide`.

use jiff::Timestamp;
use serde_json::{json, Value};

use crate::selectors::format_selector;
use crate::types::{
    Deployment, Event, Lease, Namespace, Node, ObjectMeta, Pod, PodTemplateSpec, ReplicaSet,
    Service,
};

/// One column: its header and whether it is `-o wide` only.
pub struct Column {
    pub name: &'static str,
    pub type_: &'static str,
    pub wide: bool,
}

const fn column(name: &'static str, type_: &'static str, wide: bool) -> Column {
    Column { name, type_, wide }
}

/// A string column shown by `kubectl get`.
const fn col(name: &'static str) -> Column {
    column(name, "string", false)
}

/// A string column shown only by `kubectl get -o wide`.
const fn wide(name: &'static str) -> Column {
    column(name, "string", true)
}

/// An integer column (DESIRED, CURRENT, ...).
const fn int(name: &'static str) -> Column {
    column(name, "integer", false)
}

/// How a kind prints as a table row.
pub trait Printer {
    fn columns() -> Vec<Column>;
    fn cells(&self, now: Timestamp) -> Vec<Value>;
}

/// The column definitions as JSON.
pub fn column_definitions(columns: &[Column]) -> Value {
    let defs: Vec<Value> = columns
        .iter()
        .map(|c| {
            json!({"name": c.name, "type": c.type_,
                   "format": if c.name == "Name" { "name" } else { "" },
                   "description": "", "priority": i32::from(c.wide)})
        })
        .collect();
    Value::Array(defs)
}

/// A row: the cells, and the object's metadata (kubectl needs it for `-A` and labels).
pub fn row(cells: Vec<Value>, metadata: &Value) -> Value {
    json!({"cells": cells,
           "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                      "metadata": metadata}})
}

/// kubectl's "human" duration (`apimachinery/pkg/util/duration.HumanDuration`):
/// `45s`, `3m20s`, `5h`, `3d4h`, `400d`.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    let s = seconds.max(0);
    if s < 120 {
        return format!("{s}s");
    }
    let m = s / 60;
    if m < 10 {
        return match s % 60 {
            0 => format!("{m}m"),
            rest => format!("{m}m{rest}s"),
        };
    }
    if m < 180 {
        return format!("{m}m");
    }
    let h = m / 60;
    if h < 8 {
        return match m % 60 {
            0 => format!("{h}h"),
            rest => format!("{h}h{rest}m"),
        };
    }
    if h < 48 {
        return format!("{h}h");
    }
    let d = h / 24;
    if d < 8 {
        return match h % 24 {
            0 => format!("{d}d"),
            rest => format!("{d}d{rest}h"),
        };
    }
    if d < 365 * 2 {
        return format!("{d}d");
    }
    let y = d / 365;
    if y < 8 {
        return match d % 365 {
            0 => format!("{y}y"),
            rest => format!("{y}y{rest}d"),
        };
    }
    format!("{y}y")
}

/// The AGE cell: time since a timestamp, or `<unknown>`.
pub fn age(since: Option<&str>, now: Timestamp) -> String {
    match since.and_then(|t| t.parse::<Timestamp>().ok()) {
        Some(t) => human_duration(now.as_second() - t.as_second()),
        None => "<unknown>".into(),
    }
}

fn created(meta: &ObjectMeta, now: Timestamp) -> Value {
    age(meta.creation_timestamp.as_deref(), now).into()
}

fn or_none(s: &str) -> Value {
    if s.is_empty() { "<none>" } else { s }.into()
}

impl Printer for Pod {
    fn columns() -> Vec<Column> {
        vec![
            col("Name"),
            col("Ready"),
            col("Status"),
            col("Restarts"),
            col("Age"),
            wide("IP"),
            wide("Node"),
            wide("Nominated Node"),
            wide("Readiness Gates"),
        ]
    }

    fn cells(&self, now: Timestamp) -> Vec<Value> {
        let statuses = &self.status.container_statuses;
        let ready = statuses.iter().filter(|c| c.ready).count();
        let restarts: i32 = statuses.iter().map(|c| c.restart_count).sum();
        vec![
            self.metadata.name.clone().into(),
            format!("{ready}/{}", self.spec.containers.len()).into(),
            pod_status(self).into(),
            restarts.to_string().into(),
            created(&self.metadata, now),
            or_none(&self.status.pod_ip),
            or_none(&self.spec.node_name),
            "<none>".into(),
            "<none>".into(),
        ]
    }
}

/// The STATUS column: the phase, unless a container's state says more
/// (`ContainerCreating`, `CrashLoopBackOff`, `Completed`, `Error`) or the pod is being
/// deleted (`Terminating`).
pub fn pod_status(pod: &Pod) -> String {
    let mut reason = if pod.status.reason.is_empty() {
        pod.status.phase.clone()
    } else {
        pod.status.reason.clone()
    };
    for c in pod.status.container_statuses.iter().rev() {
        if let Some(w) = c.state.waiting.as_ref().filter(|w| !w.reason.is_empty()) {
            reason = w.reason.clone();
        } else if let Some(t) = &c.state.terminated {
            reason = if !t.reason.is_empty() {
                t.reason.clone()
            } else {
                format!("ExitCode:{}", t.exit_code)
            };
        }
    }
    if pod.metadata.deletion_timestamp.is_some() {
        reason = "Terminating".into();
    }
    reason
}

impl Printer for Node {
    fn columns() -> Vec<Column> {
        vec![
            col("Name"),
            col("Status"),
            col("Roles"),
            col("Age"),
            col("Version"),
            wide("Internal-IP"),
            wide("External-IP"),
            wide("OS-Image"),
            wide("Kernel-Version"),
            wide("Container-Runtime"),
        ]
    }

    fn cells(&self, now: Timestamp) -> Vec<Value> {
        let ready = self.status.conditions.iter().find(|c| c.type_ == "Ready");
        // As kube-apiserver's printer: a Ready condition that is not True (False, or
        // Unknown once the kubelet stopped posting) is NotReady; none at all, Unknown.
        let mut status = match ready.map(|c| c.status.as_str()) {
            Some("True") => "Ready".to_string(),
            Some(_) => "NotReady".to_string(),
            None => "Unknown".to_string(),
        };
        if self.spec.unschedulable {
            status.push_str(",SchedulingDisabled");
        }
        let roles: Vec<&str> = self
            .metadata
            .labels
            .keys()
            .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
            .collect();
        let address = |kind: &str| {
            let a = self.status.addresses.iter().find(|a| a.type_ == kind);
            or_none(a.map(|a| a.address.as_str()).unwrap_or(""))
        };
        let info = &self.status.node_info;
        vec![
            self.metadata.name.clone().into(),
            status.into(),
            or_none(&roles.join(",")),
            created(&self.metadata, now),
            info.kubelet_version.clone().into(),
            address("InternalIP"),
            address("ExternalIP"),
            or_none(&info.os_image),
            or_none(&info.kernel_version),
            or_none(&info.container_runtime_version),
        ]
    }
}

/// CONTAINERS and IMAGES cells of a pod template.
fn containers_and_images(template: &PodTemplateSpec) -> (Value, Value) {
    let names: Vec<&str> = template
        .spec
        .containers
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    let images: Vec<&str> = template
        .spec
        .containers
        .iter()
        .map(|c| c.image.as_str())
        .collect();
    (names.join(",").into(), images.join(",").into())
}

impl Printer for ReplicaSet {
    fn columns() -> Vec<Column> {
        vec![
            col("Name"),
            int("Desired"),
            int("Current"),
            int("Ready"),
            col("Age"),
            wide("Containers"),
            wide("Images"),
            wide("Selector"),
        ]
    }

    fn cells(&self, now: Timestamp) -> Vec<Value> {
        let (containers, images) = containers_and_images(&self.spec.template);
        vec![
            self.metadata.name.clone().into(),
            self.spec.replicas.unwrap_or(1).into(),
            self.status.replicas.into(),
            self.status.ready_replicas.unwrap_or(0).into(),
            created(&self.metadata, now),
            containers,
            images,
            format_selector(&self.spec.selector).into(),
        ]
    }
}

impl Printer for Deployment {
    fn columns() -> Vec<Column> {
        vec![
            col("Name"),
            col("Ready"),
            int("Up-to-date"),
            int("Available"),
            col("Age"),
            wide("Containers"),
            wide("Images"),
            wide("Selector"),
        ]
    }

    fn cells(&self, now: Timestamp) -> Vec<Value> {
        let (containers, images) = containers_and_images(&self.spec.template);
        let s = &self.status;
        let desired = self.spec.replicas.unwrap_or(1);
        vec![
            self.metadata.name.clone().into(),
            format!("{}/{desired}", s.ready_replicas.unwrap_or(0)).into(),
            s.updated_replicas.unwrap_or(0).into(),
            s.available_replicas.unwrap_or(0).into(),
            created(&self.metadata, now),
            containers,
            images,
            format_selector(&self.spec.selector).into(),
        ]
    }
}

impl Printer for Namespace {
    fn columns() -> Vec<Column> {
        vec![col("Name"), col("Status"), col("Age")]
    }

    fn cells(&self, now: Timestamp) -> Vec<Value> {
        let phase = self.status.clone().unwrap_or_default().phase;
        vec![
            self.metadata.name.clone().into(),
            phase.into(),
            created(&self.metadata, now),
        ]
    }
}

impl Printer for Event {
    fn columns() -> Vec<Column> {
        vec![
            col("Last Seen"),
            col("Type"),
            col("Reason"),
            col("Object"),
            col("Message"),
            wide("Subobject"),
            wide("Source"),
            wide("First Seen"),
            wide("Count"),
            wide("Name"),
        ]
    }

    fn cells(&self, now: Timestamp) -> Vec<Value> {
        let last = self
            .last_timestamp
            .as_deref()
            .or(self.event_time.as_deref())
            .or(self.metadata.creation_timestamp.as_deref());
        let first = self.first_timestamp.as_deref().or(last);
        let o = &self.involved_object;
        let mut source = self.source.component.clone();
        if !self.source.host.is_empty() {
            source = format!("{source}, {}", self.source.host);
        }
        vec![
            age(last, now).into(),
            self.type_.clone().into(),
            self.reason.clone().into(),
            format!("{}/{}", o.kind.to_lowercase(), o.name).into(),
            self.message.trim().to_string().into(),
            o.field_path.clone().into(),
            source.into(),
            age(first, now).into(),
            self.count.max(1).to_string().into(),
            self.metadata.name.clone().into(),
        ]
    }
}

impl Printer for Lease {
    fn columns() -> Vec<Column> {
        vec![col("Name"), col("Holder"), col("Age")]
    }

    fn cells(&self, now: Timestamp) -> Vec<Value> {
        vec![
            self.metadata.name.clone().into(),
            self.spec.holder_identity.clone().unwrap_or_default().into(),
            created(&self.metadata, now),
        ]
    }
}

impl Printer for Service {
    fn columns() -> Vec<Column> {
        vec![col("Name"), col("Age")]
    }

    fn cells(&self, now: Timestamp) -> Vec<Value> {
        vec![
            self.metadata.name.clone().into(),
            created(&self.metadata, now),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{ContainerState, ContainerStateWaiting, ContainerStatus};

    #[test]
    fn durations_read_like_kubectls() {
        let cases = [
            (5, "5s"),
            (119, "119s"),
            (200, "3m20s"),
            (600, "10m"),
            (3 * 3600 + 60, "3h1m"),
            (20 * 3600, "20h"),
            (3 * 86400 + 4 * 3600, "3d4h"),
            (400 * 86400, "400d"),
            (3 * 365 * 86400, "3y"),
        ];
        for (s, want) in cases {
            assert_eq!(human_duration(s), want);
        }
    }

    #[test]
    fn a_pod_row_has_kubectls_cells() {
        let mut pod = Pod::default();
        pod.metadata.name = "alpine".into();
        pod.metadata.creation_timestamp = Some("2026-01-01T00:00:00Z".into());
        pod.spec.containers.push(Default::default());
        pod.status.phase = "Pending".into();
        pod.status.container_statuses.push(ContainerStatus {
            state: ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: "ContainerCreating".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        });
        let now: Timestamp = "2026-01-01T00:00:42Z".parse().unwrap();
        let cells = pod.cells(now);
        assert_eq!(
            cells[..5],
            [
                json!("alpine"),
                json!("0/1"),
                json!("ContainerCreating"),
                json!("0"),
                json!("42s")
            ]
        );
        assert_eq!(cells[6], json!("<none>"));
    }
}
