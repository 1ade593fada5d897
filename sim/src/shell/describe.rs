//! `kubectl describe pod NAME`: the pod as kubectl lays it out — its fields, its
//! containers, its conditions — and the events about it, fetched with a field selector
//! on `involvedObject`, as the real kubectl does.

use hyper::Method;
use serde_json::Value;

use super::kubectl::{find, Session};
use super::Output;

/// Describes one pod.
pub(super) async fn describe(s: &Session, resource: &str, name: &str) -> Result<Output, Output> {
    let Some(rt) = find(resource).filter(|rt| rt.plural == "pods") else {
        return Err(Output::fail("error: this kubectl describes pods only", 1));
    };
    let pod = s
        .call(
            Method::GET,
            &rt.url(Some(&s.namespace), Some(name)),
            "application/json",
            None,
        )
        .await?;
    let m = &pod["metadata"];
    let str_of = |v: &Value| v.as_str().unwrap_or("").to_string();
    let labels = m["labels"]
        .as_object()
        .map(|l| {
            l.iter()
                .map(|(k, v)| format!("{k}={}", str_of(v)))
                .collect::<Vec<_>>()
                .join("\n                  ")
        })
        .unwrap_or_default();
    let mut out = String::new();
    let mut line = |k: &str, v: String| {
        out.push_str(&format!(
            "{:<18}{}\n",
            format!("{k}:"),
            if v.is_empty() { "<none>".into() } else { v }
        ))
    };
    line("Name", str_of(&m["name"]));
    line("Namespace", str_of(&m["namespace"]));
    let node = str_of(&pod["spec"]["nodeName"]);
    let host = str_of(&pod["status"]["hostIP"]);
    line(
        "Node",
        if node.is_empty() {
            String::new()
        } else {
            format!("{node}/{host}")
        },
    );
    line("Labels", labels);
    line("Status", str_of(&pod["status"]["phase"]));
    line("IP", str_of(&pod["status"]["podIP"]));
    out.push_str("Containers:\n");
    for c in pod["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        out.push_str(&format!(
            "  {}:\n    Image:          {}\n",
            str_of(&c["name"]),
            str_of(&c["image"])
        ));
        for field in ["command", "args"] {
            if let Some(list) = c[field].as_array() {
                out.push_str(&format!(
                    "    {}:\n",
                    if field == "command" {
                        "Command"
                    } else {
                        "Args"
                    }
                ));
                for a in list {
                    out.push_str(&format!("      {}\n", str_of(a)));
                }
            }
        }
    }
    let events_rt = find("events").expect("events are served");
    let selector = format!("involvedObject.name%3D{name}");
    let url = format!(
        "{}?fieldSelector={selector}",
        events_rt.url(Some(&s.namespace), None)
    );
    let events = s
        .call(Method::GET, &url, "application/json", None)
        .await
        .unwrap_or_default();
    let items = events["items"].as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        out.push_str("Events:           <none>\n");
    } else {
        out.push_str("Events:\n");
        let mut rows = vec![
            vec![
                "  Type".to_string(),
                "Reason".into(),
                "From".into(),
                "Message".into(),
            ],
            vec![
                "  ----".to_string(),
                "------".into(),
                "----".into(),
                "-------".into(),
            ],
        ];
        for e in items {
            let from = match e["reportingInstance"].as_str() {
                Some(i) if !i.is_empty() => format!("{} ({i})", str_of(&e["source"]["component"])),
                _ => str_of(&e["source"]["component"]),
            };
            rows.push(vec![
                format!("  {}", str_of(&e["type"])),
                str_of(&e["reason"]),
                from,
                str_of(&e["message"]),
            ]);
        }
        out.push_str(&super::columns(&rows));
    }
    Ok(Output::ok(out))
}
