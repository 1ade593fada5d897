//! Is this history linearizable? A checker for per-key register histories.
//!
//! A history records, for every client operation, when it was *invoked*, when it
//! *completed* and what it returned. It is **linearizable** if each operation can be
//! given a single instant, somewhere between its invocation and its completion, at which
//! it took effect, such that the results are exactly those of running the operations one
//! at a time in that order. For a key-value store that means, for example:
//!
//! ```text
//! client 1: |--put x=1--|
//! client 2:                 |--get x → 1--|        ok: the put took effect first
//! client 3:                 |--get x → ∅--|        NOT ok: the put had completed before
//!                                                   this get began, so ∅ is stale
//! ```
//!
//! Concurrent operations may be ordered either way; operations that do not overlap must
//! keep their real-time order. This is the guarantee etcd gives (and Kubernetes relies
//! on): once a write is acknowledged, every later read sees it or something newer.
//!
//! ## Checking one key at a time
//! Linearizability is *local* (Herlihy & Wing): a history is linearizable iff the
//! sub-history of every object is. Each key here is an independent register, so we check
//! each key on its own, which keeps the search small.
//!
//! ## The search (Wing & Gong, with Lowe's memoisation)
//! Repeatedly pick an operation that may go *next*: one not yet placed, whose
//! invocation comes before the completion of every other unplaced operation (otherwise
//! that other operation finished before this one started and must come first). Apply it
//! to a model register; if the model's answer matches what the client saw, place it and
//! continue; if the search gets stuck, undo and try another candidate. The history is
//! linearizable if every operation gets placed. The same (set of placed operations,
//! register value) can be reached along many orders; remembering the ones already
//! explored turns an exponential search into one that is fast on real histories.
//!
//! ## Operations with unknown outcome
//! A client that timed out (or whose member crashed) does not know whether its write
//! happened. Such an operation may take effect at any instant after its invocation —
//! or never. It never blocks another operation (its completion is "infinitely late"),
//! and the search succeeds once every operation that *did* complete is placed. A read
//! with unknown outcome has no effect and is ignored.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

/// What a client asked, on one key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Call {
    /// Read the key.
    Get,
    /// Write a value.
    Put(Vec<u8>),
    /// Remove the key.
    Delete,
    /// If the current value equals `expect` (`None`: absent), write `put`.
    Cas {
        /// The value the key must hold (`None`: the key must be absent).
        expect: Option<Vec<u8>>,
        /// The value written if it does.
        put: Vec<u8>,
    },
}

/// What the client got back.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Return {
    /// A put or delete was acknowledged.
    Done,
    /// A get returned this value (`None`: absent).
    Value(Option<Vec<u8>>),
    /// A compare-and-swap's compare held (and its put happened) or not.
    Swapped(bool),
}

/// One operation of a recorded history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// Unique in the history; used in messages.
    pub id: u64,
    /// Who issued it (for printing).
    pub client: u64,
    /// The key it is about.
    pub key: Vec<u8>,
    /// What was asked.
    pub call: Call,
    /// Logical time of the invocation.
    pub invoked: u64,
    /// Logical time and result of the completion; `None` if the outcome is unknown.
    pub completed: Option<(u64, Return)>,
}

/// Why a history is not linearizable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The key whose history cannot be linearized.
    pub key: Vec<u8>,
    /// That key's operations.
    pub operations: Vec<Operation>,
    /// What the search found, and a timeline of the operations.
    pub explanation: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "history of key {:?} is not linearizable: {}",
            String::from_utf8_lossy(&self.key),
            self.explanation
        )
    }
}

impl std::error::Error for Violation {}

/// Checks a whole history, key by key.
pub fn check(history: &[Operation]) -> Result<(), Violation> {
    let mut by_key: BTreeMap<&[u8], Vec<Operation>> = BTreeMap::new();
    for op in history {
        by_key.entry(&op.key).or_default().push(op.clone());
    }
    by_key
        .into_iter()
        .try_for_each(|(key, ops)| check_key(key, &ops))
}

/// The register's value: `None` while the key is absent.
type Value = Option<Vec<u8>>;

/// Applies `call` to the register; returns the new value and what a client would see.
fn step(value: &Value, call: &Call) -> (Value, Return) {
    match call {
        Call::Get => (value.clone(), Return::Value(value.clone())),
        Call::Put(v) => (Some(v.clone()), Return::Done),
        Call::Delete => (None, Return::Done),
        Call::Cas { expect, put } if value == expect => (Some(put.clone()), Return::Swapped(true)),
        Call::Cas { .. } => (value.clone(), Return::Swapped(false)),
    }
}

/// Checks the operations of one key (all must be about `key`).
pub fn check_key(key: &[u8], ops: &[Operation]) -> Result<(), Violation> {
    let violation = |explanation: String| Violation {
        key: key.to_vec(),
        operations: ops.to_vec(),
        explanation,
    };
    if let Some(bad) = ops
        .iter()
        .find(|o| o.completed.as_ref().is_some_and(|(t, _)| *t <= o.invoked))
    {
        return Err(violation(format!(
            "malformed history: operation {} completed before it was invoked",
            bad.id
        )));
    }
    // A read whose answer never arrived had no effect: leave it out.
    let ops: Vec<&Operation> = ops
        .iter()
        .filter(|o| o.completed.is_some() || o.call != Call::Get)
        .collect();
    let mut search = Search {
        ops: &ops,
        placed: vec![0; ops.len().div_ceil(64)],
        seen: HashSet::new(),
        best: Vec::new(),
        order: Vec::new(),
    };
    if search.run(&None) {
        return Ok(());
    }
    let placed: Vec<String> = search.best.iter().map(|&i| ops[i].id.to_string()).collect();
    let stuck: Vec<String> = (0..ops.len())
        .filter(|i| !search.best.contains(i) && ops[*i].completed.is_some())
        .map(|i| describe(ops[i]))
        .collect();
    Err(violation(format!(
        "the longest valid order found places operations [{}]; none of these fits after it: {}\n{}",
        placed.join(", "),
        stuck.join("; "),
        timeline(&ops)
    )))
}

struct Search<'a> {
    ops: &'a [&'a Operation],
    /// Bitset of placed operations.
    placed: Vec<u64>,
    /// (placed, value) states already explored without success.
    seen: HashSet<(Vec<u64>, Value)>,
    /// The longest order found, for the explanation.
    best: Vec<usize>,
    order: Vec<usize>,
}

impl Search<'_> {
    fn is_placed(&self, i: usize) -> bool {
        self.placed[i / 64] & (1 << (i % 64)) != 0
    }

    fn toggle(&mut self, i: usize) {
        self.placed[i / 64] ^= 1 << (i % 64);
    }

    /// Depth-first search from the current set of placed operations and `value`.
    fn run(&mut self, value: &Value) -> bool {
        let unplaced: Vec<usize> = (0..self.ops.len())
            .filter(|&i| !self.is_placed(i))
            .collect();
        if unplaced.iter().all(|&i| self.ops[i].completed.is_none()) {
            return true; // only unknown-outcome operations left: they may never happen
        }
        if !self.seen.insert((self.placed.clone(), value.clone())) {
            return false;
        }
        // Nothing may go before an operation that completed before it was invoked.
        let horizon = unplaced
            .iter()
            .filter_map(|&i| self.ops[i].completed.as_ref().map(|(t, _)| *t))
            .min()
            .unwrap_or(u64::MAX);
        for &i in &unplaced {
            let op = self.ops[i];
            if op.invoked >= horizon {
                continue;
            }
            let (next, seen) = step(value, &op.call);
            if let Some((_, returned)) = &op.completed {
                if *returned != seen {
                    continue;
                }
            }
            self.toggle(i);
            self.order.push(i);
            if self.order.len() > self.best.len() {
                self.best = self.order.clone();
            }
            if self.run(&next) {
                return true;
            }
            self.order.pop();
            self.toggle(i);
        }
        false
    }
}

fn show(value: &Value) -> String {
    match value {
        Some(v) => String::from_utf8_lossy(v).into_owned(),
        None => "∅".to_string(),
    }
}

fn describe(op: &Operation) -> String {
    let call = match &op.call {
        Call::Get => "get".to_string(),
        Call::Put(v) => format!("put {}", show(&Some(v.clone()))),
        Call::Delete => "delete".to_string(),
        Call::Cas { expect, put } => {
            format!("cas {} -> {}", show(expect), show(&Some(put.clone())))
        }
    };
    let result = match &op.completed {
        None => "?".to_string(),
        Some((_, Return::Done)) => "ok".to_string(),
        Some((_, Return::Value(v))) => show(v),
        Some((_, Return::Swapped(b))) => b.to_string(),
    };
    format!("#{} {call} -> {result}", op.id)
}

/// One line per operation, in invocation order: `[invoked, completed] client #id call -> result`.
fn timeline(ops: &[&Operation]) -> String {
    let mut sorted: Vec<&&Operation> = ops.iter().collect();
    sorted.sort_by_key(|o| (o.invoked, o.id));
    let lines: Vec<String> = sorted
        .iter()
        .map(|o| {
            let end = o
                .completed
                .as_ref()
                .map_or("…".to_string(), |(t, _)| t.to_string());
            format!(
                "  [{:>4}, {:>4}] client {} {}",
                o.invoked,
                end,
                o.client,
                describe(o)
            )
        })
        .collect();
    format!("timeline:\n{}", lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds histories tersely: `op(id, invoked, completed, call, result)`.
    fn op(
        id: u64,
        key: &str,
        invoked: u64,
        completed: Option<u64>,
        call: Call,
        ret: Return,
    ) -> Operation {
        Operation {
            id,
            client: id,
            key: key.as_bytes().to_vec(),
            call,
            invoked,
            completed: completed.map(|t| (t, ret)),
        }
    }
    fn v(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }
    fn put(id: u64, t: (u64, Option<u64>), val: &str) -> Operation {
        op(id, "x", t.0, t.1, Call::Put(v(val)), Return::Done)
    }
    fn get(id: u64, t: (u64, Option<u64>), seen: Option<&str>) -> Operation {
        op(id, "x", t.0, t.1, Call::Get, Return::Value(seen.map(v)))
    }

    #[test]
    fn sequential_put_then_get() {
        assert!(check(&[put(1, (1, Some(2)), "1"), get(2, (3, Some(4)), Some("1"))]).is_ok());
        assert!(check(&[put(1, (1, Some(2)), "1"), get(2, (3, Some(4)), None)]).is_err());
    }

    #[test]
    fn concurrent_read_may_see_either() {
        assert!(check(&[put(1, (1, Some(4)), "1"), get(2, (2, Some(3)), Some("1"))]).is_ok());
        assert!(check(&[put(1, (1, Some(4)), "1"), get(2, (2, Some(3)), None)]).is_ok());
    }

    #[test]
    fn stale_read_is_rejected() {
        let h = [
            put(1, (1, Some(2)), "1"),
            put(2, (3, Some(4)), "2"),
            get(3, (5, Some(6)), Some("1")),
        ];
        let err = check(&h).unwrap_err();
        assert_eq!(err.key, v("x"));
        assert!(
            err.explanation.contains("#3 get -> 1"),
            "{}",
            err.explanation
        );
    }

    #[test]
    fn lost_write_and_invented_value_are_rejected() {
        assert!(check(&[put(1, (1, Some(2)), "1"), get(2, (3, Some(4)), None)]).is_err());
        assert!(check(&[get(1, (1, Some(2)), Some("never"))]).is_err());
    }

    #[test]
    fn unknown_outcome_write_may_or_may_not_happen() {
        let maybe = put(1, (1, None), "1");
        assert!(check(&[maybe.clone(), get(2, (5, Some(6)), Some("1"))]).is_ok());
        assert!(check(&[maybe.clone(), get(2, (5, Some(6)), None)]).is_ok());
        // Once visible, it cannot vanish again.
        let h = [
            maybe.clone(),
            get(2, (5, Some(6)), Some("1")),
            get(3, (7, Some(8)), None),
        ];
        assert!(check(&h).is_err());
        // It cannot take effect before it was invoked.
        let h = [get(2, (1, Some(2)), Some("1")), put(1, (3, None), "1")];
        assert!(check(&h).is_err());
    }

    #[test]
    fn compare_and_swap() {
        let cas = |id, t: (u64, u64), expect: Option<&str>, new: &str, ok: bool| {
            op(
                id,
                "x",
                t.0,
                Some(t.1),
                Call::Cas {
                    expect: expect.map(v),
                    put: v(new),
                },
                Return::Swapped(ok),
            )
        };
        // Two sequential "create if absent" cannot both succeed.
        assert!(check(&[
            cas(1, (1, 2), None, "a", true),
            cas(2, (3, 4), None, "b", true)
        ])
        .is_err());
        // Concurrent, one wins: fine either way round.
        assert!(check(&[
            cas(1, (1, 4), None, "a", true),
            cas(2, (2, 3), None, "b", false)
        ])
        .is_ok());
        assert!(check(&[
            cas(1, (1, 2), None, "a", true),
            cas(2, (3, 4), Some("a"), "b", true),
            get(3, (5, Some(6)), Some("b"))
        ])
        .is_ok());
    }

    #[test]
    fn delete_makes_the_key_absent() {
        let del = op(2, "x", 3, Some(4), Call::Delete, Return::Done);
        assert!(check(&[
            put(1, (1, Some(2)), "1"),
            del.clone(),
            get(3, (5, Some(6)), None)
        ])
        .is_ok());
        assert!(check(&[
            put(1, (1, Some(2)), "1"),
            del,
            get(3, (5, Some(6)), Some("1"))
        ])
        .is_err());
    }

    #[test]
    fn keys_are_checked_independently() {
        let mut b_bad = get(4, (7, Some(8)), Some("zzz"));
        b_bad.key = v("b");
        let ok = [put(1, (1, Some(2)), "1"), get(2, (3, Some(4)), Some("1"))];
        assert!(check(&ok).is_ok());
        let mut h = ok.to_vec();
        h.push(b_bad);
        assert_eq!(check(&h).unwrap_err().key, v("b"));
    }

    #[test]
    fn new_old_inversion_is_rejected() {
        // A put in progress; one reader sees the new value, then (later) the old one.
        let h = [
            put(1, (1, Some(10)), "1"),
            get(2, (2, Some(3)), Some("1")),
            get(3, (4, Some(5)), None),
        ];
        assert!(check(&h).is_err());
    }

    #[test]
    fn malformed_history_is_an_error_not_a_panic() {
        let err = check(&[put(1, (5, Some(3)), "1")]).unwrap_err();
        assert!(err.explanation.contains("malformed"));
    }

    #[test]
    fn long_overlapping_history_is_accepted_and_a_corruption_is_found() {
        // Run 200 random operations on three keys sequentially against a model, then
        // stretch each op over [10i, 10i + 15] so neighbours overlap.
        let mut seed = 0x1234_5678_u64;
        let mut next = || {
            seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = seed;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let mut state: BTreeMap<u64, Value> = BTreeMap::new();
        let mut history = Vec::new();
        for i in 0..200u64 {
            let key = next() % 3;
            let call = match next() % 4 {
                0 | 1 => Call::Get,
                2 => Call::Put(format!("v{i}").into_bytes()),
                _ => Call::Delete,
            };
            let value = state.entry(key).or_default();
            let (after, ret) = step(value, &call);
            *value = after;
            history.push(Operation {
                id: i,
                client: i % 4,
                key: format!("k{key}").into_bytes(),
                call,
                invoked: 10 * i + 1,
                completed: Some((10 * i + 15, ret)),
            });
        }
        assert!(check(&history).is_ok());
        let read = history
            .iter()
            .position(|o| o.call == Call::Get)
            .expect("some get");
        history[read].completed = Some((10 * read as u64 + 15, Return::Value(Some(v("never")))));
        assert!(check(&history).is_err());
    }
}
