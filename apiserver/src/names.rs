//! Object names: the DNS-1123 rules Kubernetes checks them against, and the random
//! suffix `generateName` gets.

/// `None` if `name` is a DNS-1123 subdomain (pods, nodes, replicasets, ...); otherwise
/// Kubernetes' explanation.
pub fn check_subdomain(name: &str) -> Option<String> {
    let ok = name.len() <= 253 && name.split('.').all(is_label);
    if ok {
        return None;
    }
    if name.len() > 253 {
        return Some("must be no more than 253 characters".into());
    }
    Some("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".into())
}

/// `None` if `name` is a DNS-1123 label (namespaces, container names).
pub fn check_label(name: &str) -> Option<String> {
    if is_label(name) {
        return None;
    }
    if name.len() > 63 {
        return Some("must be no more than 63 characters".into());
    }
    Some("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')".into())
}

fn is_label(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && b.len() <= 63
        && alnum(&b[0])
        && alnum(&b[b.len() - 1])
        && b.iter().all(|c| alnum(c) || *c == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_1123_names() {
        assert_eq!(check_subdomain("alpine"), None);
        assert_eq!(check_subdomain("web-7d4b9.default"), None);
        assert!(check_subdomain("Alpine").is_some());
        assert!(check_subdomain("-a").is_some());
        assert!(check_subdomain("").is_some());
        assert!(check_label("a.b").is_some());
        assert_eq!(check_label("kube-system"), None);
        assert!(check_label(&"a".repeat(64)).unwrap().contains("63"));
    }
}
