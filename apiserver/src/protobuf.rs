//! Kubernetes protobuf request bodies, turned into the JSON the rest of the server uses.
//!
//! `kubectl create deployment` (and kubectl's other typed commands) send
//! `Content-Type: application/vnd.kubernetes.protobuf`. The body is the magic bytes
//! `k8s\0`, then a `runtime.Unknown` envelope naming the kind (`typeMeta`) and holding
//! the object's own protobuf bytes (`raw`). We decode `raw` with the message of that
//! kind from `proto/k8s.proto`, and write it out as JSON, turning the few wrapper types
//! (Time, Quantity, IntOrString) into the plain values JSON has for them.

use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, DynamicMessage, MapKey, ReflectMessage, Value as Field};
use serde_json::{json, Map, Value};

use crate::error::{Error, Result};

const MAGIC: &[u8] = b"k8s\0";

fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(&include_bytes!("protobuf/k8s.bin")[..])
            .expect("the checked-in descriptor set decodes")
    })
}

fn bad(why: impl std::fmt::Display) -> Error {
    Error::BadRequest(format!("the protobuf body could not be decoded: {why}"))
}

/// Decodes a protobuf body into a JSON object with `apiVersion` and `kind`.
pub fn decode(body: &[u8]) -> Result<Value> {
    let envelope = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("no k8s magic prefix"))?;
    let unknown = pool()
        .get_message_by_name("k8s.Unknown")
        .expect("k8s.Unknown is in the descriptor");
    let unknown = DynamicMessage::decode(unknown, envelope).map_err(bad)?;
    let type_meta = unknown
        .get_field_by_name("typeMeta")
        .and_then(|v| v.as_message().cloned())
        .ok_or_else(|| bad("no typeMeta"))?;
    let type_meta = message_to_json(&type_meta);
    let kind = type_meta["kind"].as_str().unwrap_or("").to_string();
    let descriptor = pool()
        .get_message_by_name(&format!("k8s.{kind}"))
        .ok_or(Error::UnsupportedMediaType)?;
    let raw = unknown
        .get_field_by_name("raw")
        .and_then(|v| v.as_bytes().cloned())
        .unwrap_or_default();
    let object = DynamicMessage::decode(descriptor, raw).map_err(bad)?;
    // Some messages (Quantity, Time, IntOrString) are a plain string or number in JSON:
    // naming one of them as the kind is not an object.
    let Value::Object(mut v) = message_to_json(&object) else {
        return Err(bad(format!("{kind} is not a kind of object")));
    };
    v.insert("apiVersion".into(), type_meta["apiVersion"].clone());
    v.insert("kind".into(), json!(kind));
    Ok(Value::Object(v))
}

/// A message as JSON: set fields only, under their JSON names.
fn message_to_json(m: &DynamicMessage) -> Value {
    let get = |name: &str| m.get_field_by_name(name).map(|v| v.into_owned());
    match m.descriptor().full_name() {
        "k8s.Quantity" => return json!(get("string").and_then(|v| v.as_str().map(str::to_string))),
        "k8s.IntOrString" => {
            let is_string = get("type").and_then(|v| v.as_i64()) == Some(1);
            return if is_string {
                json!(get("strVal").and_then(|v| v.as_str().map(str::to_string)))
            } else {
                json!(get("intVal").and_then(|v| v.as_i32()).unwrap_or(0))
            };
        }
        "k8s.Time" => {
            // Go's zero time (what an unset creationTimestamp encodes as) is JSON null.
            let seconds = get("seconds").and_then(|v| v.as_i64()).unwrap_or(0);
            return match jiff::Timestamp::from_second(seconds) {
                Ok(t) if seconds != 0 => json!(api::time::rfc3339(t)),
                _ => Value::Null,
            };
        }
        _ => {}
    }
    let mut out = Map::new();
    for (field, value) in m.fields() {
        // Go writes its non-pointer scalars even when they are zero; JSON leaves them
        // out. `replicas` is a pointer in Go, so an explicit 0 there means 0.
        if is_zero(value) && field.name() != "replicas" {
            continue;
        }
        out.insert(field.json_name().to_string(), field_to_json(value));
    }
    Value::Object(out)
}

fn is_zero(v: &Field) -> bool {
    match v {
        Field::Bool(b) => !b,
        Field::I32(n) => *n == 0,
        Field::I64(n) => *n == 0,
        Field::String(s) => s.is_empty(),
        _ => false,
    }
}

fn field_to_json(v: &Field) -> Value {
    match v {
        Field::Bool(b) => json!(b),
        Field::I32(n) => json!(n),
        Field::I64(n) => json!(n),
        Field::U32(n) => json!(n),
        Field::U64(n) => json!(n),
        Field::F32(n) => json!(n),
        Field::F64(n) => json!(n),
        Field::String(s) => json!(s),
        Field::Bytes(b) => json!(String::from_utf8_lossy(b)),
        Field::EnumNumber(n) => json!(n),
        Field::Message(m) => message_to_json(m),
        Field::List(items) => Value::Array(items.iter().map(field_to_json).collect()),
        Field::Map(entries) => {
            let mut out = Map::new();
            for (k, v) in entries {
                let key = match k {
                    MapKey::String(s) => s.clone(),
                    other => format!("{other:?}"),
                };
                out.insert(key, field_to_json(v));
            }
            Value::Object(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// Encodes a JSON-shaped object the way kubectl would, through the same descriptors.
    fn encode(kind: &str, api_version: &str, object: &DynamicMessage) -> Vec<u8> {
        let mut unknown = DynamicMessage::new(pool().get_message_by_name("k8s.Unknown").unwrap());
        let mut type_meta =
            DynamicMessage::new(pool().get_message_by_name("k8s.TypeMeta").unwrap());
        type_meta.set_field_by_name("apiVersion", Field::String(api_version.into()));
        type_meta.set_field_by_name("kind", Field::String(kind.into()));
        unknown.set_field_by_name("typeMeta", Field::Message(type_meta));
        unknown.set_field_by_name("raw", Field::Bytes(object.encode_to_vec().into()));
        let mut body = MAGIC.to_vec();
        body.extend(unknown.encode_to_vec());
        body
    }

    #[test]
    fn a_namespace_decodes_to_json() {
        let mut meta = DynamicMessage::new(pool().get_message_by_name("k8s.ObjectMeta").unwrap());
        meta.set_field_by_name("name", Field::String("team-a".into()));
        let mut ns = DynamicMessage::new(pool().get_message_by_name("k8s.Namespace").unwrap());
        ns.set_field_by_name("metadata", Field::Message(meta));
        let v = decode(&encode("Namespace", "v1", &ns)).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}})
        );
    }

    #[test]
    fn garbage_is_a_bad_request_and_unknown_kinds_unsupported() {
        assert!(matches!(decode(b"nope"), Err(Error::BadRequest(_))));
        assert!(matches!(
            decode(b"k8s\0\xff\xff"),
            Err(Error::BadRequest(_))
        ));
        let ns = DynamicMessage::new(pool().get_message_by_name("k8s.Namespace").unwrap());
        assert_eq!(
            decode(&encode("Widget", "v1", &ns)),
            Err(Error::UnsupportedMediaType)
        );
    }
}
