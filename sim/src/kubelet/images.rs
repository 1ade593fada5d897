//! Whether a pod's image can be pulled at all. There is no registry here (every image
//! a pod names "exists": its behaviour is [`crate::workloads`]'), but an image name
//! that is not a valid reference fails before any pull, in the kubelet, as it does in
//! Kubernetes: the container waits with `InvalidImageName`.

/// Why `image` is not a valid image reference (`[host[:port]/]path[:tag][@digest]`),
/// in the words the kubelet reports it with; `None` if it is one.
pub fn invalid_reference(image: &str) -> Option<String> {
    let why = reference_error(image)?;
    Some(format!(
        "Failed to apply default image tag \"{image}\": couldn't parse image name \"{image}\": \
         invalid reference format{why}"
    ))
}

fn reference_error(image: &str) -> Option<&'static str> {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    if let Some(d) = digest {
        let valid = d.split_once(':').is_some_and(|(algorithm, hex)| {
            !algorithm.is_empty() && hex.len() >= 32 && hex.chars().all(|c| c.is_ascii_hexdigit())
        });
        if !valid {
            return Some("");
        }
    }
    // The tag is after the last `:` that follows the last `/` (a port is before it).
    let (path, tag) = match name.rfind(':') {
        Some(i) if !name[i..].contains('/') => (&name[..i], Some(&name[i + 1..])),
        _ => (name, None),
    };
    if let Some(tag) = tag {
        let ok = tag.len() <= 128
            && tag
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !ok {
            return Some("");
        }
    }
    let mut components: Vec<&str> = path.split('/').collect();
    // A first component with a `.` or a `:`, or `localhost`, is a registry host.
    if components.len() > 1 && (components[0].contains(['.', ':']) || components[0] == "localhost")
    {
        let host = components.remove(0);
        let ok = host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
        if !ok {
            return Some("");
        }
    }
    for c in &components {
        if c.chars().any(|ch| ch.is_ascii_uppercase()) {
            return Some(": repository name must be lowercase");
        }
        let ok = !c.is_empty()
            && c.starts_with(|ch: char| ch.is_ascii_alphanumeric())
            && c.ends_with(|ch: char| ch.is_ascii_alphanumeric())
            && c.chars().all(|ch| {
                ch.is_ascii_lowercase() || ch.is_ascii_digit() || matches!(ch, '.' | '_' | '-')
            });
        if !ok {
            return Some("");
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_as_docker_reads_them() {
        for good in [
            "alpine",
            "alpine:3.20",
            "nginx:1.27-alpine",
            "registry.k8s.io/kube-apiserver:v1.32.0",
            "quay.io/coreos/etcd:v3.5.16",
            "localhost:5000/team/app:latest",
            "busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(invalid_reference(good), None, "{good}");
        }
        assert_eq!(
            invalid_reference("Alpine").unwrap(),
            "Failed to apply default image tag \"Alpine\": couldn't parse image name \"Alpine\": \
             invalid reference format: repository name must be lowercase"
        );
        for bad in [
            "",
            "alpine:",
            "al pine",
            "alpine:-x",
            "a//b",
            "alpine@sha256:xyz",
            "-a",
        ] {
            assert!(invalid_reference(bad).is_some(), "{bad:?}");
        }
    }
}
