//! Label and field selectors: `?labelSelector=app=web,tier!=db` and
//! `?fieldSelector=spec.nodeName=node3`, and the `matchLabels`/`matchExpressions` form
//! a ReplicaSet selects its pods with.

use crate::types::{LabelSelector, Map};

/// One requirement of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl Requirement {
    /// Whether a set of labels (or fields) satisfies this requirement.
    pub fn matches(&self, get: &dyn Fn(&str) -> Option<String>) -> bool {
        match self {
            Requirement::Equals(k, v) => get(k).as_deref() == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k).as_deref() != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|x| vs.contains(&x)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|x| !vs.contains(&x)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::DoesNotExist(k) => get(k).is_none(),
        }
    }
}

/// A parsed selector: all requirements must hold. Empty selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector(pub Vec<Requirement>);

impl Selector {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn matches(&self, get: &dyn Fn(&str) -> Option<String>) -> bool {
        self.0.iter().all(|r| r.matches(get))
    }

    pub fn matches_labels(&self, labels: &Map) -> bool {
        self.matches(&|k| labels.get(k).cloned())
    }
}

/// Splits at commas that are not inside parentheses.
fn split_top_level(s: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// A selector that does not parse; the apiserver answers it with 400 Bad Request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

type Result<T> = std::result::Result<T, ParseError>;

fn bad(kind: &str, s: &str) -> ParseError {
    ParseError(format!(
        "unable to parse requirement: invalid {kind} selector: {s:?}"
    ))
}

/// Parses a label selector: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`.
pub fn parse_labels(s: &str) -> Result<Selector> {
    let mut reqs = Vec::new();
    for part in split_top_level(s.trim()) {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let req = if let Some(k) = part.strip_prefix('!') {
            Requirement::DoesNotExist(k.trim().to_string())
        } else if let Some((k, v)) = part.split_once("!=") {
            Requirement::NotEquals(k.trim().into(), v.trim().into())
        } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
            Requirement::Equals(k.trim().into(), v.trim().into())
        } else if let Some((k, set)) = split_set(part, " notin ") {
            Requirement::NotIn(k, set)
        } else if let Some((k, set)) = split_set(part, " in ") {
            Requirement::In(k, set)
        } else if part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
        {
            Requirement::Exists(part.to_string())
        } else {
            return Err(bad("label", part));
        };
        reqs.push(req);
    }
    Ok(Selector(reqs))
}

fn split_set(part: &str, op: &str) -> Option<(String, Vec<String>)> {
    let (k, rest) = part.split_once(op)?;
    let inner = rest.trim().strip_prefix('(')?.strip_suffix(')')?;
    let values = inner.split(',').map(|v| v.trim().to_string()).collect();
    Some((k.trim().to_string(), values))
}

/// Parses a field selector: `a=b`, `a==b`, `a!=b`, comma-separated.
pub fn parse_fields(s: &str) -> Result<Selector> {
    let mut reqs = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let req = if let Some((k, v)) = part.split_once("!=") {
            Requirement::NotEquals(k.into(), v.into())
        } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
            Requirement::Equals(k.into(), v.into())
        } else {
            return Err(bad("field", part));
        };
        reqs.push(req);
    }
    Ok(Selector(reqs))
}

/// Whether labels satisfy a `LabelSelector` (`matchLabels` and `matchExpressions`).
pub fn matches_selector(selector: &LabelSelector, labels: &Map) -> bool {
    from_label_selector(selector).is_some_and(|s| s.matches_labels(labels))
}

/// The requirements of a `LabelSelector`; `None` if an operator is unknown.
pub fn from_label_selector(selector: &LabelSelector) -> Option<Selector> {
    let mut reqs: Vec<Requirement> = selector
        .match_labels
        .iter()
        .map(|(k, v)| Requirement::Equals(k.clone(), v.clone()))
        .collect();
    for e in &selector.match_expressions {
        reqs.push(match e.operator.as_str() {
            "In" => Requirement::In(e.key.clone(), e.values.clone()),
            "NotIn" => Requirement::NotIn(e.key.clone(), e.values.clone()),
            "Exists" => Requirement::Exists(e.key.clone()),
            "DoesNotExist" => Requirement::DoesNotExist(e.key.clone()),
            _ => return None,
        });
    }
    Some(Selector(reqs))
}

/// `app=web,tier=front`: labels (or a `matchLabels` selector) as kubectl prints them.
pub fn format_labels(labels: &Map) -> String {
    let parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    parts.join(",")
}

/// A `LabelSelector` as a selector string (`Scale.status.selector`, `-o wide`).
pub fn format_selector(selector: &LabelSelector) -> String {
    let mut parts: Vec<String> = selector
        .match_labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in &selector.match_expressions {
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({})", e.key, e.values.join(",")),
            "NotIn" => format!("{} notin ({})", e.key, e.values.join(",")),
            "Exists" => e.key.clone(),
            _ => format!("!{}", e.key),
        });
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Map {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn label_selectors_parse_and_match() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        let cases = [
            ("app=web", true),
            ("app==web,tier=front", true),
            ("app!=web", false),
            ("app in (db, web)", true),
            ("app notin (web)", false),
            ("tier", true),
            ("!tier", false),
            ("missing!=x", true),
            ("", true),
        ];
        for (s, want) in cases {
            assert_eq!(parse_labels(s).unwrap().matches_labels(&l), want, "{s}");
        }
        assert!(parse_labels("a b c").is_err());
    }

    #[test]
    fn field_selectors_parse() {
        let s = parse_fields("metadata.name=alpine,spec.nodeName!=node1").unwrap();
        let get = |k: &str| match k {
            "metadata.name" => Some("alpine".to_string()),
            "spec.nodeName" => Some("node3".to_string()),
            _ => None,
        };
        assert!(s.matches(&get));
        assert!(parse_fields("nonsense").is_err());
    }

    #[test]
    fn label_selector_objects_match_and_print() {
        let mut sel = LabelSelector::default();
        sel.match_labels.insert("app".into(), "web".into());
        assert!(matches_selector(
            &sel,
            &labels(&[("app", "web"), ("x", "y")])
        ));
        assert!(!matches_selector(&sel, &labels(&[("app", "db")])));
        assert_eq!(format_selector(&sel), "app=web");
    }
}
