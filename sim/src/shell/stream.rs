//! The commands that do not end by themselves: `kubectl get -w`, `kubectl logs -f`,
//! `etcdctl watch`. Each writes into the line's [`Stdout`] as events come and runs
//! until its source ends, the pipe closes (`| head -n 3`), or the learner presses
//! Ctrl-C — the playground then drops the future, which closes the connection, as a
//! killed process's connections close.
//!
//! `kubectl get pods -w` is a list, then a watch from the list's resourceVersion with
//! `Accept: …as=Table…`: the apiserver sends each changed object as a one-row Table,
//! and kubectl prints the row under the header it printed first.

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::Method;
use serde_json::Value;

use super::kubectl::{find, print_table, Session, TABLE};
use super::{Output, Stdout};

/// Reads a streamed answer: each chunk as it arrives. Ends when the server ends it;
/// `Err` when the connection broke.
async fn chunks(
    response: hyper::Response<hyper::body::Incoming>,
    mut each: impl FnMut(Bytes) -> bool,
) -> Result<(), String> {
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| e.to_string())?;
        if let Ok(data) = frame.into_data() {
            if !each(data) {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// The answer's error, as kubectl prints it, when it is not a success.
async fn check(
    s: &Session,
    response: hyper::Response<hyper::body::Incoming>,
) -> Result<hyper::Response<hyper::body::Incoming>, Output> {
    let code = response.status().as_u16();
    if (200..300).contains(&code) {
        return Ok(response);
    }
    let bytes = response
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    Err(s.server_error(code, &bytes))
}

/// `kubectl get KIND [NAME] -w`: the table, then a row per change.
pub async fn get_watch(
    s: &Session,
    resource: &str,
    name: Option<&str>,
    wide: bool,
    all: bool,
    out: &Stdout,
) -> Result<Output, Output> {
    let Some(rt) = find(resource) else {
        return Err(super::kubectl::unknown(resource));
    };
    let ns = (!all).then_some(s.namespace.as_str());
    let table = s.call(Method::GET, &rt.url(ns, name), TABLE, None).await?;
    let first = print_table(&table, wide, all, false, &s.namespace);
    // "No resources found" goes to stderr and the watch goes on, as kubectl's does.
    out.eprint(&first.stderr);
    let header = first.stdout.lines().next().map(String::from);
    if !out.print(&first.stdout) {
        return Ok(Output::default());
    }
    let rv = table["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_string();
    let mut url = format!("{}?watch=true&resourceVersion={rv}", rt.url(ns, None));
    if let Some(name) = name {
        url.push_str(&format!("&fieldSelector=metadata.name%3D{name}"));
    }
    let response = s
        .client
        .send_accepting(Method::GET, &url, TABLE, None)
        .await
        .map_err(|e| s.unreachable(&e))?;
    let response = check(s, response).await?;
    let mut header = header;
    let mut pending = BytesMut::new();
    let mut failed = None;
    let read = chunks(response, |data| {
        pending.extend_from_slice(&data);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line = pending.split_to(end + 1);
            let Ok(event) = serde_json::from_slice::<Value>(&line) else {
                continue;
            };
            match event["type"].as_str() {
                Some("ERROR") => {
                    failed = Some(
                        event["object"]["message"]
                            .as_str()
                            .unwrap_or("")
                            .to_string(),
                    );
                    return false;
                }
                Some("BOOKMARK") | None => continue,
                Some(_) => {}
            }
            let printed = print_table(&event["object"], wide, all, false, &s.namespace);
            let mut lines = printed.stdout.lines();
            let head = lines.next().unwrap_or("");
            // The first row of an empty start prints the header too.
            let text = match &header {
                None => {
                    header = Some(head.to_string());
                    printed.stdout.clone()
                }
                Some(_) => lines.map(|l| format!("{l}\n")).collect(),
            };
            if !out.print(&text) {
                return false;
            }
        }
        true
    })
    .await;
    match (failed, read) {
        (Some(why), _) => Err(Output::fail(format!("error: {why}"), 1)),
        (None, Err(why)) => Err(Output::fail(
            format!("error: an error on the server (\"{why}\") has prevented the request from succeeding"),
            1,
        )),
        (None, Ok(())) => Ok(Output::default()),
    }
}

/// `kubectl logs -f POD`: the log so far, then each line as the container writes it.
pub async fn logs_follow(
    s: &Session,
    name: &str,
    tail: Option<i64>,
    out: &Stdout,
) -> Result<Output, Output> {
    let rt = find("pods").expect("pods are served");
    let mut url = format!("{}/log?follow=true", rt.url(Some(&s.namespace), Some(name)));
    if let Some(t) = tail {
        url.push_str(&format!("&tailLines={t}"));
    }
    let response = s
        .client
        .send_accepting(Method::GET, &url, "text/plain", None)
        .await
        .map_err(|e| s.unreachable(&e))?;
    let response = check(s, response).await.map_err(|mut e| {
        e.stderr = e
            .stderr
            .replacen("Error from server", "error: error from server", 1);
        e
    })?;
    chunks(response, |data| out.print(&String::from_utf8_lossy(&data)))
        .await
        .map_err(|why| Output::fail(format!("error: {why}"), 1))?;
    Ok(Output::default())
}

/// `etcdctl watch KEY [--prefix]`: each event as etcdctl prints it — the type, the
/// key, the value, each on a line.
pub async fn etcd_watch(
    client: &kvstore::client::Client,
    key: &str,
    prefix: bool,
    out: &Stdout,
) -> Result<Output, Output> {
    use kvstore::proto::etcdserverpb::WatchCreateRequest;
    use kvstore::proto::mvccpb::event::EventType;
    let create = WatchCreateRequest {
        key: key.as_bytes().to_vec(),
        range_end: if prefix {
            kvstore::request::prefix_end(key.as_bytes())
        } else {
            Vec::new()
        },
        ..Default::default()
    };
    let fail = |e: &dyn std::fmt::Display| Output::fail(format!("Error: {e}"), 1);
    let mut stream = client.watch(create).await.map_err(|e| fail(&e))?;
    loop {
        let response = match stream.message().await {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(Output::default()),
            Err(e) => return Err(fail(&e)),
        };
        if response.canceled {
            return Err(Output::fail(
                format!(
                    "watch is canceled by the server: {}",
                    response.cancel_reason
                ),
                1,
            ));
        }
        for event in response.events {
            let kind = match EventType::try_from(event.r#type) {
                Ok(EventType::Delete) => "DELETE",
                _ => "PUT",
            };
            let kv = event.kv.unwrap_or_default();
            let text = format!(
                "{kind}\n{}\n{}\n",
                String::from_utf8_lossy(&kv.key),
                String::from_utf8_lossy(&kv.value)
            );
            if !out.print(&text) {
                return Ok(Output::default());
            }
        }
    }
}
