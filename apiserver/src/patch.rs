//! PATCH bodies: JSON merge patch (RFC 7386) and Kubernetes' strategic merge patch.
//!
//! A merge patch is a partial object: maps merge key by key, `null` deletes, and
//! anything else (lists included) replaces. Strategic merge patch, what `kubectl apply`
//! sends, differs in one way that matters: some lists are *merged by a key*, so a patch
//! that lists one container by `name` changes that container instead of replacing the
//! whole list. The keys come from the Go types' `patchMergeKey` tags; the ones for the
//! kinds served here are in [`merge_key`]. Directives kubectl adds
//! (`$setElementOrder/<list>`, `$retainKeys`, `$patch`) are honoured or dropped.
//!
//! A patch comes from a client, so the work it causes stays linear in its size: list
//! elements are found by their merge key through a map, never by scanning the list once
//! per patch element (a 3 MiB patch holds some 100 000 elements, and that scan would be
//! 10^10 comparisons). Recursion depth is bounded by the body's nesting depth, which
//! [`crate::body`] has checked.

use std::collections::{HashMap, HashSet};

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
                let gone: HashSet<String> = gone.iter().map(Value::to_string).collect();
                have.retain(|v| !gone.contains(&v.to_string()));
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
    // Where each key's element is (keys as JSON text: merge keys are strings or
    // numbers); deletions are marked and made at the end, so positions hold.
    let mut at: HashMap<String, usize> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        if let Some(id) = item.get(merge_on) {
            at.entry(id.to_string()).or_insert(i);
        }
    }
    let mut deleted = vec![false; items.len()];
    for p in patch {
        let Some(id) = p.get(merge_on).map(Value::to_string) else {
            items.push(p.clone());
            deleted.push(false);
            continue;
        };
        let delete = p.get("$patch").and_then(Value::as_str) == Some("delete");
        match at.get(&id).copied().filter(|i| !deleted[*i]) {
            Some(i) if delete => deleted[i] = true,
            Some(i) => strategic_merge_patch(&mut items[i], p),
            None if delete => {}
            None => {
                let mut fresh = Value::Null;
                strategic_merge_patch(&mut fresh, p);
                at.insert(id, items.len());
                items.push(fresh);
                deleted.push(false);
            }
        }
    }
    let mut gone = deleted.into_iter();
    items.retain(|_| !gone.next().unwrap_or(false));
}

/// `$setElementOrder`: the listed elements first, in that order; the others after.
fn reorder(items: &mut Vec<Value>, order: &Value, merge_on: &str) {
    let Value::Array(order) = order else { return };
    let mut slots: Vec<Option<Value>> = std::mem::take(items).into_iter().map(Some).collect();
    let mut at: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, item) in slots.iter().enumerate().rev() {
        let key = item
            .as_ref()
            .and_then(|v| v.get(merge_on))
            .map(Value::to_string);
        at.entry(key.unwrap_or_default()).or_default().push(i);
    }
    for o in order {
        let key = o.get(merge_on).map(Value::to_string).unwrap_or_default();
        // The first element still in place with that key (as a scan from the front
        // would find it).
        if let Some(i) = at.get_mut(&key).and_then(Vec::pop) {
            if let Some(v) = slots[i].take() {
                items.push(v);
            }
        }
    }
    items.extend(slots.into_iter().flatten());
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
    fn long_lists_merge_by_key_with_order_and_deletions_kept() {
        // 50 000 elements patched into 50 000: a scan per element would be 2.5e9
        // comparisons; by key it is one pass.
        let n = 50_000;
        let named = |i: usize, image: &str| json!({"name": format!("c{i}"), "image": image});
        let mut pod =
            json!({"spec": {"containers": (0..n).map(|i| named(i, "a")).collect::<Vec<_>>()}});
        let mut patch: Vec<Value> = (0..n).rev().map(|i| named(i, "b")).collect();
        patch.push(json!({"name": "c0", "$patch": "delete"}));
        patch.push(json!({"name": "new", "image": "n"}));
        patch.push(json!({"name": "new", "args": ["x"]}));
        let order: Vec<Value> = (0..n)
            .rev()
            .map(|i| json!({"name": format!("c{i}")}))
            .collect();
        strategic_merge_patch(
            &mut pod,
            &json!({"spec": {"containers": patch, "$setElementOrder/containers": order}}),
        );
        let containers = pod["spec"]["containers"].as_array().unwrap();
        assert_eq!(containers.len(), n); // one deleted, one added
        assert_eq!(containers[0], named(n - 1, "b"));
        assert_eq!(containers[n - 2], named(1, "b"));
        assert_eq!(
            containers[n - 1],
            json!({"name": "new", "image": "n", "args": ["x"]})
        );
        let mut list = json!({"finalizers": (0..n).map(|i| i.to_string()).collect::<Vec<_>>()});
        let gone: Vec<String> = (1..n).map(|i| i.to_string()).collect();
        strategic_merge_patch(
            &mut list,
            &json!({"$deleteFromPrimitiveList/finalizers": gone}),
        );
        assert_eq!(list, json!({"finalizers": ["0"]}));
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
