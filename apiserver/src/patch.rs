//! PATCH bodies: JSON merge patch (RFC 7386) and Kubernetes' strategic merge patch.
//!
//! A merge patch is a partial object: maps merge key by key, `null` deletes, and
//! anything else (lists included) replaces. Strategic merge patch, what `kubectl apply`
//! sends, differs in one way that matters: some lists are *merged by a key*, so a patch
//! that lists one container by `name` changes that container instead of replacing the
//! whole list. The keys come from the Go types' `patchMergeKey` tags; the ones for the
//! kinds served here are in [`merge_key`]. Directives kubectl adds
//! (`$setElementOrder/<list>`, `$retainKeys`, `$patch`) are honoured or dropped.

use serde_json::{Map, Value};

/// RFC 7386: apply `patch` to `target`.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(map) = target else { return };
    for (key, value) in patch {
        if value.is_null() {
            map.remove(key);
        } else {
            merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// The field that identifies elements of a list, for the lists strategic merge patch
/// merges instead of replacing (Kubernetes' `patchMergeKey` tags).
pub fn merge_key(list: &str) -> Option<&'static str> {
    Some(match list {
        "containers" | "initContainers" | "volumes" | "env" | "imagePullSecrets" => "name",
        "ports" => "containerPort",
        "volumeMounts" => "mountPath",
        "conditions" | "addresses" => "type",
        "ownerReferences" => "uid",
        "taints" => "key",
        _ => return None,
    })
}

/// Strategic merge patch of `patch` into `target`.
pub fn strategic_merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if patch.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut replacement = patch.clone();
        replacement.remove("$patch");
        *target = Value::Object(replacement);
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(map) = target else { return };
    let mut orders = Vec::new();
    for (key, value) in patch {
        if let Some(list) = key.strip_prefix("$setElementOrder/") {
            orders.push((list.to_string(), value.clone()));
            continue;
        }
        if let Some(list) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(have)), Value::Array(gone)) = (map.get_mut(list), value) {
                have.retain(|v| !gone.contains(v));
            }
            continue;
        }
        if key.starts_with('$') {
            continue;
        }
        if value.is_null() {
            map.remove(key);
            continue;
        }
        match (merge_key(key), value) {
            (Some(merge_on), Value::Array(items)) => {
                let slot = map.entry(key.clone()).or_insert(Value::Array(Vec::new()));
                merge_list(slot, items, merge_on);
            }
            _ => strategic_merge_patch(map.entry(key.clone()).or_insert(Value::Null), value),
        }
    }
    for (list, order) in orders {
        if let (Some(Value::Array(items)), Some(merge_on)) = (map.get_mut(&list), merge_key(&list))
        {
            reorder(items, &order, merge_on);
        }
    }
}

/// Merges patch elements into a list by `merge_on`: a matching element is patched (or
/// deleted with `$patch: delete`), a new one is appended.
fn merge_list(target: &mut Value, patch: &[Value], merge_on: &str) {
    if !target.is_array() {
        *target = Value::Array(Vec::new());
    }
    let Value::Array(items) = target else { return };
    for p in patch {
        let Some(id) = p.get(merge_on) else {
            items.push(p.clone());
            continue;
        };
        let delete = p.get("$patch").and_then(Value::as_str) == Some("delete");
        match items.iter().position(|i| i.get(merge_on) == Some(id)) {
            Some(at) if delete => {
                items.remove(at);
            }
            Some(at) => strategic_merge_patch(&mut items[at], p),
            None if delete => {}
            None => {
                let mut fresh = Value::Null;
                strategic_merge_patch(&mut fresh, p);
                items.push(fresh);
            }
        }
    }
}

/// `$setElementOrder`: the listed elements first, in that order; the others after.
fn reorder(items: &mut Vec<Value>, order: &Value, merge_on: &str) {
    let Value::Array(order) = order else { return };
    let mut sorted = Vec::with_capacity(items.len());
    for o in order {
        if let Some(at) = items
            .iter()
            .position(|i| i.get(merge_on) == o.get(merge_on))
        {
            sorted.push(items.remove(at));
        }
    }
    sorted.append(items);
    *items = sorted;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]});
        merge_patch(&mut doc, &json!({"a": "z", "c": {"f": null}, "l": [3]}));
        assert_eq!(doc, json!({"a": "z", "c": {"d": "e"}, "l": [3]}));
    }

    #[test]
    fn strategic_patch_merges_containers_by_name() {
        let mut pod = json!({"spec": {"containers": [
            {"name": "web", "image": "nginx:1", "args": ["a"]},
            {"name": "side", "image": "busybox"}]}});
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "side"}],
            "containers": [{"name": "web", "image": "nginx:2"}]}});
        strategic_merge_patch(&mut pod, &patch);
        let containers = pod["spec"]["containers"].as_array().unwrap();
        assert_eq!(containers.len(), 2);
        assert_eq!(
            containers[0],
            json!({"name": "web", "image": "nginx:2", "args": ["a"]})
        );
        assert!(pod["spec"].get("$setElementOrder/containers").is_none());
    }

    #[test]
    fn strategic_patch_deletes_and_replaces() {
        let mut doc = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}],
                                       "finalizers": ["x", "y"]}});
        let patch = json!({"spec": {"containers": [{"name": "a", "$patch": "delete"}],
                                    "$deleteFromPrimitiveList/finalizers": ["x"]}});
        strategic_merge_patch(&mut doc, &patch);
        assert_eq!(
            doc,
            json!({"spec": {"containers": [{"name": "b"}], "finalizers": ["y"]}})
        );
        // Lists without a merge key are replaced, as in a merge patch.
        let mut doc = json!({"args": ["a", "b"]});
        strategic_merge_patch(&mut doc, &json!({"args": ["c"]}));
        assert_eq!(doc, json!({"args": ["c"]}));
    }
}
