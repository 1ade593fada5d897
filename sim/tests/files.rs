//! The everyday commands on a node, as a learner types them: editing the kubeconfig
//! with `sed -i`, copying the backup, `grep`/`head`/`tail` on files, `crictl ps` next
//! to `docker ps` — on a real cluster in virtual time.

use std::time::Duration;

use sim::cluster::Cluster;
use sim::shell::run;

async fn cluster(dir: &std::path::Path) -> Cluster {
    let cluster = Cluster::create(dir).await.unwrap();
    cluster.wait_ready(Duration::from_secs(120)).await.unwrap();
    cluster
}

#[tokio::test(start_paused = true)]
async fn sed_i_repoints_node2s_kubectl_at_node1() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(dir.path()).await;
    let (node1, node2) = (cluster.ip("node1"), cluster.ip("node2"));
    let on2 = |line: String| {
        let cluster = &cluster;
        async move { run(cluster, "node2", &line).await }
    };
    on2("rm /etc/kubernetes/manifests/kube-apiserver.yaml".into()).await;
    on2("systemctl restart kubelet".into()).await;
    let before = on2("kubectl get nodes".into()).await;
    assert_eq!(before.code, 1, "node2's apiserver is gone: {before:?}");
    let grep = on2("grep -n server: ~/.kube/config".into()).await;
    assert_eq!(grep.code, 0, "{grep:?}");
    assert!(
        grep.stdout
            .contains(&format!("server: https://{node2}:6443")),
        "{grep:?}"
    );
    let sed = on2(format!("sed -i 's/{node2}/{node1}/' ~/.kube/config")).await;
    assert_eq!(sed, sim::shell::Output::default());
    let after = on2("kubectl get nodes".into()).await;
    assert_eq!(after.code, 0, "{after:?}");
    assert!(after.stdout.contains("node3"), "{after:?}");
    // Printing, not editing, and what a bad script says.
    let shown = on2("sed s#6443#1234#g /root/.kube/config".into()).await;
    assert!(shown.stdout.contains(":1234"), "{shown:?}");
    assert!(on2("grep -c :6443 /root/.kube/config".into())
        .await
        .stdout
        .ends_with("1\n"));
    let bad = on2("sed -i 'd' ~/.kube/config".into()).await;
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("knows only s/OLD/NEW/"), "{bad:?}");
    let missing = on2("sed -i s/a/b/ /nope".into()).await;
    assert_eq!(
        missing.stderr,
        "sed: can't read /nope: No such file or directory\n"
    );
}

#[tokio::test(start_paused = true)]
async fn files_are_copied_moved_and_read_as_coreutils_does() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(dir.path()).await;
    let on1 = |line: &'static str| {
        let cluster = &cluster;
        async move { run(cluster, "node1", line).await }
    };
    assert_eq!(
        on1("etcdctl snapshot save /tmp/node1.etcd.backup")
            .await
            .code,
        0
    );
    assert_eq!(on1("mkdir -p /root/backups").await.code, 0);
    assert_eq!(on1("cp /tmp/node1.etcd.backup /root/backups").await.code, 0);
    let status = on1("etcdctl snapshot status /root/backups/node1.etcd.backup -w table").await;
    assert_eq!(status.code, 0, "the copy is the same snapshot: {status:?}");
    assert_eq!(
        on1("mv /root/backups/node1.etcd.backup /root/b").await.code,
        0
    );
    assert_eq!(on1("ls /root/backups").await.stdout, "");
    assert_eq!(
        on1("cp /nope /tmp").await.stderr,
        "cp: cannot stat '/nope': No such file or directory\n"
    );
    assert_eq!(
        on1("cp /etc/kubernetes /tmp").await.stderr,
        "cp: -r not specified; omitting directory '/etc/kubernetes'\n"
    );
    assert_eq!(on1("cp -r /etc/kubernetes/manifests /tmp/m").await.code, 0);
    assert!(on1("ls /tmp/m")
        .await
        .stdout
        .contains("kube-apiserver.yaml"));
    let head = on1("head -n 3 /etc/kubernetes/manifests/kube-apiserver.yaml").await;
    assert_eq!(head.stdout, "apiVersion: v1\nkind: Pod\nmetadata:\n");
    let tail = on1("tail -n 1 /etc/kubernetes/audit-policy/apiserver-audit-policy.yaml").await;
    assert_eq!(tail.stdout, "- level: Metadata\n");
    let wc = on1("wc -l /etc/kubernetes/manifests/kube-scheduler.yaml").await;
    assert!(
        wc.stdout
            .ends_with(" /etc/kubernetes/manifests/kube-scheduler.yaml\n"),
        "{wc:?}"
    );
    assert_eq!(
        on1("grep nothing-like-this /root/.kube/config").await.code,
        1
    );
    assert_eq!(on1("pwd").await.stdout, "/root\n");
    // The course's own listing: '' with --prefix is every key.
    let keys = on1("etcdctl get --prefix --keys-only ''").await;
    assert_eq!(keys.code, 0, "{keys:?}");
    assert!(
        keys.stdout.contains("/registry/namespaces/kube-system\n"),
        "{keys:?}"
    );
    assert_eq!(on1("echo hello  world").await.stdout, "hello world\n");
    assert_eq!(on1("touch /tmp/t").await.code, 0);
    assert_eq!(on1("rm /tmp/t").await.code, 0);
    assert_eq!(
        on1("rm /tmp/m").await.stderr,
        "rm: cannot remove '/tmp/m': Is a directory\n"
    );
    assert_eq!(on1("rm -rf /tmp/m /tmp/never-was").await.code, 0);
    // Nothing leaves the node.
    let out = on1("cp /root/b /../../../../etc/passwd-copy").await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        dir.path().join("node1/etc/passwd-copy").exists(),
        "`..` stops at the node's /"
    );
}

#[tokio::test(start_paused = true)]
async fn crictl_lists_the_kubelets_containers_and_not_docker_run_ones() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(dir.path()).await;
    let ps = run(&cluster, "node2", "crictl ps").await;
    assert_eq!(ps.code, 0, "{ps:?}");
    let header = ps.stdout.lines().next().unwrap();
    for column in [
        "CONTAINER",
        "IMAGE",
        "CREATED",
        "STATE",
        "NAME",
        "ATTEMPT",
        "POD ID",
        "POD",
    ] {
        assert!(header.contains(column), "{header}");
    }
    assert!(ps.stdout.contains("kube-apiserver-node2"), "{}", ps.stdout);
    assert!(
        !ps.stdout.contains("etcd"),
        "etcd runs under plain docker: {}",
        ps.stdout
    );
    assert!(run(&cluster, "node2", "docker ps")
        .await
        .stdout
        .contains("etcd2"));
    let pods = run(&cluster, "node2", "crictl pods").await;
    assert!(
        pods.stdout.contains("kube-scheduler-node2") && pods.stdout.contains("Ready"),
        "{pods:?}"
    );
    let id = ps
        .stdout
        .lines()
        .find(|l| l.contains("kube-apiserver"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_string();
    let logs = run(&cluster, "node2", &format!("crictl logs {id}")).await;
    assert!(logs.stdout.contains("Serving securely"), "{logs:?}");
}
