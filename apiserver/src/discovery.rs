//! Discovery and the other documents clients read before they act: `/version`, `/api`,
//! `/apis` (aggregated and legacy), `/api/v1`, `/apis/{group}/{version}`, and a minimal
//! OpenAPI v3.
//!
//! What kubectl 1.32 asks, in order (observed, see the crate docs): `GET /version`
//! (the installed kubectl is a dispatcher that picks a kubectl matching the server's
//! minor version), then `GET /api` and `GET /apis` asking for the *aggregated* form
//! (`application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList`). Answered in
//! that form — with that exact Content-Type — kubectl needs nothing else to map
//! `kubectl get rs` to `/apis/apps/v1/namespaces/default/replicasets`.

use serde_json::{json, Value};

use crate::registry::{all, groups, ResourceType};

/// The Content-Type of an aggregated discovery answer.
pub const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// `GET /version`: minor 32, so kubectl's dispatcher runs kubectl 1.32.
pub fn version() -> Value {
    json!({
        "major": "1", "minor": "32", "gitVersion": "v1.32.0-miniplane",
        "gitCommit": "miniplane", "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z", "goVersion": "rust",
        "compiler": "rustc", "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    })
}

const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

fn sub_verbs(sub: &str) -> Vec<&'static str> {
    match sub {
        "log" => vec!["get"],
        "binding" => vec!["create"],
        _ => vec!["get", "patch", "update"],
    }
}

fn categories(rt: &ResourceType) -> Vec<&'static str> {
    match rt.plural {
        "pods" | "replicasets" | "deployments" | "services" => vec!["all"],
        _ => vec![],
    }
}

/// `GET /api` or `GET /apis`, aggregated: every resource of the core group, or of the
/// named groups.
pub fn aggregated(core: bool) -> Value {
    let items: Vec<Value> = groups()
        .into_iter()
        .filter(|(g, _)| g.is_empty() == core)
        .map(|(group, version)| {
            let resources: Vec<Value> = all()
                .iter()
                .filter(|r| r.group == group && r.version == version)
                .map(|r| {
                    let subs: Vec<Value> = r
                        .subresources()
                        .into_iter()
                        .map(|s| {
                            let kind = match s {
                                "scale" => json!({"group": "autoscaling", "version": "v1", "kind": "Scale"}),
                                "binding" => json!({"group": "", "version": "v1", "kind": "Binding"}),
                                _ => json!({"group": r.group, "version": r.version, "kind": r.kind}),
                            };
                            json!({"subresource": s, "responseKind": kind, "verbs": sub_verbs(s)})
                        })
                        .collect();
                    json!({
                        "resource": r.plural,
                        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
                        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                        "singularResource": r.singular,
                        "verbs": VERBS,
                        "shortNames": r.short_names,
                        "categories": categories(r),
                        "subresources": subs,
                    })
                })
                .collect();
            let mut metadata = json!({"creationTimestamp": null});
            if !group.is_empty() {
                metadata["name"] = json!(group);
            }
            json!({"metadata": metadata,
                   "versions": [{"version": version, "freshness": "Current", "resources": resources}]})
        })
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2",
           "metadata": {}, "items": items})
}

/// `GET /api`, legacy form.
pub fn api_versions(address: &str) -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"],
           "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}]})
}

/// `GET /apis`, legacy form.
pub fn api_group_list() -> Value {
    let groups: Vec<Value> = groups()
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(group, version)| {
            let gv = json!({"groupVersion": format!("{group}/{version}"), "version": version});
            json!({"name": group, "versions": [gv], "preferredVersion": gv})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /apis/{group}`, legacy form; `None` for an unknown group.
pub fn api_group(group: &str) -> Option<Value> {
    let (_, version) = groups()
        .into_iter()
        .find(|(g, _)| *g == group && !g.is_empty())?;
    let gv = json!({"groupVersion": format!("{group}/{version}"), "version": version});
    Some(
        json!({"kind": "APIGroup", "apiVersion": "v1", "name": group,
                "versions": [gv], "preferredVersion": gv}),
    )
}

/// `GET /api/v1` or `GET /apis/{group}/{version}`: the resources of one group-version.
pub fn api_resource_list(group: &str, version: &str) -> Option<Value> {
    let kinds: Vec<&ResourceType> = all()
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if kinds.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for r in kinds {
        resources.push(json!({"name": r.plural, "singularName": r.singular,
            "namespaced": r.namespaced, "kind": r.kind, "verbs": VERBS,
            "shortNames": r.short_names, "categories": categories(r)}));
        for s in r.subresources() {
            let mut sub = json!({"name": format!("{}/{s}", r.plural), "singularName": "",
                "namespaced": r.namespaced, "kind": r.kind, "verbs": sub_verbs(s)});
            if s == "scale" {
                sub["group"] = json!("autoscaling");
                sub["version"] = json!("v1");
                sub["kind"] = json!("Scale");
            }
            resources.push(sub);
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                "resources": resources}),
    )
}

/// `GET /openapi/v3`: one path per group-version.
pub fn openapi_index() -> Value {
    let mut paths = serde_json::Map::new();
    for (group, version) in groups() {
        let path = if group.is_empty() {
            format!("api/{version}")
        } else {
            format!("apis/{group}/{version}")
        };
        paths.insert(
            path.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash=miniplane")}),
        );
    }
    json!({"paths": paths})
}

/// `GET /openapi/v3/{path}`: a patch operation per kind that declares the
/// `fieldValidation` parameter — all `kubectl apply` checks before it leaves validation
/// to the server. No schemas: the server validates.
pub fn openapi_group_version(path: &str) -> Option<Value> {
    let (group, version) = match path.split('/').collect::<Vec<_>>()[..] {
        ["api", v] => ("", v),
        ["apis", g, v] => (g, v),
        _ => return None,
    };
    let mut paths = serde_json::Map::new();
    for r in all()
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let base = if group.is_empty() {
            format!("/api/{version}")
        } else {
            format!("/apis/{group}/{version}")
        };
        let url = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
        } else {
            format!("{base}/{}/{{name}}", r.plural)
        };
        paths.insert(url, json!({"patch": {
            "operationId": format!("patch{}", r.kind),
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": r.kind},
            "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}],
            "responses": {"200": {"description": "OK"}}}}));
    }
    if paths.is_empty() {
        return None;
    }
    Some(
        json!({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.0"},
                "components": {"schemas": {}}, "paths": paths}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregated_discovery_lists_core_and_groups_apart() {
        let core = aggregated(true);
        let items = core["items"].as_array().unwrap();
        assert_eq!(items.len(), 1);
        assert!(items[0]["metadata"].get("name").is_none());
        let pods = &items[0]["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "pods")
            .unwrap()
            .clone();
        assert_eq!(pods["scope"], "Namespaced");
        assert_eq!(pods["shortNames"], json!(["po"]));
        let groups = aggregated(false);
        let names: Vec<&str> = groups["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["apps", "coordination.k8s.io"]);
    }

    #[test]
    fn openapi_declares_field_validation_for_patches() {
        let doc = openapi_group_version("apis/apps/v1").unwrap();
        let op = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/replicasets/{name}"]["patch"];
        assert_eq!(op["parameters"][0]["name"], "fieldValidation");
        assert!(openapi_group_version("apis/nope/v1").is_none());
        assert!(openapi_index()["paths"].get("api/v1").is_some());
    }
}
