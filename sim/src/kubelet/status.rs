//! A pod's status from its containers' (`generateAPIPodStatus` in the real kubelet):
//! the phase, the conditions, the IPs. Pure: the time comes in.

use api::types::{ContainerStatus, Pod, PodCondition, PodStatus};
use jiff::Timestamp;

/// The API's time format (seconds).
pub fn time(t: Timestamp) -> String {
    api::time::rfc3339(t)
}

/// The status to report for `pod`, whose containers are as `containers` says.
pub fn pod_status(
    pod: &Pod,
    host_ip: &str,
    pod_ip: &str,
    containers: Vec<ContainerStatus>,
    now: Timestamp,
) -> PodStatus {
    let t = time(now);
    let all_running = containers.iter().all(|s| s.state.running.is_some());
    let ready = if all_running { "True" } else { "False" };
    let condition = |type_: &str| PodCondition {
        type_: type_.into(),
        status: match type_ {
            "Ready" | "ContainersReady" => ready.into(),
            _ => "True".into(),
        },
        last_probe_time: None,
        last_transition_time: Some(t.clone()),
        ..PodCondition::default()
    };
    PodStatus {
        phase: phase(&containers).into(),
        conditions: ["Initialized", "Ready", "ContainersReady", "PodScheduled"]
            .map(condition)
            .to_vec(),
        host_ip: host_ip.into(),
        pod_ip: pod_ip.into(),
        start_time: Some(t),
        container_statuses: containers,
        qos_class: pod.status.qos_class.clone(),
        ..PodStatus::default()
    }
}

/// `Pending` while a container waits to run for the first time; `Running` while any
/// runs or will run again; else `Succeeded` if every one ended well, `Failed` if not.
fn phase(containers: &[ContainerStatus]) -> &'static str {
    let never_ran = |s: &ContainerStatus| {
        s.state.waiting.is_some() && s.last_state.terminated.is_none() && s.restart_count == 0
    };
    if containers.iter().any(never_ran) {
        return "Pending";
    }
    let all_done = containers.iter().all(|s| s.state.terminated.is_some());
    if !all_done || containers.is_empty() {
        "Running"
    } else if containers.iter().all(|s| {
        s.state
            .terminated
            .as_ref()
            .is_some_and(|t| t.exit_code == 0)
    }) {
        "Succeeded"
    } else {
        "Failed"
    }
}

/// Whether two statuses say the same, times aside (so an unchanged pod is not
/// written again only because the clock moved).
pub fn same(a: &PodStatus, b: &PodStatus) -> bool {
    let strip = |s: &PodStatus| {
        let mut s = s.clone();
        s.start_time = None;
        s.qos_class.clear();
        for c in &mut s.conditions {
            c.last_transition_time = None;
        }
        for c in &mut s.container_statuses {
            if let Some(r) = &mut c.state.running {
                r.started_at = None;
            }
        }
        s
    };
    strip(a) == strip(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::types::{ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting};

    fn running() -> ContainerStatus {
        let mut s = ContainerStatus::default();
        s.state.running = Some(ContainerStateRunning::default());
        s
    }

    fn waiting(restarts: i32) -> ContainerStatus {
        let mut s = ContainerStatus {
            restart_count: restarts,
            ..ContainerStatus::default()
        };
        s.state.waiting = Some(ContainerStateWaiting::default());
        s
    }

    fn exited(code: i32) -> ContainerStatus {
        let mut s = ContainerStatus::default();
        s.state.terminated = Some(ContainerStateTerminated {
            exit_code: code,
            ..ContainerStateTerminated::default()
        });
        s
    }

    #[test]
    fn the_phase_follows_the_containers() {
        assert_eq!(phase(&[running()]), "Running");
        assert_eq!(phase(&[running(), waiting(0)]), "Pending");
        assert_eq!(phase(&[waiting(3)]), "Running", "crash looping");
        assert_eq!(phase(&[exited(0), exited(0)]), "Succeeded");
        assert_eq!(phase(&[exited(0), exited(1)]), "Failed");
        assert_eq!(phase(&[exited(1), running()]), "Running");
    }

    #[test]
    fn ready_only_when_every_container_runs_and_times_do_not_count() {
        let pod = Pod::default();
        let t = Timestamp::UNIX_EPOCH;
        let status = pod_status(&pod, "10.0.0.13", "10.244.3.2", vec![running()], t);
        let ready = |s: &PodStatus| {
            s.conditions
                .iter()
                .find(|c| c.type_ == "Ready")
                .map(|c| c.status.clone())
        };
        assert_eq!(ready(&status).as_deref(), Some("True"));
        let later = pod_status(
            &pod,
            "10.0.0.13",
            "10.244.3.2",
            vec![running()],
            Timestamp::MAX,
        );
        assert!(same(&status, &later));
        let crashed = pod_status(&pod, "10.0.0.13", "10.244.3.2", vec![waiting(1)], t);
        assert_eq!(ready(&crashed).as_deref(), Some("False"));
        assert!(!same(&status, &crashed));
    }
}
