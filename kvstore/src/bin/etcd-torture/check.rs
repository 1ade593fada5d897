//! The verdict: after the faults stop, is everything that was promised still there,
//! on every member, and do the members hold the same history?
//!
//! 1. Wait until the members *converge*: the same revision and applied index on all
//!    three, twice in a row.
//! 2. Read every `torture/` key from each member with **serializable** reads (answered
//!    from that member's own store, not forwarded), page by page.
//! 3. Hold each member's keys against the ledger: every acknowledged key present with
//!    its value and the revision it was acknowledged at; an indeterminate key absent
//!    or with its own value; a key that was certainly not applied absent; no key
//!    nobody wrote.
//! 4. Ask each member for `HashKV` at the common revision: equal hashes mean equal
//!    histories, byte for byte, compacted part included.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use kvstore::proto::etcdserverpb::RangeRequest;

use crate::cluster::Cluster;
use crate::writers::{kv_client, Ledger, PREFIX};

/// What the check found.
#[derive(Debug, Default)]
pub struct Findings {
    /// The revision the members agreed on (0: they never converged).
    pub revision: i64,
    /// Acknowledged keys missing from at least one member.
    pub lost: usize,
    /// Keys with a value (or revision) other than the one written, on some member.
    pub wrong: usize,
    /// Keys that were certainly not applied, yet are there.
    pub phantom: usize,
    /// Indeterminate writes that turned out to be applied.
    pub maybe_applied: usize,
    /// HashKV of each member: (hash, compact revision), or the error.
    pub hashes: Vec<Result<(u32, i64), String>>,
    /// Problems, in words.
    pub problems: Vec<String>,
}

/// Waits (up to a minute) until the members report the same revision and applied
/// index twice in a row; returns the revision, or what each member last reported
/// (revision, applied index; `None` for no answer).
pub async fn converge(cluster: &Cluster) -> Result<i64, Vec<Option<(i64, u64)>>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = None;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        seen.clear();
        for i in 0..cluster.members.len() {
            let status = cluster.status(i).await;
            seen.push(status.map(|s| (s.header.map_or(0, |h| h.revision), s.raft_applied_index)));
        }
        let agreed = seen.iter().all(Option::is_some) && seen.windows(2).all(|w| w[0] == w[1]);
        if agreed && last == Some(seen[0]) {
            return Ok(seen[0].map_or(0, |(revision, _)| revision));
        }
        last = agreed.then(|| seen[0]);
        tokio::time::sleep(Duration::from_millis(300)).await; // polling a condition
    }
    Err(seen)
}

/// Every `torture/` key on one member: key → (value, mod revision).
async fn read_all(url: &str) -> Result<BTreeMap<String, (String, i64)>, String> {
    let mut client = kv_client(url);
    let mut found = BTreeMap::new();
    let mut from = PREFIX.as_bytes().to_vec();
    let mut end = PREFIX.as_bytes().to_vec();
    *end.last_mut().expect("a prefix") += 1; // "torture0": just past the prefix
    loop {
        let request = RangeRequest {
            key: from.clone(),
            range_end: end.clone(),
            limit: 2000,
            serializable: true,
            ..Default::default()
        };
        let page = client
            .range(request)
            .await
            .map_err(|e| format!("read {url}: {}", e.message()))?
            .into_inner();
        for kv in &page.kvs {
            let key = String::from_utf8_lossy(&kv.key).into_owned();
            let value = String::from_utf8_lossy(&kv.value).into_owned();
            found.insert(key, (value, kv.mod_revision));
        }
        match page.kvs.last() {
            Some(last) if page.more => {
                from = last.key.clone();
                from.push(0); // the next key after it
            }
            _ => return Ok(found),
        }
    }
}

/// Runs the whole check.
pub async fn run(cluster: &Cluster, ledger: &Ledger) -> Findings {
    let mut f = Findings::default();
    let revision = match converge(cluster).await {
        Ok(revision) => revision,
        Err(last) => {
            f.problems.push(format!(
                "the members did not converge within 60 s; last (revision, applied index) of each: {last:?}"
            ));
            return f;
        }
    };
    f.revision = revision;
    // What each key may hold: (value, Some(revision) if acknowledged).
    let mut expected: HashMap<&str, (&str, Option<i64>)> = HashMap::new();
    for w in &ledger.maybe {
        for (k, v) in &w.pairs {
            expected.insert(k, (v, None));
        }
    }
    for w in &ledger.acked {
        for (k, v) in &w.pairs {
            expected.insert(k, (v, Some(w.revision)));
        }
    }
    let never: HashMap<&str, &str> = ledger
        .not_applied
        .iter()
        .flat_map(|w| w.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .collect();
    // Keys, not members: a key lost on two members is one lost write.
    let mut lost: BTreeSet<&str> = BTreeSet::new();
    let mut wrong: BTreeSet<String> = BTreeSet::new();
    let mut phantom: BTreeSet<&str> = BTreeSet::new();
    let mut applied: BTreeSet<&str> = BTreeSet::new();
    for m in &cluster.members {
        let found = match read_all(&m.client_url).await {
            Ok(found) => found,
            Err(e) => {
                f.problems.push(e);
                continue;
            }
        };
        for (key, (value, revision)) in &expected {
            match (found.get(*key), revision) {
                (None, Some(_)) => {
                    lost.insert(*key);
                }
                (None, None) => {}
                (Some((v, r)), Some(acked)) if v == value && r == acked => {}
                (Some((v, _)), None) if v == value => {
                    applied.insert(*key);
                }
                (Some(_), _) => {
                    wrong.insert(key.to_string());
                }
            }
        }
        for key in found.keys() {
            if let Some((k, _)) = never.get_key_value(key.as_str()) {
                phantom.insert(k);
            } else if !expected.contains_key(key.as_str()) {
                wrong.insert(key.clone()); // a key nobody wrote
            }
        }
    }
    for key in lost.iter().take(5) {
        f.problems.push(format!("lost: {key}"));
    }
    for key in wrong.iter().take(5) {
        f.problems.push(format!("wrong value: {key}"));
    }
    for key in phantom.iter().take(5) {
        f.problems.push(format!("applied although refused: {key}"));
    }
    (f.lost, f.wrong, f.phantom) = (lost.len(), wrong.len(), phantom.len());
    // A key written in a two-key transaction counts once per key here.
    f.maybe_applied = applied.len();
    for i in 0..cluster.members.len() {
        f.hashes.push(cluster.hash_kv(i, revision).await);
    }
    let first = &f.hashes[0];
    if first.is_err() || f.hashes.iter().any(|h| h != first) {
        f.problems.push(format!(
            "HashKV at revision {revision} differs: {:?}",
            f.hashes
        ));
    }
    f
}
