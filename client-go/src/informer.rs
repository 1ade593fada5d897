//! Informers: how every Kubernetes component keeps a local, current copy of the objects
//! it cares about without asking the apiserver again and again.
//!
//! 1. **List** the objects; the list's `resourceVersion` is the etcd revision it was
//!    read at.
//! 2. **Watch** from that revision: every change after it arrives as an event, in
//!    order, so the cache never misses one.
//! 3. When the watch breaks (an apiserver died, a timeout), watch again from the last
//!    `resourceVersion` seen — on another apiserver if need be.
//! 4. When the apiserver answers `410 Gone`/`Expired` (etcd compacted that history),
//!    nothing can be resumed: list again.
//!
//! Components read the cache (a snapshot of it), and get a nudge on a channel each time
//! it changes; their pure cores decide what to do from the snapshot.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::client::{Client, ListParams};
use crate::error::{Error, Result};
use api::types::{Resource, Status};

/// One watch event, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Event<T> {
    Added(T),
    Modified(T),
    Deleted(T),
    /// Only a resourceVersion: "you are up to date to here".
    Bookmark(String),
}

#[derive(Deserialize)]
struct RawEvent {
    #[serde(rename = "type")]
    type_: String,
    object: Value,
}

/// The events of one watch response, read line by line from the body.
pub struct WatchStream<T> {
    body: hyper::body::Incoming,
    buffer: BytesMut,
    _kind: PhantomData<T>,
}

impl<T: Resource> WatchStream<T> {
    pub(crate) fn new(body: hyper::body::Incoming) -> Self {
        WatchStream {
            body,
            buffer: BytesMut::new(),
            _kind: PhantomData,
        }
    }

    /// The next event; `Ok(None)` when the server ended the watch. An `ERROR` event
    /// comes back as the error its Status describes (`Expired` after compaction).
    pub async fn next(&mut self) -> Result<Option<Event<T>>> {
        loop {
            if let Some(at) = self.buffer.iter().position(|b| *b == b'\n') {
                let line = self.buffer.split_to(at + 1);
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return decode_event(&line).map(Some);
            }
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => return Err(Error::Unreachable(format!("watch: {e}"))),
                Some(Ok(frame)) => {
                    if let Ok(mut data) = frame.into_data() {
                        while data.has_remaining() {
                            let chunk = data.chunk().to_vec();
                            data.advance(chunk.len());
                            self.buffer.extend_from_slice(&chunk);
                        }
                    }
                }
            }
        }
    }
}

fn decode_event<T: Resource>(line: &[u8]) -> Result<Event<T>> {
    let raw: RawEvent = serde_json::from_slice(line)
        .map_err(|e| Error::Decode(format!("watch: unreadable event: {e}")))?;
    let object = || {
        serde_json::from_value::<T>(raw.object.clone())
            .map_err(|e| Error::Decode(format!("watch: unreadable {}: {e}", T::KIND)))
    };
    Ok(match raw.type_.as_str() {
        "ADDED" => Event::Added(object()?),
        "MODIFIED" => Event::Modified(object()?),
        "DELETED" => Event::Deleted(object()?),
        "BOOKMARK" => Event::Bookmark(
            raw.object["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        ),
        _ => {
            let status: Status = serde_json::from_value(raw.object).unwrap_or_default();
            return Err(if status.code == 410 {
                Error::Expired(status.message)
            } else {
                Error::Remote {
                    code: status.code,
                    reason: status.reason,
                    message: status.message,
                }
            });
        }
    })
}

/// `namespace/name`, the cache key client-go uses too.
pub fn key_of<T: Resource>(object: &T) -> String {
    let m = object.metadata();
    if m.namespace.is_empty() {
        m.name.clone()
    } else {
        format!("{}/{}", m.namespace, m.name)
    }
}

/// The cache an informer keeps current.
pub struct Cache<T> {
    objects: RwLock<BTreeMap<String, T>>,
    synced: RwLock<bool>,
}

impl<T: Resource> Cache<T> {
    /// Every object, in key order.
    pub fn list(&self) -> Vec<T> {
        self.objects
            .read()
            .expect("cache lock")
            .values()
            .cloned()
            .collect()
    }

    pub fn get(&self, key: &str) -> Option<T> {
        self.objects.read().expect("cache lock").get(key).cloned()
    }

    /// Whether the first list has arrived.
    pub fn has_synced(&self) -> bool {
        *self.synced.read().expect("cache lock")
    }

    fn replace(&self, items: Vec<T>) {
        let map = items.into_iter().map(|o| (key_of(&o), o)).collect();
        *self.objects.write().expect("cache lock") = map;
        *self.synced.write().expect("cache lock") = true;
    }

    fn apply(&self, event: &Event<T>) {
        let mut objects = self.objects.write().expect("cache lock");
        match event {
            Event::Added(o) | Event::Modified(o) => {
                objects.insert(key_of(o), o.clone());
            }
            Event::Deleted(o) => {
                objects.remove(&key_of(o));
            }
            Event::Bookmark(_) => {}
        }
    }
}

/// A running informer: its cache, and a counter that ticks on every change.
pub struct Informer<T> {
    pub cache: Arc<Cache<T>>,
    /// Bumped after each change to the cache; `changed().await` to wait for one.
    pub changes: watch::Receiver<u64>,
    task: JoinHandle<()>,
}

impl<T> Drop for Informer<T> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<T: Resource> Informer<T> {
    /// Starts listing and watching `T` in `namespace` (or everywhere).
    pub fn start(client: Client, namespace: Option<String>, params: ListParams) -> Informer<T> {
        let cache = Arc::new(Cache {
            objects: RwLock::new(BTreeMap::new()),
            synced: RwLock::new(false),
        });
        let (tx, changes) = watch::channel(0u64);
        let task = tokio::spawn(run(client, namespace, params, cache.clone(), tx));
        Informer {
            cache,
            changes,
            task,
        }
    }
}

async fn run<T: Resource>(
    client: Client,
    namespace: Option<String>,
    params: ListParams,
    cache: Arc<Cache<T>>,
    tx: watch::Sender<u64>,
) {
    let ns = namespace.as_deref();
    let bump = |tx: &watch::Sender<u64>| tx.send_modify(|n| *n += 1);
    // A pause between failed attempts, so a dead control plane is not hammered:
    // doubling from 800 ms up to 30 s, and back to the start after a success, as
    // client-go's reflector backs off (without its jitter, which would need a random
    // number for every retry).
    let mut backoff = Backoff::default();
    'relist: loop {
        let list = match client.list::<T>(ns, &params).await {
            Ok(list) => list,
            Err(e) => {
                tracing::debug!(kind = T::KIND, error = %e, "list failed; retrying");
                client.clock().sleep(backoff.next()).await;
                continue;
            }
        };
        backoff = Backoff::default();
        let mut rv = list.metadata.resource_version.clone();
        cache.replace(list.items);
        bump(&tx);
        loop {
            let mut stream = match client.watch::<T>(ns, &params, &rv).await {
                Ok(s) => s,
                Err(Error::Expired(_)) => continue 'relist,
                Err(e) => {
                    tracing::debug!(kind = T::KIND, error = %e, "watch failed; retrying");
                    client.clock().sleep(backoff.next()).await;
                    continue;
                }
            };
            backoff = Backoff::default();
            loop {
                match stream.next().await {
                    Ok(Some(event)) => {
                        rv = match &event {
                            Event::Added(o) | Event::Modified(o) | Event::Deleted(o) => {
                                o.metadata().resource_version.clone()
                            }
                            Event::Bookmark(rv) => rv.clone(),
                        };
                        cache.apply(&event);
                        if !matches!(event, Event::Bookmark(_)) {
                            bump(&tx);
                        }
                    }
                    Ok(None) => break,
                    Err(Error::Expired(_)) => continue 'relist,
                    Err(e) => {
                        tracing::debug!(kind = T::KIND, error = %e, "watch broke; resuming");
                        break;
                    }
                }
            }
        }
    }
}

/// The pause before the next retry: 800 ms, doubling, at most 30 s.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Backoff(Duration);

impl Default for Backoff {
    fn default() -> Self {
        Backoff(Duration::from_millis(800))
    }
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let wait = self.0;
        self.0 = (self.0 * 2).min(Duration::from_secs(30));
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_doubling_up_to_30_seconds() {
        let mut b = Backoff::default();
        let waits: Vec<u64> = (0..8).map(|_| b.next().as_millis() as u64).collect();
        assert_eq!(waits, [800, 1600, 3200, 6400, 12800, 25600, 30000, 30000]);
    }
    use api::types::Pod;

    #[test]
    fn watch_lines_decode_into_events() {
        let line = br#"{"type":"ADDED","object":{"metadata":{"name":"a","namespace":"default","resourceVersion":"5"}}}"#;
        let e: Event<Pod> = decode_event(line).unwrap();
        let Event::Added(pod) = e else {
            panic!("{e:?}")
        };
        assert_eq!(key_of(&pod), "default/a");
        let line = br#"{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"9"}}}"#;
        assert_eq!(
            decode_event::<Pod>(line).unwrap(),
            Event::Bookmark("9".into())
        );
        let line = br#"{"type":"ERROR","object":{"kind":"Status","code":410,"message":"too old","reason":"Expired","status":"Failure","apiVersion":"v1","metadata":{}}}"#;
        assert_eq!(
            decode_event::<Pod>(line),
            Err(Error::Expired("too old".into()))
        );
    }

    #[test]
    fn the_cache_follows_events() {
        let cache = Cache::<Pod> {
            objects: RwLock::new(BTreeMap::new()),
            synced: RwLock::new(false),
        };
        let mut p = Pod::default();
        p.metadata.name = "a".into();
        p.metadata.namespace = "default".into();
        cache.replace(vec![]);
        assert!(cache.has_synced());
        cache.apply(&Event::Added(p.clone()));
        assert_eq!(cache.get("default/a"), Some(p.clone()));
        cache.apply(&Event::Deleted(p));
        assert!(cache.list().is_empty());
    }
}
