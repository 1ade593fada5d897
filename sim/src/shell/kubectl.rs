//! `kubectl`, as the node's root runs it: the kubeconfig is `/root/.kube/config`, and
//! every request goes over HTTPS to the server named there. `get` asks the apiserver
//! for a Table and prints its columns, as the real kubectl does.

use clap::{Parser, Subcommand};
use hyper::Method;
use serde_json::{json, Value};

use super::{describe, stream, Output, Stdout};
use crate::cluster::{Node, ADMIN_CONF};
use crate::node::{reason as file_reason, Follow};
use crate::process::client_from_kubeconfig;
use apiserver::registry::{self, ResourceType};
use client_go::client::Client;
use client_go::kubeconfig::{Kubeconfig, NamedCluster};

/// The User-Agent of kubectl 1.32.0.
pub const KUBECTL_AGENT: &str = "kubectl/v1.32.0 (linux/amd64) kubernetes/70d3cc9";

pub(super) const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";

#[derive(Parser)]
#[command(name = "kubectl")]
struct Kubectl {
    #[arg(short = 'n', long, global = true)]
    namespace: Option<String>,
    #[arg(short = 'A', long, global = true)]
    all_namespaces: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Display one or many resources.
    Get {
        resource: Option<String>,
        name: Option<String>,
        /// Fetch a raw URI (`/readyz`) from the server.
        #[arg(long)]
        raw: Option<String>,
        #[arg(short, long)]
        output: Option<String>,
        #[arg(long)]
        show_labels: bool,
        /// After listing, watch for changes (until Ctrl-C).
        #[arg(short = 'w', long)]
        watch: bool,
    },
    /// Show details of a pod.
    Describe { resource: String, name: String },
    /// Run a particular image on the cluster.
    Run {
        name: String,
        #[arg(long)]
        image: String,
        #[arg(long)]
        command: bool,
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Create a resource.
    Create {
        #[command(subcommand)]
        what: Create,
    },
    /// Set a new size for a ReplicaSet or Deployment.
    Scale {
        target: String,
        #[arg(long)]
        replicas: i32,
    },
    /// Delete resources.
    Delete { resource: String, name: String },
    /// Print the logs for a container in a pod.
    Logs {
        name: String,
        #[arg(long)]
        tail: Option<i64>,
        /// Stream the log as the container writes it (until Ctrl-C).
        #[arg(short = 'f', long)]
        follow: bool,
    },
    /// Modify kubeconfig files.
    Config {
        #[command(subcommand)]
        what: Config,
    },
    /// Display addresses of the control plane.
    ClusterInfo,
    /// Print the client and server version information.
    Version,
    /// Execute a command in a container (asked of the apiserver, which says why not).
    Exec {
        pod: String,
        #[arg(short = 'i', long)]
        stdin: bool,
        #[arg(short = 't', long)]
        tty: bool,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Attach to a running container.
    Attach { pod: String },
    /// Copy files to and from containers (through exec, as the real one).
    Cp { src: String, dst: String },
    /// Forward local ports to a pod.
    PortForward { pod: String, ports: Vec<String> },
}

#[derive(Subcommand)]
enum Create {
    Deployment {
        name: String,
        #[arg(long)]
        image: String,
        #[arg(long, default_value_t = 1)]
        replicas: i32,
    },
}

#[derive(Subcommand)]
enum Config {
    /// Set a cluster entry in kubeconfig.
    SetCluster {
        name: String,
        #[arg(long)]
        server: Option<String>,
    },
    /// Display merged kubeconfig settings.
    View,
    /// Display the current-context.
    CurrentContext,
}

pub fn find(resource: &str) -> Option<&'static ResourceType> {
    let r = resource.to_lowercase();
    registry::all().iter().find(|t| {
        t.plural == r
            || t.singular == r
            || t.short_names.contains(&r.as_str())
            || t.kind.to_lowercase() == r
    })
}

/// `pod`, `deployment.apps`: how kubectl names a kind in its messages.
fn kind_name(rt: &ResourceType) -> String {
    if rt.group.is_empty() {
        rt.singular.to_string()
    } else {
        format!("{}.{}", rt.singular, rt.group)
    }
}

/// `pod/alpine`, `deployment.apps/web`.
fn qualified(rt: &ResourceType, name: &str) -> String {
    format!("{}/{name}", kind_name(rt))
}

pub(super) struct Session {
    pub(super) client: Client,
    server: String,
    pub(super) namespace: String,
}

impl Session {
    /// Sends a request; a failure comes back as kubectl prints it.
    pub(super) async fn call(
        &self,
        method: Method,
        path: &str,
        accept: &str,
        body: Option<Value>,
    ) -> Result<Value, Output> {
        let body = body.map(|b| ("application/json", b.to_string().into_bytes()));
        let (code, bytes) = self
            .client
            .raw(method, path, accept, body)
            .await
            .map_err(|e| self.unreachable(&e))?;
        if !(200..300).contains(&code) {
            return Err(self.server_error(code, &bytes));
        }
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes)
            .or_else(|_| Ok(Value::String(String::from_utf8_lossy(&bytes).into_owned())))
    }

    /// A failed answer as kubectl prints it: `Error from server (NotFound): …`.
    pub(super) fn server_error(&self, code: u16, body: &[u8]) -> Output {
        let e = Client::error_of(code, body);
        Output::fail(format!("Error from server ({}): {e}", reason(&e, code)), 1)
    }

    /// What kubectl prints when no answer came: a refused connection in its own
    /// words, anything else (a timeout, a broken connection) as it happened.
    pub(super) fn unreachable(&self, e: &client_go::error::Error) -> Output {
        let host = self
            .server
            .split_once("://")
            .map_or(self.server.as_str(), |(_, h)| h);
        let text = e.to_string();
        // hyper says `client error (Connect)` for a connection that could not be made.
        if text.contains("refused") || text.contains("no route") || text.contains("(Connect)") {
            Output::fail(
                format!("The connection to the server {host} was refused - did you specify the right host or port?"),
                1,
            )
        } else {
            let why = text.trim_start_matches("unable to reach the API server: ");
            Output::fail(format!("Unable to connect to the server: {why}"), 1)
        }
    }
}

fn reason(e: &client_go::Error, code: u16) -> String {
    match e {
        client_go::Error::Remote { reason, .. } if !reason.is_empty() => reason.clone(),
        client_go::Error::Remote { .. } => match code {
            503 => "ServiceUnavailable".into(),
            _ => "InternalError".into(),
        },
        other => other.reason().into(),
    }
}

/// Runs `kubectl ...` on `node`.
pub async fn run(node: &Node, argv: &[String], stdout: &Stdout) -> Output {
    let cli = match Kubectl::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => return Output::fail(e.render().to_string(), 1),
    };
    // A kubeconfig that is there but cannot be read (a link off the node, say) is
    // kubectl's "error loading config file"; one that is missing means localhost:8080.
    match node.ctx.resolve(ADMIN_CONF, Follow::All) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Output::fail(
                format!(
                    "error: error loading config file \"{ADMIN_CONF}\": open {ADMIN_CONF}: {}",
                    file_reason(&e)
                ),
                1,
            )
        }
        _ => {}
    }
    if let Command::Config { what } = &cli.command {
        return config(node, what);
    }
    let (client, server) = match client_from_kubeconfig(&node.ctx, &node.ctx.host(), ADMIN_CONF) {
        Ok(mut c) => {
            // What kubectl 1.32 sends: the apiserver's audit log records it.
            c.user_agent = KUBECTL_AGENT.into();
            let text = node.ctx.read(ADMIN_CONF).unwrap_or_default();
            let server = Kubeconfig::parse(&text).and_then(|k| k.target()).map(|t| t.server).unwrap_or_default();
            (c, server)
        }
        Err(_) => {
            return Output::fail(
                "The connection to the server localhost:8080 was refused - did you specify the right host or port?",
                1,
            )
        }
    };
    let s = Session {
        client,
        server,
        namespace: cli.namespace.clone().unwrap_or_else(|| "default".into()),
    };
    let result = match cli.command {
        Command::Get { raw: Some(uri), .. } => raw(&s, &uri).await,
        Command::Get { resource: None, .. } => Err(Output::fail(
            "You must specify the type of resource to get. Use \"kubectl api-resources\" for a complete list of supported resources.",
            1,
        )),
        Command::Get { resource: Some(resource), name, output, watch: true, .. } => {
            match output.as_deref() {
                None | Some("wide") => {
                    stream::get_watch(&s, &resource, name.as_deref(), output.is_some(), cli.all_namespaces, stdout).await
                }
                Some(other) => Err(Output::fail(format!("error: this kubectl watches as a table only (-o wide or none), not -o {other}"), 1)),
            }
        }
        Command::Get { resource: Some(resource), name, output, show_labels, .. } => {
            get(&s, &resource, name.as_deref(), output.as_deref(), cli.all_namespaces, show_labels).await
        }
        Command::Describe { resource, name } => describe::describe(&s, &resource, &name).await,
        Command::Run { name, image, command, args } => run_pod(&s, &name, &image, command, args).await,
        Command::Create { what: Create::Deployment { name, image, replicas } } => {
            create_deployment(&s, &name, &image, replicas).await
        }
        Command::Scale { target, replicas } => scale(&s, &target, replicas).await,
        Command::Delete { resource, name } => delete(&s, &resource, &name).await,
        Command::Logs { name, tail, follow: true } => stream::logs_follow(&s, &name, tail, stdout).await,
        Command::Logs { name, tail, .. } => logs(&s, &name, tail).await,
        Command::ClusterInfo => Ok(Output::ok(format!(
            "Kubernetes control plane is running at {}\n\nTo further debug and diagnose cluster problems, use 'kubectl cluster-info dump'.\n",
            s.server
        ))),
        Command::Version => version(&s).await,
        Command::Exec { pod, .. } => not_here(&s, &pod, "exec").await,
        Command::Attach { pod } => not_here(&s, &pod, "attach").await,
        Command::Cp { src, dst } => {
            let pod = [&src, &dst].into_iter().find_map(|p| p.split_once(':').map(|(pod, _)| pod.to_string()));
            match pod {
                Some(pod) => not_here(&s, &pod, "exec").await,
                None => Err(Output::fail("error: one of src or dest must be a remote file specification", 1)),
            }
        }
        Command::PortForward { pod, .. } => {
            not_here(&s, pod.strip_prefix("pod/").unwrap_or(&pod), "portforward").await
        }
        Command::Config { .. } => unreachable!("handled above"),
    };
    result.unwrap_or_else(|e| e)
}

pub(super) fn unknown(resource: &str) -> Output {
    Output::fail(
        format!("error: the server doesn't have a resource type \"{resource}\""),
        1,
    )
}

async fn get(
    s: &Session,
    resource: &str,
    name: Option<&str>,
    output: Option<&str>,
    all: bool,
    show_labels: bool,
) -> Result<Output, Output> {
    let Some(rt) = find(resource) else {
        return Err(unknown(resource));
    };
    let ns = (!all).then_some(s.namespace.as_str());
    let url = rt.url(ns, name);
    match output {
        Some("json") | Some("yaml") => {
            let mut v = s.call(Method::GET, &url, "application/json", None).await?;
            if name.is_none() {
                v["kind"] = json!("List");
                v["apiVersion"] = json!("v1");
            }
            let text = if output == Some("json") {
                serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
            } else {
                serde_yaml_ng::to_string(&v).unwrap_or_default()
            };
            Ok(Output::ok(text))
        }
        Some("name") => {
            let v = s.call(Method::GET, &url, "application/json", None).await?;
            let items = if name.is_some() { vec![v] } else { v["items"].as_array().cloned().unwrap_or_default() };
            let lines: String = items
                .iter()
                .map(|i| format!("{}\n", qualified(rt, i["metadata"]["name"].as_str().unwrap_or(""))))
                .collect();
            Ok(Output::ok(lines))
        }
        Some("wide") | None => {
            let table = s.call(Method::GET, &url, TABLE, None).await?;
            Ok(print_table(&table, output == Some("wide"), all, show_labels, &s.namespace))
        }
        Some(other) => Err(Output::fail(format!("error: unable to match a printer suitable for the output format \"{other}\", allowed formats are: json,name,wide,yaml"), 1)),
    }
}

/// A Table as kubectl prints it: upper-case headers, columns three spaces apart.
pub fn print_table(
    table: &Value,
    wide: bool,
    all: bool,
    show_labels: bool,
    namespace: &str,
) -> Output {
    let defs = table["columnDefinitions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let keep: Vec<usize> = defs
        .iter()
        .enumerate()
        .filter(|(_, d)| wide || d["priority"].as_i64().unwrap_or(0) == 0)
        .map(|(i, _)| i)
        .collect();
    let rows = table["rows"].as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        let text = if all {
            "No resources found\n".to_string()
        } else {
            format!("No resources found in {namespace} namespace.\n")
        };
        return Output {
            stderr: text,
            ..Output::default()
        };
    }
    let mut lines: Vec<Vec<String>> = Vec::new();
    let mut head: Vec<String> = keep
        .iter()
        .map(|&i| defs[i]["name"].as_str().unwrap_or("").to_uppercase())
        .collect();
    if all {
        head.insert(0, "NAMESPACE".into());
    }
    if show_labels {
        head.push("LABELS".into());
    }
    lines.push(head);
    for row in &rows {
        let cells = row["cells"].as_array().cloned().unwrap_or_default();
        let mut line: Vec<String> = keep
            .iter()
            .map(|&i| match &cells.get(i) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => "<none>".into(),
                Some(other) => other.to_string(),
            })
            .collect();
        let meta = &row["object"]["metadata"];
        if all {
            line.insert(0, meta["namespace"].as_str().unwrap_or("").to_string());
        }
        if show_labels {
            let labels: Vec<String> = meta["labels"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                        .collect()
                })
                .unwrap_or_default();
            line.push(if labels.is_empty() {
                "<none>".into()
            } else {
                labels.join(",")
            });
        }
        lines.push(line);
    }
    Output::ok(super::columns(&lines))
}

async fn run_pod(
    s: &Session,
    name: &str,
    image: &str,
    command: bool,
    args: Vec<String>,
) -> Result<Output, Output> {
    let mut container = json!({"name": name, "image": image, "resources": {}});
    if !args.is_empty() {
        container[if command { "command" } else { "args" }] = json!(args);
    }
    let pod = json!({"kind": "Pod", "apiVersion": "v1",
        "metadata": {"name": name, "creationTimestamp": null, "labels": {"run": name}},
        "spec": {"containers": [container], "restartPolicy": "Always", "dnsPolicy": "ClusterFirst"},
        "status": {}});
    let rt = find("pods").expect("pods are served");
    s.call(
        Method::POST,
        &rt.url(Some(&s.namespace), None),
        "application/json",
        Some(pod),
    )
    .await?;
    Ok(Output::ok(format!("pod/{name} created\n")))
}

async fn create_deployment(
    s: &Session,
    name: &str,
    image: &str,
    replicas: i32,
) -> Result<Output, Output> {
    let container = image
        .rsplit('/')
        .next()
        .unwrap_or(image)
        .split(':')
        .next()
        .unwrap_or(image);
    let d = json!({"kind": "Deployment", "apiVersion": "apps/v1",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": container, "image": image, "resources": {}}]}},
                 "strategy": {}}});
    let rt = find("deployments").expect("deployments are served");
    s.call(
        Method::POST,
        &rt.url(Some(&s.namespace), None),
        "application/json",
        Some(d),
    )
    .await?;
    Ok(Output::ok(format!("deployment.apps/{name} created\n")))
}

async fn scale(s: &Session, target: &str, replicas: i32) -> Result<Output, Output> {
    let (resource, name) = target.split_once('/').unwrap_or(("", target));
    let Some(rt) = find(resource) else {
        return Err(unknown(resource));
    };
    let url = format!("{}/scale", rt.url(Some(&s.namespace), Some(name)));
    let body = Some((
        "application/merge-patch+json",
        json!({"spec": {"replicas": replicas}})
            .to_string()
            .into_bytes(),
    ));
    let (code, bytes) = s
        .client
        .raw(Method::PATCH, &url, "application/json", body)
        .await
        .map_err(|e| s.unreachable(&e))?;
    if !(200..300).contains(&code) {
        let e = Client::error_of(code, &bytes);
        return Err(Output::fail(
            format!("Error from server ({}): {e}", reason(&e, code)),
            1,
        ));
    }
    Ok(Output::ok(format!("{} scaled\n", qualified(rt, name))))
}

async fn delete(s: &Session, resource: &str, name: &str) -> Result<Output, Output> {
    let Some(rt) = find(resource) else {
        return Err(unknown(resource));
    };
    let url = rt.url(Some(&s.namespace), Some(name));
    s.call(
        Method::DELETE,
        &url,
        "application/json",
        Some(json!({"propagationPolicy": "Background"})),
    )
    .await?;
    // kubectl waits until the object is gone (a running pod: until its kubelet confirms).
    let clock = s.client.clock().clone();
    let deadline = clock.now() + std::time::Duration::from_secs(30);
    while clock.now() < deadline {
        match s.call(Method::GET, &url, "application/json", None).await {
            Err(_) => break,
            Ok(_) => clock.sleep(std::time::Duration::from_millis(100)).await,
        }
    }
    Ok(Output::ok(format!(
        "{} \"{name}\" deleted\n",
        kind_name(rt)
    )))
}

async fn logs(s: &Session, name: &str, tail: Option<i64>) -> Result<Output, Output> {
    let rt = find("pods").expect("pods are served");
    let mut url = format!("{}/log", rt.url(Some(&s.namespace), Some(name)));
    if let Some(t) = tail {
        url.push_str(&format!("?tailLines={t}"));
    }
    match s.call(Method::GET, &url, "text/plain", None).await {
        Ok(Value::String(text)) => Ok(Output::ok(text)),
        Ok(other) => Ok(Output::ok(other.to_string())),
        Err(mut e) => {
            e.stderr = e
                .stderr
                .replacen("Error from server", "error: error from server", 1);
            Err(e)
        }
    }
}

/// exec, attach, cp, port-forward: the pod's subresource, asked as kubectl asks it
/// (a POST); the apiserver answers why it cannot, and that is what is printed.
async fn not_here(s: &Session, pod: &str, sub: &str) -> Result<Output, Output> {
    let rt = find("pods").expect("pods are served");
    let url = format!("{}/{sub}", rt.url(Some(&s.namespace), Some(pod)));
    s.call(Method::POST, &url, "application/json", None).await?;
    Ok(Output::default())
}

/// `kubectl get --raw URI`: the body as it is; a failure as kubectl reports one.
async fn raw(s: &Session, uri: &str) -> Result<Output, Output> {
    let (code, bytes) = s
        .client
        .raw(Method::GET, uri, "*/*", None)
        .await
        .map_err(|e| s.unreachable(&e))?;
    let body = String::from_utf8_lossy(&bytes).into_owned();
    if (200..300).contains(&code) {
        return Ok(Output::ok(body));
    }
    let text = body.replace('\n', "\\n");
    Err(Output::fail(
        format!("Error from server (InternalError): an error on the server (\"{text}\") has prevented the request from succeeding"),
        1,
    ))
}

async fn version(s: &Session) -> Result<Output, Output> {
    let v = s
        .call(Method::GET, "/version", "application/json", None)
        .await?;
    Ok(Output::ok(format!(
        "Client Version: v1.32.0-miniplane\nKustomize Version: v5.5.0\nServer Version: {}\n",
        v["gitVersion"].as_str().unwrap_or("")
    )))
}

/// `kubectl config ...` edits and shows the node's kubeconfig file.
fn config(node: &Node, what: &Config) -> Output {
    let text = node.ctx.read(ADMIN_CONF).unwrap_or_default();
    let mut k = Kubeconfig::parse(&text).unwrap_or_default();
    match what {
        Config::SetCluster { name, server } => {
            match k.clusters.iter_mut().find(|c| &c.name == name) {
                Some(c) => {
                    if let Some(s) = server {
                        c.cluster.server = s.clone();
                    }
                }
                None => k.clusters.push(NamedCluster {
                    name: name.clone(),
                    cluster: client_go::kubeconfig::Cluster {
                        server: server.clone().unwrap_or_default(),
                        ..Default::default()
                    },
                }),
            }
            if let Err(e) = node.ctx.write(ADMIN_CONF, &k.to_yaml()) {
                return Output::fail(format!("error: {e}"), 1);
            }
            Output::ok(format!("Cluster \"{name}\" set.\n"))
        }
        Config::View => {
            for c in &mut k.clusters {
                if !c.cluster.certificate_authority_data.is_empty() {
                    c.cluster.certificate_authority_data = "DATA+OMITTED".into();
                }
            }
            for u in &mut k.users {
                if !u.user.token.is_empty() {
                    u.user.token = "REDACTED".into();
                }
            }
            Output::ok(k.to_yaml())
        }
        Config::CurrentContext => Output::ok(format!("{}\n", k.current_context)),
    }
}
