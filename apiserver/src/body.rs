//! # Request bodies: bounded, then parsed
//!
//! A body arrives as bytes in one of three encodings: JSON (most clients), Kubernetes
//! protobuf (kubectl's typed commands, see [`crate::protobuf`]) and, for server-side
//! apply (`application/apply-patch+yaml`), YAML. Parsing is where a hostile body costs
//! the server most, so three things are settled before any parser sees it:
//!
//! 1. **Size.** At most 3 MiB ([`crate::limits`]), checked while it is read.
//! 2. **Nesting depth.** At most [`MAX_NESTING_DEPTH`] levels of objects and lists,
//!    measured by a scan of the bytes that costs one pass and no allocation. The
//!    parsers here are recursive (and so is the patch code after them): depth costs
//!    stack, and for YAML it costs far more than that. The YAML parser keeps one
//!    "possible key" per open flow level and looks at all of them for every token, so
//!    its time grows with bytes × depth: 300 KB nested 50 000 deep took 12.8 CPU-seconds
//!    before this check, and two such bodies held both of a 2-core machine's worker
//!    threads, so `/healthz` did not answer for 11 s.
//! 3. **Shape.** Every verb works on an object; a body that parses to a list, a number,
//!    a string or a boolean is refused with a `400` that says so, never indexed into.
//!
//! Every failure is a `400 BadRequest` `Status` whose message gives the parser's reason.
//!
//! ## Why 100
//!
//! The deepest field of the kinds served here (a Deployment's pod template's node
//! affinity match expressions) is about a dozen levels down; 100 leaves eight times
//! that. Go's JSON decoder, which kube-apiserver uses, stops at 10 000, but it is not
//! recursive; serde_json and serde_yaml stop at 128, so with 100 their own limits never
//! fire first and the answer always names the real reason.
//!
//! ## Counting depth without parsing
//!
//! JSON is easy: outside strings (which end at an unescaped `"`), every `[`/`{` opens a
//! level and every `]`/`}` closes one. YAML is not: whether a `[` or a quote opens
//! anything depends on where it stands (a `[` inside `a: b[0]` is text, a `'` inside
//! `don't` is text, everything in a `|` block is text), and getting that wrong in the
//! unsafe direction would let a deep body through. So for YAML we compute an upper
//! bound that needs no such judgement: every flow level needs a `[` or `{` somewhere,
//! so we count them *all*, and every block level needs a wider indentation than the
//! one around it, so we take the widest indentation of any line. A YAML body with many
//! brackets in its text is refused although it may not be deep; kubectl never sends
//! YAML (it sends JSON, which is YAML too and takes the exact path), and the message
//! says to send JSON.
//!
//! ## Time
//!
//! With size and depth bounded, every parse here is linear in the body. It is not free:
//! a flat 3 MiB YAML body takes 1 to 2.5 s to parse (measured, optimised build), and
//! decoding any 3 MiB object costs about as much again. That is why requests with
//! large bodies take turns ([`crate::limits`]): one at a time, so the other requests
//! always find a worker thread free.

use serde_json::Value;

use crate::error::{Error, Result};

/// The deepest nesting of objects and lists a body may have.
pub const MAX_NESTING_DEPTH: usize = 100;

/// How deep a JSON text nests: the most `[`/`{` open at once outside strings. Exact for
/// valid JSON; for invalid JSON, exact up to the first error (where serde_json stops).
pub fn json_depth(body: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in body {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// An upper bound on how deep a YAML parser could find `body` nested: every `[` and
/// `{` in it (each flow level needs one), plus the widest indentation of any line (each
/// block level needs a wider one than its parent; a `- ` or `? ` entry indicator counts
/// as indentation), plus two for the document and its top collection.
pub fn yaml_depth_bound(body: &[u8]) -> usize {
    let flow = body.iter().filter(|b| matches!(b, b'[' | b'{')).count();
    let widest = body
        .split(|b| *b == b'\n')
        .map(|line| {
            line.iter()
                .take_while(|b| matches!(b, b' ' | b'\t' | b'-' | b'?' | b':'))
                .count()
        })
        .max()
        .unwrap_or(0);
    flow + widest + 2
}

fn too_deep(how: &str) -> Error {
    Error::BadRequest(format!(
        "the body is nested deeper than {MAX_NESTING_DEPTH} levels{how}"
    ))
}

/// A JSON body, depth first, then serde_json.
pub fn json(body: &[u8]) -> Result<Value> {
    if json_depth(body) > MAX_NESTING_DEPTH {
        return Err(too_deep(""));
    }
    serde_json::from_slice(body)
        .map_err(|e| Error::BadRequest(format!("the body is not valid JSON: {e}")))
}

/// A server-side apply body: JSON (what kubectl sends, and valid YAML too) or YAML.
pub fn apply_yaml(body: &[u8]) -> Result<Value> {
    if json_depth(body) > MAX_NESTING_DEPTH {
        return Err(too_deep(""));
    }
    let json_error = match serde_json::from_slice(body) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    if yaml_depth_bound(body) > MAX_NESTING_DEPTH {
        return Err(too_deep(&format!(
            " as far as can be told without parsing it (it is not JSON: {json_error}; \
             read as YAML, its `[` and `{{` characters and its indentation add up to \
             more than {MAX_NESTING_DEPTH}): send it as JSON"
        )));
    }
    serde_yaml_ng::from_slice(body)
        .map_err(|e| Error::BadRequest(format!("the body is not valid YAML: {e}")))
}

/// `what` must be an object: a list, number, string, boolean or null is refused.
pub fn object(v: Value, what: &str) -> Result<Value> {
    let kind = match &v {
        Value::Object(_) => return Ok(v),
        Value::Array(_) => "a list",
        Value::String(_) => "a string",
        Value::Number(_) => "a number",
        Value::Bool(_) => "a boolean",
        Value::Null => "null",
    };
    Err(Error::BadRequest(format!(
        "{what} must be a JSON object, not {kind}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_depth_counts_brackets_outside_strings() {
        assert_eq!(json_depth(b"{}"), 1);
        assert_eq!(json_depth(br#"{"a":[1,{"b":[]}]}"#), 4);
        assert_eq!(json_depth(br#"{"a":"[[[[{{{{\"[["}"#), 1);
        assert_eq!(json_depth(br#"["\\", ["x"]]"#), 2);
        assert_eq!(json_depth(b"123"), 0);
        let deep = "[".repeat(50_000);
        assert_eq!(json_depth(deep.as_bytes()), 50_000);
    }

    #[test]
    fn yaml_depth_bound_is_never_below_the_real_depth() {
        // Flow collections: counted wherever they are, even in quotes.
        assert!(yaml_depth_bound(b"a: [[[b]]]") >= 3);
        assert!(yaml_depth_bound(b"a: '[[['\nb: [[[c]]]") >= 3);
        // Block collections: indentation and entry indicators.
        assert!(yaml_depth_bound(b"a:\n b:\n  c:\n   d: 1\n") >= 4);
        assert!(yaml_depth_bound(b"- - - - x\n") >= 4);
        // An ordinary manifest is far from the limit.
        let pod = b"apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\nspec:\n  containers:\n  - name: c\n    image: nginx\n    args: [\"sleep\", \"1\"]\n";
        assert!(yaml_depth_bound(pod) < 20);
    }

    #[test]
    fn deep_json_is_refused_before_parsing() {
        let deep = "[".repeat(200) + &"]".repeat(200);
        let e = json(deep.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("nested deeper than 100"), "{e}");
        let ok = "[".repeat(100) + &"]".repeat(100);
        assert!(json(ok.as_bytes()).is_ok());
    }

    #[test]
    fn only_objects_pass() {
        assert!(object(serde_json::json!({}), "the body").is_ok());
        for (v, kind) in [("[]", "a list"), ("1", "a number"), ("\"s\"", "a string")] {
            let e = object(serde_json::from_str(v).unwrap(), "the body").unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("the body must be a JSON object, not {kind}")
            );
        }
    }
}
