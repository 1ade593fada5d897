//! How the simulation writes things down for a human: requests as a learner would type
//! them with etcdctl, results as one line, raft messages as their essentials.

use raft::eraftpb::{Message, MessageType};
use raft::StateRole;

use crate::member::MemberStatus;
use crate::proto::etcdserverpb::{compare, request_op, RequestOp};
use crate::proto::mvccpb::{event::EventType, Event, KeyValue};
use crate::request::{Request, Response};
use crate::Result;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `put foo=bar`, `get foo`, `get --serializable foo`, `del foo`, `txn ...`.
pub fn request(r: &Request) -> String {
    match r {
        Request::Range(r) => {
            let mut s = String::from("get");
            if r.serializable {
                s.push_str(" --serializable");
            }
            if r.revision > 0 {
                s.push_str(&format!(" --rev={}", r.revision));
            }
            if !r.range_end.is_empty() {
                s.push_str(&format!(" {}..{}", text(&r.key), text(&r.range_end)));
            } else {
                s.push_str(&format!(" {}", text(&r.key)));
            }
            s
        }
        Request::Put(p) => format!("put {}={}", text(&p.key), text(&p.value)),
        Request::DeleteRange(d) if d.range_end.is_empty() => format!("del {}", text(&d.key)),
        Request::DeleteRange(d) => format!("del {}..{}", text(&d.key), text(&d.range_end)),
        Request::Txn(t) => {
            let compares: Vec<String> = t
                .compare
                .iter()
                .map(|c| {
                    let target = match &c.target_union {
                        Some(compare::TargetUnion::Value(v)) => format!("value={}", text(v)),
                        Some(compare::TargetUnion::Version(v)) => format!("version={v}"),
                        Some(compare::TargetUnion::ModRevision(v)) => format!("mod={v}"),
                        Some(compare::TargetUnion::CreateRevision(v)) => format!("create={v}"),
                        Some(compare::TargetUnion::Lease(v)) => format!("lease={v}"),
                        None => "?".to_string(),
                    };
                    format!("{}:{}", text(&c.key), target)
                })
                .collect();
            format!(
                "txn if [{}] then [{}] else [{}]",
                compares.join(", "),
                ops(&t.success),
                ops(&t.failure)
            )
        }
        Request::Compact(c) => format!("compact {}", c.revision),
        Request::LeaseGrant(g) => format!("lease grant {} (id {:x})", g.ttl, g.id),
        Request::LeaseRevoke(r) => format!("lease revoke {:x}", r.id),
        Request::LeaseKeepAlive(k) => format!("lease keep-alive {:x}", k.id),
        Request::LeaseTimeToLive(t) => format!("lease timetolive {:x}", t.id),
        Request::LeaseLeases(_) => "lease list".to_string(),
    }
}

fn ops(ops: &[RequestOp]) -> String {
    let parts: Vec<String> = ops
        .iter()
        .map(|op| match &op.request {
            Some(request_op::Request::RequestRange(r)) => request(&Request::Range(r.clone())),
            Some(request_op::Request::RequestPut(p)) => request(&Request::Put(p.clone())),
            Some(request_op::Request::RequestDeleteRange(d)) => {
                request(&Request::DeleteRange(d.clone()))
            }
            Some(request_op::Request::RequestTxn(t)) => request(&Request::Txn(t.clone())),
            None => "?".to_string(),
        })
        .collect();
    parts.join(", ")
}

fn kv(kv: &KeyValue) -> String {
    format!(
        "{}={} (mod {}, version {})",
        text(&kv.key),
        text(&kv.value),
        kv.mod_revision,
        kv.version
    )
}

/// `ok, revision 3`, `foo=bar (mod 2, version 1)`, `not found`, `error: ...`.
pub fn result(r: &Result<Response>) -> String {
    let response = match r {
        Ok(response) => response,
        Err(e) => {
            let kind = if e.is_indeterminate() {
                " (outcome unknown)"
            } else {
                ""
            };
            return format!("error: {e}{kind}");
        }
    };
    let revision = response.header().map_or(0, |h| h.revision);
    match response {
        Response::Range(r) if r.kvs.is_empty() => format!("not found (revision {revision})"),
        Response::Range(r) => {
            let kvs: Vec<String> = r.kvs.iter().map(kv).collect();
            format!("{} (revision {revision})", kvs.join(", "))
        }
        Response::Put(_) => format!("ok, revision {revision}"),
        Response::DeleteRange(d) => format!("deleted {}, revision {revision}", d.deleted),
        Response::Txn(t) => format!(
            "{}, revision {revision}",
            if t.succeeded { "succeeded" } else { "failed" }
        ),
        Response::Compact(_) => format!("compacted, revision {revision}"),
        Response::LeaseGrant(g) => format!("lease {:x} granted with TTL({}s)", g.id, g.ttl),
        Response::LeaseRevoke(_) => format!("lease revoked, revision {revision}"),
        Response::LeaseKeepAlive(k) => format!("lease {:x} keepalived with TTL({})", k.id, k.ttl),
        Response::LeaseTimeToLive(t) => format!("lease {:x} TTL({}s)", t.id, t.ttl),
        Response::LeaseLeases(l) => format!("found {} leases", l.leases.len()),
    }
}

/// `PUT foo=bar (mod 2, version 1)` / `DELETE foo at 5`.
pub fn event(e: &Event) -> String {
    let Some(k) = &e.kv else {
        return "?".to_string();
    };
    if e.r#type == EventType::Delete as i32 {
        format!("DELETE {} at {}", text(&k.key), k.mod_revision)
    } else {
        format!("PUT {}", kv(k))
    }
}

/// The essentials of a raft message: type, term, and what it carries.
pub fn message(m: &Message) -> String {
    let t = m.get_msg_type();
    let name = format!("{t:?}").trim_start_matches("Msg").to_string();
    match t {
        MessageType::MsgAppend => {
            let idx: Vec<String> = m.entries.iter().map(|e| e.index.to_string()).collect();
            format!(
                "{name} term={} prev={}@{} entries=[{}] commit={}",
                m.term,
                m.index,
                m.log_term,
                idx.join(","),
                m.commit
            )
        }
        MessageType::MsgAppendResponse => format!(
            "{name} term={} index={}{}",
            m.term,
            m.index,
            if m.reject { " rejected" } else { "" }
        ),
        MessageType::MsgRequestVote | MessageType::MsgRequestPreVote => {
            format!("{name} term={} last={}@{}", m.term, m.index, m.log_term)
        }
        MessageType::MsgRequestVoteResponse | MessageType::MsgRequestPreVoteResponse => format!(
            "{name} term={}{}",
            m.term,
            if m.reject { " rejected" } else { " granted" }
        ),
        MessageType::MsgHeartbeat => format!("{name} term={} commit={}", m.term, m.commit),
        _ => format!("{name} term={}", m.term),
    }
}

/// A fixed-width table of member states.
pub fn status_table(
    rows: &[(String, Option<MemberStatus>)],
    name: impl Fn(u64) -> String,
) -> String {
    let mut out = String::from("member  role           term  leader  commit  applied  revision\n");
    for (member, status) in rows {
        let line = match status {
            None => format!("{member:<6}  (down)\n"),
            Some(s) => {
                let role = match s.role {
                    StateRole::Leader => "leader",
                    StateRole::Follower => "follower",
                    StateRole::Candidate => "candidate",
                    StateRole::PreCandidate => "pre-candidate",
                };
                let leader = if s.leader == 0 {
                    "-".to_string()
                } else {
                    name(s.leader)
                };
                format!(
                    "{member:<6}  {role:<13}  {:>4}  {leader:<6}  {:>6}  {:>7}  {:>8}\n",
                    s.term, s.commit, s.applied, s.revision
                )
            }
        };
        out.push_str(&line);
    }
    out
}
