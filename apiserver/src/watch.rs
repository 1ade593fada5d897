//! Watch: the etcd watch on a registry prefix, turned into Kubernetes watch events.
//!
//! etcd reports `PUT` and `DELETE` on keys, each at a revision. Kubernetes reports
//! `ADDED`, `MODIFIED` and `DELETED` on objects, each with `resourceVersion` = that
//! revision — which is why a client can resume a broken watch exactly where it stopped:
//! it asks for everything after the last resourceVersion it saw. With a selector, an
//! object that starts matching is `ADDED` and one that stops matching is `DELETED`, as
//! kube-apiserver's watch cache does.

use kvstore::proto::mvccpb::{event::EventType, Event as KvEvent, KeyValue};
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::registry::ResourceType;
use crate::rest::{object_of, selected, ListOptions};
use crate::store::Item;

fn item(kv: &KeyValue) -> Item {
    Item {
        key: String::from_utf8_lossy(&kv.key).into_owned(),
        value: kv.value.clone(),
        mod_revision: kv.mod_revision,
    }
}

/// The Kubernetes event for one etcd event, or `None` if the selector filters it out.
pub fn translate(
    rt: &ResourceType,
    opts: &ListOptions,
    event: &KvEvent,
) -> Result<Option<(&'static str, Value)>> {
    let Some(kv) = &event.kv else {
        return Ok(None);
    };
    let prev = match &event.prev_kv {
        Some(p) => Some(object_of(&item(p))?),
        None => None,
    };
    let was = prev.as_ref().is_some_and(|p| selected(rt, p, opts));
    if event.r#type == EventType::Delete as i32 {
        let Some(mut last) = prev.filter(|_| was) else {
            return Ok(None);
        };
        // The last state, stamped with the revision of the deletion.
        last["metadata"]["resourceVersion"] = json!(kv.mod_revision.to_string());
        return Ok(Some(("DELETED", last)));
    }
    let now = object_of(&item(kv))?;
    let is = selected(rt, &now, opts);
    Ok(match (was, is) {
        (_, true) if prev.is_none() => Some(("ADDED", now)),
        (true, true) => Some(("MODIFIED", now)),
        (false, true) => Some(("ADDED", now)),
        (true, false) => {
            let mut gone = now;
            gone["metadata"]["resourceVersion"] = json!(kv.mod_revision.to_string());
            Some(("DELETED", gone))
        }
        (false, false) => None,
    })
}

/// The `ERROR` event of a watch that asked for compacted history.
pub fn expired(requested: i64, compacted: i64) -> Error {
    Error::Expired(format!(
        "too old resource version: {requested} ({})",
        compacted.saturating_sub(1).max(0)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::find;
    use crate::selectors::parse_fields;

    fn kv(name: &str, node: &str, rev: i64) -> KeyValue {
        let pod = json!({"metadata": {"name": name, "namespace": "default"},
                         "spec": {"nodeName": node, "containers": []}});
        KeyValue {
            key: format!("/registry/pods/default/{name}").into_bytes(),
            value: serde_json::to_vec(&pod).unwrap(),
            mod_revision: rev,
            create_revision: rev,
            ..KeyValue::default()
        }
    }

    #[test]
    fn selector_transitions_become_added_and_deleted() {
        let pods = find("", "v1", "pods").unwrap();
        let opts = ListOptions {
            fields: parse_fields("spec.nodeName=node3").unwrap(),
            ..ListOptions::default()
        };
        let put = |now: KeyValue, prev: Option<KeyValue>| KvEvent {
            r#type: EventType::Put as i32,
            kv: Some(now),
            prev_kv: prev,
        };
        let e = put(kv("a", "", 5), None);
        assert!(translate(pods, &opts, &e).unwrap().is_none());
        let e = put(kv("a", "node3", 6), Some(kv("a", "", 5)));
        let (t, obj) = translate(pods, &opts, &e).unwrap().unwrap();
        assert_eq!(
            (t, obj["metadata"]["resourceVersion"].as_str()),
            ("ADDED", Some("6"))
        );
        let e = put(kv("a", "node1", 7), Some(kv("a", "node3", 6)));
        assert_eq!(translate(pods, &opts, &e).unwrap().unwrap().0, "DELETED");
        let mut gone = kv("a", "", 8);
        gone.value.clear();
        let e = KvEvent {
            r#type: EventType::Delete as i32,
            kv: Some(gone),
            prev_kv: Some(kv("a", "node3", 6)),
        };
        let (t, obj) = translate(pods, &opts, &e).unwrap().unwrap();
        assert_eq!(
            (t, obj["metadata"]["resourceVersion"].as_str()),
            ("DELETED", Some("8"))
        );
    }
}
