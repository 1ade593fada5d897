//! The verbs — create, get, list, update, patch, delete — once for every kind.
//!
//! Each verb is the same short story kube-apiserver's generic registry
//! (`apiserver/pkg/registry/generic/registry/store.go`) tells: decode the body into the
//! kind's type, fill in what the server owns (uid, creationTimestamp, generation),
//! apply defaults, validate, then make one guarded etcd write. `resourceVersion` is never
//! stored; it is the key's `mod_revision`, set on every object read back.
//!
//! ## Dry run
//!
//! With `?dryRun=All` every verb runs the same story to its end — decode, defaults,
//! validation, the checks against what is stored (the object exists, or does not;
//! the resourceVersion matches) — and answers with what it would have written, but
//! makes no etcd write: each verb takes `dry_run`, and the one place each write happens
//! ([`Registry`]'s `put_new`, `put_over`, `remove`) returns instead. A dry-run create
//! answers without a resourceVersion (nothing was stored at one); a dry-run update keeps
//! the one it read, as kube-apiserver's dry-run storage does.

use serde_json::{json, Value};

use crate::error::{Error, Result, Target};
use crate::names;
use crate::patch::{merge_patch, strategic_merge_patch};
use crate::registry::ResourceType;
use crate::selectors::Selector;
use crate::store::{Item, Store, Write};
use crate::types::DeleteOptions;

/// Where a request points: a kind, a namespace (for namespaced kinds) and maybe a name.
#[derive(Clone, Copy)]
pub struct Scope<'a> {
    pub rt: &'static ResourceType,
    pub namespace: &'a str,
    pub name: &'a str,
}

impl Scope<'_> {
    fn key(&self) -> String {
        self.rt.key(self.namespace, self.name)
    }

    fn target(&self) -> Target {
        Target::new(self.rt.group, self.rt.plural, self.name)
    }
}

/// How a PATCH body is to be read (its Content-Type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Merge,
    Strategic,
    /// Server-side apply; here a merge that creates the object if it is missing.
    Apply,
}

/// A list's filters and paging.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub labels: Selector,
    pub fields: Selector,
    pub limit: i64,
    pub continue_: String,
}

/// A list result: objects plus the revision they were read at.
pub struct ListResult {
    pub items: Vec<Value>,
    pub revision: i64,
    pub continue_: String,
}

/// The registry: every verb over the store.
#[derive(Clone)]
pub struct Registry {
    pub store: Store,
    pub clock: seams::clock::SharedClock,
    /// Where UIDs and generated names come from.
    pub rng: seams::Rng,
}

/// The stored JSON of an object, with its `resourceVersion` filled in. What etcd holds
/// is not trusted to be an object (anyone with `etcdctl` can write there).
pub fn object_of(item: &Item) -> Result<Value> {
    let bad = |why: &str| Error::Internal(format!("stored object {} {why}", item.key));
    let mut v: Value =
        serde_json::from_slice(&item.value).map_err(|e| bad(&format!("is not JSON: {e}")))?;
    if !v.is_object() || !(v["metadata"].is_object() || v["metadata"].is_null()) {
        return Err(bad("is not an object with object metadata"));
    }
    v["metadata"]["resourceVersion"] = json!(item.mod_revision.to_string());
    Ok(v)
}

/// Whether an object satisfies label and field selectors.
pub fn selected(rt: &ResourceType, v: &Value, opts: &ListOptions) -> bool {
    let meta = &v["metadata"];
    let labels = |k: &str| meta["labels"][k].as_str().map(str::to_string);
    let fields = |k: &str| match k {
        "metadata.name" => meta["name"].as_str().map(str::to_string),
        "metadata.namespace" => Some(meta["namespace"].as_str().unwrap_or("").to_string()),
        other => (rt.field)(v, other),
    };
    opts.labels.matches(&labels) && opts.fields.matches(&fields)
}

fn to_bytes(v: &Value) -> Vec<u8> {
    let mut v = v.clone();
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    serde_json::to_vec(&v).expect("a JSON value always serialises")
}

impl Registry {
    /// The clock's wall time.
    pub fn now(&self) -> jiff::Timestamp {
        api::time::now(&*self.clock)
    }

    /// `metav1.Time` now, as `creationTimestamp` is written.
    fn timestamp(&self) -> String {
        api::time::rfc3339(self.now())
    }

    /// Decodes a body as the kind: shape errors are `400 BadRequest`.
    fn decode(&self, rt: &ResourceType, body: Value) -> Result<Value> {
        if !body.is_object() {
            return Err(Error::BadRequest(
                "the request body must be a JSON object".into(),
            ));
        }
        for (field, want) in [
            ("kind", rt.kind.to_string()),
            ("apiVersion", rt.api_version()),
        ] {
            match body.get(field).and_then(Value::as_str) {
                Some(have) if !have.is_empty() && have != want => {
                    return Err(Error::BadRequest(format!(
                        "the API version in the data ({}) does not match the expected API version ({})",
                        body["apiVersion"].as_str().unwrap_or(""),
                        rt.api_version()
                    )))
                }
                _ => {}
            }
        }
        let mut v = (rt.decode)(body)
            .map_err(|e| Error::BadRequest(format!("error decoding {}: {e}", rt.kind)))?;
        v["kind"] = json!(rt.kind);
        v["apiVersion"] = json!(rt.api_version());
        Ok(v)
    }

    fn check(&self, rt: &ResourceType, v: &Value, old: Option<&Value>) -> Result<()> {
        let name = v["metadata"]["name"].as_str().unwrap_or("");
        let mut causes = Vec::new();
        let bad_name = if rt.name_is_label {
            names::check_label(name)
        } else {
            names::check_subdomain(name)
        };
        if let Some(why) = bad_name {
            causes.push(crate::error::invalid("metadata.name", name, &why));
        }
        causes.extend((rt.validate)(v, old));
        if causes.is_empty() {
            return Ok(());
        }
        Err(Error::Invalid {
            group: rt.group.into(),
            kind: rt.kind.into(),
            name: name.into(),
            causes,
        })
    }

    async fn namespace_exists(&self, rt: &ResourceType, namespace: &str) -> Result<()> {
        if !rt.namespaced {
            return Ok(());
        }
        let key = format!("/registry/namespaces/{namespace}");
        match self.store.get(&key).await? {
            Some(_) => Ok(()),
            None => Err(Error::NotFound(Target::new("", "namespaces", namespace))),
        }
    }

    /// `POST`: a new object.
    pub async fn create(&self, scope: Scope<'_>, body: Value, dry_run: bool) -> Result<Value> {
        let rt = scope.rt;
        let mut v = self.decode(rt, body)?;
        let meta = &mut v["metadata"];
        if rt.namespaced {
            match meta["namespace"].as_str() {
                Some(ns) if !ns.is_empty() && ns != scope.namespace => {
                    return Err(Error::BadRequest("the namespace of the provided object does not match the namespace sent on the request".into()));
                }
                _ => meta["namespace"] = json!(scope.namespace),
            }
        } else if let Some(m) = meta.as_object_mut() {
            m.remove("namespace");
        }
        let name = meta["name"].as_str().unwrap_or("").to_string();
        let generate = meta["generateName"].as_str().unwrap_or("").to_string();
        if name.is_empty() {
            if generate.is_empty() {
                return Err(Error::Invalid {
                    group: rt.group.into(),
                    kind: rt.kind.into(),
                    name: String::new(),
                    causes: vec![crate::error::required("metadata.name")],
                });
            }
            meta["name"] = json!(format!("{generate}{}", self.rng.name_suffix(5)));
        }
        meta["uid"] = json!(self.rng.uuid());
        meta["creationTimestamp"] = json!(self.timestamp());
        if let Some(m) = meta.as_object_mut() {
            for owned in ["resourceVersion", "deletionTimestamp", "generation"] {
                m.remove(owned);
            }
        }
        if matches!(rt.plural, "replicasets" | "deployments") {
            v["metadata"]["generation"] = json!(1);
        }
        if matches!(rt.plural, "pods" | "replicasets" | "deployments") {
            // The status of a new workload is the server's to write, not the client's.
            if let Some(m) = v.as_object_mut() {
                m.remove("status");
            }
        }
        let v = (rt.defaults)(v).map_err(Error::BadRequest)?;
        self.check(rt, &v, None)?;
        self.namespace_exists(rt, scope.namespace).await?;
        let name = v["metadata"]["name"].as_str().unwrap_or("").to_string();
        let scope = Scope {
            name: &name,
            ..scope
        };
        self.put_new(scope, v, dry_run).await
    }

    /// Stores a new object under its key, if the key is free.
    async fn put_new(&self, scope: Scope<'_>, v: Value, dry_run: bool) -> Result<Value> {
        if dry_run {
            return match self.store.get(&scope.key()).await? {
                Some(_) => Err(Error::AlreadyExists(scope.target())),
                None => Ok(v),
            };
        }
        match self.store.create(&scope.key(), to_bytes(&v)).await? {
            Write::Done(rev) => Ok(with_rv(v, rev)),
            Write::Refused => Err(Error::AlreadyExists(scope.target())),
        }
    }

    /// Stores `new` over the object read at `rev`, if it is still at `rev`.
    async fn put_over(
        &self,
        scope: Scope<'_>,
        new: Value,
        rev: i64,
        dry_run: bool,
    ) -> Result<Value> {
        if dry_run {
            return Ok(with_rv(new, rev));
        }
        match self.store.update(&scope.key(), to_bytes(&new), rev).await? {
            Write::Done(rev) => Ok(with_rv(new, rev)),
            Write::Refused => Err(Error::Conflict(scope.target())),
        }
    }

    /// Reads one object as its kind: a stored value of the wrong shape is an internal
    /// error, so the verbs below always work on a well-formed object.
    async fn read(&self, scope: Scope<'_>) -> Result<(Value, i64)> {
        let Some(item) = self.store.get(&scope.key()).await? else {
            return Err(Error::NotFound(scope.target()));
        };
        let v = (scope.rt.decode)(object_of(&item)?).map_err(|e| {
            Error::Internal(format!(
                "stored object {} is not a {}: {e}",
                item.key, scope.rt.kind
            ))
        })?;
        Ok((v, item.mod_revision))
    }

    /// `GET` one object.
    pub async fn get(&self, scope: Scope<'_>) -> Result<Value> {
        self.read(scope).await.map(|(v, _)| v)
    }

    /// `GET` a collection: one namespace (or all), filtered, maybe paged.
    pub async fn list(
        &self,
        rt: &'static ResourceType,
        namespace: Option<&str>,
        opts: &ListOptions,
    ) -> Result<ListResult> {
        let prefix = rt.prefix(namespace);
        let (start, revision) = match opts.continue_.split_once('/') {
            Some((rev, key)) if !opts.continue_.is_empty() => {
                let rev = rev.parse().map_err(|_| bad_continue())?;
                if !key.starts_with(&prefix) {
                    return Err(bad_continue());
                }
                (key.to_string(), rev)
            }
            _ if !opts.continue_.is_empty() => return Err(bad_continue()),
            _ => (prefix.clone(), 0),
        };
        let page = self
            .store
            .list(&prefix, &start, revision, opts.limit)
            .await?;
        let mut items = Vec::with_capacity(page.items.len());
        for item in &page.items {
            let v = object_of(item)?;
            if selected(rt, &v, opts) {
                items.push(v);
            }
        }
        let continue_ = match (page.more, page.items.last()) {
            (true, Some(last)) => format!("{}/{}\u{0}", page.revision, last.key),
            _ => String::new(),
        };
        Ok(ListResult {
            items,
            revision: page.revision,
            continue_,
        })
    }

    /// `PUT`: replace an object (or, with `subresource = "status"`, only its status).
    pub async fn update(
        &self,
        scope: Scope<'_>,
        body: Value,
        status_only: bool,
        dry_run: bool,
    ) -> Result<Value> {
        let rt = scope.rt;
        let new = self.decode(rt, body)?;
        let name = new["metadata"]["name"].as_str().unwrap_or("");
        if !name.is_empty() && name != scope.name {
            return Err(Error::BadRequest(format!(
                "the name of the object ({name}) does not match the name on the URL ({})",
                scope.name
            )));
        }
        let (old, rev) = self.read(scope).await?;
        self.write_update(scope, old, rev, new, status_only, dry_run)
            .await
    }

    /// Turns a decoded `new` into the object to store next to `old`, and stores it.
    async fn write_update(
        &self,
        scope: Scope<'_>,
        old: Value,
        rev: i64,
        mut new: Value,
        status_only: bool,
        dry_run: bool,
    ) -> Result<Value> {
        let rt = scope.rt;
        if let Some(expected) = new["metadata"]["resourceVersion"].as_str() {
            if !expected.is_empty() && expected != rev.to_string() {
                return Err(Error::Conflict(scope.target()));
            }
        }
        if status_only {
            let status = new["status"].clone();
            new = old.clone();
            new["status"] = status;
        } else if rt.has_status {
            new["status"] = old["status"].clone();
        }
        for owned in [
            "uid",
            "creationTimestamp",
            "namespace",
            "generation",
            "deletionTimestamp",
        ] {
            match old["metadata"].get(owned) {
                Some(v) => new["metadata"][owned] = v.clone(),
                None => {
                    if let Some(m) = new["metadata"].as_object_mut() {
                        m.remove(owned);
                    }
                }
            }
        }
        new["metadata"]["name"] = json!(scope.name);
        if new.get("spec") != old.get("spec") && old["metadata"].get("generation").is_some() {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            new["metadata"]["generation"] = json!(generation);
        }
        let mut new = (rt.defaults)(new).map_err(Error::BadRequest)?;
        new["metadata"]["resourceVersion"] = json!(rev.to_string());
        self.check(rt, &new, Some(&old))?;
        if new == old {
            // Nothing changed: no write, no new resourceVersion (as kube-apiserver).
            return Ok(old);
        }
        let marked = new["metadata"].get("deletionTimestamp").is_some();
        let no_finalizers = new["metadata"]["finalizers"]
            .as_array()
            .is_none_or(|f| f.is_empty());
        let had_finalizers = old["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        if marked && no_finalizers && had_finalizers && grace_period(rt, &new, None) == 0 {
            // The last finalizer is gone from an object marked for deletion: it goes.
            return self.remove(scope, new, rev, dry_run).await;
        }
        self.put_over(scope, new, rev, dry_run).await
    }

    /// `PATCH`: read, patch, write back guarded by what was read; retried when another
    /// writer got in between (the patch itself names no resourceVersion). Answers the
    /// object and whether it was created (server-side apply of a new object).
    pub async fn patch(
        &self,
        scope: Scope<'_>,
        kind: PatchType,
        patch: Value,
        status_only: bool,
        dry_run: bool,
    ) -> Result<(Value, bool)> {
        let patch = crate::body::object(patch, "a patch")?;
        if !(patch["metadata"].is_object() || patch["metadata"].is_null()) {
            return Err(Error::BadRequest(
                "metadata of a patch must be a JSON object".into(),
            ));
        }
        let mut attempts = 0;
        loop {
            attempts += 1;
            let (old, rev) = match self.read(scope).await {
                Ok(found) => found,
                Err(Error::NotFound(_)) if kind == PatchType::Apply => {
                    let mut body = patch.clone();
                    body["metadata"]["name"] = json!(scope.name);
                    let created = self.create(scope, body, dry_run).await?;
                    return Ok((created, true));
                }
                Err(e) => return Err(e),
            };
            let mut patched = old.clone();
            match kind {
                PatchType::Merge | PatchType::Apply => merge_patch(&mut patched, &patch),
                PatchType::Strategic => strategic_merge_patch(&mut patched, &patch),
            }
            let new = self.decode(scope.rt, patched)?;
            match self
                .write_update(scope, old, rev, new, status_only, dry_run)
                .await
            {
                Err(Error::Conflict(_)) if attempts < 5 && patch_has_no_rv(&patch) => continue,
                other => return other.map(|v| (v, false)),
            }
        }
    }

    /// `DELETE`. Most objects go at once, and the answer is their last state. Two wait:
    /// - a pod bound to a node is only *marked*: `deletionTimestamp` = now + its grace
    ///   period (shown as `Terminating`). The node's kubelet stops its containers and
    ///   then deletes it for good with a grace period of 0 — so a pod on a dead node
    ///   stays `Terminating`, as in Kubernetes;
    /// - an object with `finalizers` is marked, and goes when the last one is removed.
    pub async fn delete(
        &self,
        scope: Scope<'_>,
        opts: &DeleteOptions,
        dry_run: bool,
    ) -> Result<Value> {
        let (old, rev) = self.read(scope).await?;
        if let Some(p) = &opts.preconditions {
            let uid_ok = p
                .uid
                .as_ref()
                .is_none_or(|uid| old["metadata"]["uid"] == json!(uid));
            let rv_ok = p
                .resource_version
                .as_ref()
                .is_none_or(|rv| *rv == rev.to_string());
            if !uid_ok || !rv_ok {
                return Err(Error::Conflict(scope.target()));
            }
        }
        let grace = grace_period(scope.rt, &old, opts.grace_period_seconds);
        let finalizers = old["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        if grace > 0 || finalizers {
            if old["metadata"].get("deletionTimestamp").is_some() {
                return Ok(old); // already on its way out
            }
            let when = self.now() + jiff::SignedDuration::from_secs(grace);
            let mut marked = old.clone();
            marked["metadata"]["deletionTimestamp"] = json!(api::time::rfc3339(when));
            marked["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
            return self.put_over(scope, marked, rev, dry_run).await;
        }
        self.remove(scope, old, rev, dry_run).await
    }

    /// Deletes the object read at `rev`, if it is still at `rev`; answers its last state.
    async fn remove(&self, scope: Scope<'_>, old: Value, rev: i64, dry_run: bool) -> Result<Value> {
        if dry_run {
            return Ok(old);
        }
        match self.store.delete(&scope.key(), rev).await? {
            Write::Done(_) => Ok(old),
            Write::Refused => Err(Error::Conflict(scope.target())),
        }
    }

    /// The `/scale` subresource of a ReplicaSet or Deployment.
    pub async fn get_scale(&self, scope: Scope<'_>) -> Result<Value> {
        let v = self.get(scope).await?;
        Ok(scale_of(&v))
    }

    /// Writes `spec.replicas` from a Scale (PUT or PATCH of `/scale`).
    pub async fn update_scale(
        &self,
        scope: Scope<'_>,
        scale: Value,
        patch: Option<PatchType>,
        dry_run: bool,
    ) -> Result<Value> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let (old, rev) = self.read(scope).await?;
            let mut s = scale_of(&old);
            match patch {
                Some(_) => merge_patch(&mut s, &scale),
                None => s = scale.clone(),
            }
            let Some(replicas) = s["spec"]["replicas"].as_i64() else {
                return Err(Error::BadRequest(
                    "spec.replicas of a Scale must be an integer".into(),
                ));
            };
            let mut new = old.clone();
            new["spec"]["replicas"] = json!(replicas);
            // A PUT of a Scale that names a resourceVersion is guarded by it; a patch,
            // or a Scale without one, by what was just read.
            let expected = match s["metadata"]["resourceVersion"].as_str() {
                Some(rv) if patch.is_none() && !rv.is_empty() => rv.to_string(),
                _ => rev.to_string(),
            };
            new["metadata"]["resourceVersion"] = json!(expected);
            match self
                .write_update(scope, old, rev, new, false, dry_run)
                .await
            {
                Err(Error::Conflict(_)) if attempts < 5 && patch.is_some() => continue,
                Ok(v) => return Ok(scale_of(&v)),
                Err(e) => return Err(e),
            }
        }
    }

    /// `POST pods/{name}/binding`: sets `spec.nodeName` of a pod not yet bound.
    pub async fn bind(&self, scope: Scope<'_>, binding: Value, dry_run: bool) -> Result<Value> {
        let Some(node) = binding["target"]["name"].as_str().filter(|n| !n.is_empty()) else {
            return Err(Error::BadRequest("a Binding needs target.name".into()));
        };
        let (old, rev) = self.read(scope).await?;
        if old["spec"]["nodeName"]
            .as_str()
            .is_some_and(|n| !n.is_empty())
        {
            return Err(Error::Conflict(scope.target()));
        }
        let mut new = old.clone();
        new["spec"]["nodeName"] = json!(node);
        let conditions = new["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut conditions: Vec<Value> = conditions
            .into_iter()
            .filter(|c| c["type"] != "PodScheduled")
            .collect();
        conditions.push(json!({"type": "PodScheduled", "status": "True",
                               "lastProbeTime": null, "lastTransitionTime": self.timestamp()}));
        new["status"]["conditions"] = Value::Array(conditions);
        self.put_over(scope, new, rev, dry_run).await?;
        Ok(json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                  "status": "Success", "code": 201}))
    }
}

fn patch_has_no_rv(patch: &Value) -> bool {
    patch["metadata"]["resourceVersion"].is_null()
}

fn bad_continue() -> Error {
    Error::BadRequest("continue key is not valid".into())
}

fn with_rv(mut v: Value, rev: i64) -> Value {
    v["metadata"]["resourceVersion"] = json!(rev.to_string());
    v
}

/// The `autoscaling/v1` Scale view of a ReplicaSet or Deployment.
pub fn scale_of(v: &Value) -> Value {
    let selector: crate::types::LabelSelector =
        serde_json::from_value(v["spec"]["selector"].clone()).unwrap_or_default();
    let m = &v["metadata"];
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": m["name"], "namespace": m["namespace"], "uid": m["uid"],
                     "resourceVersion": m["resourceVersion"],
                     "creationTimestamp": m["creationTimestamp"]},
        "spec": {"replicas": v["spec"]["replicas"].as_i64().unwrap_or(1)},
        "status": {"replicas": v["status"]["replicas"].as_i64().unwrap_or(0),
                   "selector": crate::selectors::format_selector(&selector)},
    })
}

/// Seconds a deleted object waits before it is gone: only pods that a kubelet may be
/// running (bound to a node) wait — their `terminationGracePeriodSeconds`, unless the
/// request says otherwise (`--grace-period=0 --force` says 0).
fn grace_period(rt: &ResourceType, old: &Value, requested: Option<i64>) -> i64 {
    let bound = old["spec"]["nodeName"]
        .as_str()
        .is_some_and(|n| !n.is_empty());
    if rt.plural != "pods" || !bound {
        return 0;
    }
    let default = old["spec"]["terminationGracePeriodSeconds"]
        .as_i64()
        .unwrap_or(30);
    requested.unwrap_or(default).max(0)
}
