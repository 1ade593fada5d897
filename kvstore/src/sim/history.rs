//! The client-side record of a simulation: what was asked, when, and what came back.
//!
//! This is the raw material of a linearizability check. Time here is *logical*: one
//! counter bumped at every invocation and every completion, so "A completed before B
//! was invoked" is a plain comparison. Outcomes come in three kinds:
//!
//! - completed with a response: the request took effect (or, for a read, saw a state);
//! - completed with a *definite* error (`no leader`, bad input): it had no effect;
//! - completed with an *indeterminate* error (`request timed out`, `leader changed`) or
//!   lost in a crash: it may have taken effect, at any point after it was invoked.
//!
//! [`to_operations`] turns single-key requests into the checker's register operations.

use crate::linearizability::{Call, Operation, Return};
use crate::proto::etcdserverpb::{compare, request_op, Compare};
use crate::request::{Request, Response};
use crate::Result;

/// How a request ended, so far.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Still waiting.
    Pending,
    /// The member answered.
    Completed {
        /// Logical time of the answer.
        at: u64,
        /// Simulated tick of the answer.
        at_tick: u64,
        /// The answer.
        result: Result<Response>,
    },
    /// The member crashed before answering: the client will never know.
    Lost {
        /// Logical time of the crash.
        at: u64,
    },
}

/// One client request of a simulation.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Request ID, from 1.
    pub id: u64,
    /// The member it was sent to.
    pub member: u64,
    /// What was asked.
    pub request: Request,
    /// Logical time of the invocation.
    pub invoked: u64,
    /// Simulated tick of the invocation.
    pub invoked_tick: u64,
    /// How it ended.
    pub outcome: Outcome,
}

impl Record {
    /// True if the request completed with a response.
    pub fn succeeded(&self) -> bool {
        matches!(self.outcome, Outcome::Completed { result: Ok(_), .. })
    }

    /// The error it completed with, if any.
    pub fn error(&self) -> Option<&crate::Error> {
        match &self.outcome {
            Outcome::Completed { result: Err(e), .. } => Some(e),
            _ => None,
        }
    }
}

/// Converts the records of single-key requests (linearizable get, put, delete of one
/// key, and the compare-and-swap transaction built by [`Request::cas`]) into operations for
/// [`crate::linearizability::check`]. Requests of other shapes, and requests that
/// failed definitely, are left out: the former because the register model does not
/// describe them, the latter because they had no effect.
pub fn to_operations(records: &[Record]) -> Vec<Operation> {
    records.iter().filter_map(to_operation).collect()
}

fn to_operation(record: &Record) -> Option<Operation> {
    let (key, call) = call_of(&record.request)?;
    let completed = match &record.outcome {
        Outcome::Completed {
            at,
            result: Ok(response),
            ..
        } => Some((*at, return_of(&call, response)?)),
        Outcome::Completed { result: Err(e), .. } if e.is_indeterminate() => None,
        Outcome::Completed { result: Err(_), .. } => return None,
        Outcome::Lost { .. } | Outcome::Pending => None,
    };
    Some(Operation {
        id: record.id,
        client: record.member,
        key,
        call,
        invoked: record.invoked,
        completed,
    })
}

fn call_of(request: &Request) -> Option<(Vec<u8>, Call)> {
    match request {
        // A serializable read promises no recency (it may be stale by design), so it is
        // not part of what the linearizability check judges.
        Request::Range(r) if r.range_end.is_empty() && r.revision == 0 && !r.serializable => {
            Some((r.key.clone(), Call::Get))
        }
        Request::Put(p) if !p.ignore_value => Some((p.key.clone(), Call::Put(p.value.clone()))),
        Request::DeleteRange(d) if d.range_end.is_empty() => Some((d.key.clone(), Call::Delete)),
        Request::Txn(t) => cas_of(t.compare.as_slice(), &t.success, &t.failure),
        _ => None,
    }
}

/// Recognises `if value(k) == v` (or `version(k) == 0`, "absent") `then put k=w`.
fn cas_of(
    compares: &[Compare],
    success: &[crate::proto::etcdserverpb::RequestOp],
    failure: &[crate::proto::etcdserverpb::RequestOp],
) -> Option<(Vec<u8>, Call)> {
    let ([cmp], [op], []) = (compares, success, failure) else {
        return None;
    };
    let Some(request_op::Request::RequestPut(put)) = &op.request else {
        return None;
    };
    if cmp.key != put.key || !cmp.range_end.is_empty() || cmp.result != 0 {
        return None;
    }
    let expect = match &cmp.target_union {
        Some(compare::TargetUnion::Value(v)) => Some(v.clone()),
        Some(compare::TargetUnion::Version(0)) => None,
        _ => return None,
    };
    Some((
        put.key.clone(),
        Call::Cas {
            expect,
            put: put.value.clone(),
        },
    ))
}

fn return_of(call: &Call, response: &Response) -> Option<Return> {
    Some(match (call, response) {
        (Call::Get, Response::Range(r)) => Return::Value(r.kvs.first().map(|kv| kv.value.clone())),
        (Call::Put(_), Response::Put(_)) | (Call::Delete, Response::DeleteRange(_)) => Return::Done,
        (Call::Cas { .. }, Response::Txn(t)) => Return::Swapped(t.succeeded),
        _ => return None,
    })
}
