//! Where a kind lives in the URL space, as both the apiserver (routing) and the client
//! (requests) must agree.

/// `/api/v1/namespaces/{ns}/pods` for the core group, `/apis/apps/v1/replicasets` for
/// the others; a namespaced kind without a namespace is listed across all of them.
pub fn collection_url(
    group: &str,
    version: &str,
    plural: &str,
    namespaced: bool,
    namespace: Option<&str>,
) -> String {
    let base = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    match namespace {
        Some(ns) if namespaced => format!("{base}/namespaces/{ns}/{plural}"),
        _ => format!("{base}/{plural}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_and_named_groups_have_their_prefixes() {
        assert_eq!(
            collection_url("", "v1", "pods", true, Some("default")),
            "/api/v1/namespaces/default/pods"
        );
        assert_eq!(
            collection_url("apps", "v1", "replicasets", true, None),
            "/apis/apps/v1/replicasets"
        );
        assert_eq!(
            collection_url("", "v1", "nodes", false, Some("default")),
            "/api/v1/nodes"
        );
    }
}
