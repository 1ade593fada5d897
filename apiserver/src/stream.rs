//! Response bodies for collections: a `PodList`, a `Table`, or a watch — a stream of
//! `{"type":"ADDED","object":{...}}` lines, one flushed per event (chunked HTTP).

use std::time::Duration;

use bytes::Bytes;
use jiff::Timestamp;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::registry::ResourceType;
use crate::request::ApiRequest;
use crate::response::{streamed, Body};
use crate::rest::{ListOptions, ListResult, Registry};
use crate::table::{column_definitions, row};
use crate::watch::{expired, translate};

/// A list as JSON: `{"kind":"PodList",...}`, or a Table when kubectl asked for one.
pub fn list_body(rt: &ResourceType, list: ListResult, table: bool, now: Timestamp) -> Value {
    if table {
        let mut t = table_of(rt, list.items, Some(list.revision), now);
        if !list.continue_.is_empty() {
            t["metadata"]["continue"] = json!(list.continue_);
        }
        return t;
    }
    let mut meta = json!({"resourceVersion": list.revision.to_string()});
    if !list.continue_.is_empty() {
        meta["continue"] = json!(list.continue_);
    }
    json!({"kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(),
           "metadata": meta, "items": list.items})
}

/// A `meta.k8s.io/v1` Table of objects.
pub fn table_of(
    rt: &ResourceType,
    items: Vec<Value>,
    revision: Option<i64>,
    now: Timestamp,
) -> Value {
    let rows: Vec<Value> = items
        .iter()
        .map(|v| row((rt.cells)(v, now), &v["metadata"]))
        .collect();
    let mut meta = json!({});
    let rv = revision.map(|r| r.to_string()).or_else(|| {
        items.first().and_then(|v| {
            v["metadata"]["resourceVersion"]
                .as_str()
                .map(str::to_string)
        })
    });
    if let Some(rv) = rv {
        meta["resourceVersion"] = json!(rv);
    }
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
           "columnDefinitions": column_definitions(&(rt.columns)()), "rows": rows})
}

fn line(type_: &str, object: &Value) -> Bytes {
    let mut bytes = serde_json::to_vec(&json!({"type": type_, "object": object}))
        .expect("a JSON value always serialises");
    bytes.push(b'\n');
    Bytes::from(bytes)
}

/// `?watch=true`: streams events until the client goes away, `timeoutSeconds` passes,
/// or etcd cannot be reached to resume.
pub async fn watch(
    registry: Registry,
    rt: &'static ResourceType,
    namespace: Option<String>,
    req: &ApiRequest,
    opts: ListOptions,
) -> Result<hyper::Response<Body>> {
    let rv = req
        .query
        .get("resourceVersion")
        .cloned()
        .unwrap_or_default();
    let table = req.accept.contains("as=Table");
    let timeout = req
        .query
        .get("timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .map(Duration::from_secs);
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    // Where to start: after the given revision, or after a list whose items are sent
    // first as ADDED ("get state and start at most recent").
    let mut initial = Vec::new();
    let start = if rv.is_empty() || rv == "0" {
        let list = registry.list(rt, namespace.as_deref(), &opts).await?;
        initial = list.items;
        list.revision + 1
    } else {
        rv.parse::<i64>()
            .ok()
            .and_then(|n| n.checked_add(1))
            .ok_or_else(|| Error::BadRequest(format!("invalid resource version: {rv}")))?
    };
    let render = move |v: &Value, now: Timestamp| {
        if table {
            table_of(rt, vec![v.clone()], None, now)
        } else {
            v.clone()
        }
    };
    let clock = registry.clock.clone();
    let prefix = rt.prefix(namespace.as_deref());
    tokio::spawn(async move {
        let run = async {
            for v in &initial {
                if tx
                    .send(line("ADDED", &render(v, api::time::now(&*clock))))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            let mut next = start;
            // A broken etcd watch is resumed from the next revision, on any member.
            let mut failures = 0;
            while failures < 20 {
                let mut events = match registry.store.watch(&prefix, next).await {
                    Ok(events) => events,
                    Err(Error::Expired(_)) => {
                        let status = expired(start - 1, next).to_status();
                        let _ = tx.send(line("ERROR", &json!(status))).await;
                        return;
                    }
                    Err(_) => {
                        failures += 1;
                        clock.sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                loop {
                    let message = match events.message().await {
                        Ok(Some(m)) => m,
                        _ => break,
                    };
                    if message.canceled {
                        let status = expired(start - 1, message.compact_revision).to_status();
                        let _ = tx.send(line("ERROR", &json!(status))).await;
                        return;
                    }
                    for event in &message.events {
                        if let Some(kv) = &event.kv {
                            next = kv.mod_revision + 1;
                        }
                        match translate(rt, &opts, event) {
                            Ok(Some((type_, v))) => {
                                if tx
                                    .send(line(type_, &render(&v, api::time::now(&*clock))))
                                    .await
                                    .is_err()
                                {
                                    return;
                                }
                            }
                            Ok(None) => {}
                            Err(e) => tracing::warn!(error = %e, "skipping an unreadable object"),
                        }
                    }
                }
                failures += 1;
            }
        };
        let closed = tx.closed();
        let bounded = async {
            match timeout {
                Some(t) => {
                    let _ = clock.timeout(t, run).await;
                }
                None => run.await,
            }
        };
        // The client hung up (or the server stopped): stop watching etcd at once.
        tokio::select! {
            biased;
            _ = bounded => {}
            _ = closed => {}
        }
    });
    Ok(streamed(rx))
}
