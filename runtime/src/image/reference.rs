//! Image reference normalisation, following the rules Docker and containerd
//! share: an implicit `docker.io` registry, `library/` for official images and
//! `:latest` when neither a tag nor a digest is given.

use super::Error;

const DEFAULT_REGISTRY: &str = "docker.io";
/// Images named under this registry exist only in podlab's store (the
/// fixtures, images a user imports): podlab never pulls them, whatever the
/// imagePullPolicy, as `.local` names no host a registry could be on.
pub const LOCAL_REGISTRY: &str = "podlab.local";
const DEFAULT_TAG: &str = "latest";
/// Docker's limit on the repository part (registry included).
const MAX_NAME_LEN: usize = 255;

/// The parts of a normalised reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// Registry host, with port if any, e.g. `docker.io`, `localhost:5000`.
    pub registry: String,
    /// Repository path under the registry, e.g. `library/busybox`.
    pub repository: String,
    /// Tag; `latest` is filled in only when there is no digest either.
    pub tag: Option<String>,
    /// `sha256:<64 hex>` when the reference pins a digest.
    pub digest: Option<String>,
}

impl Reference {
    /// Parses and normalises `s` (see [`normalize_reference`]).
    pub fn parse(s: &str) -> Result<Self, Error> {
        let invalid = |reason: &str| Error::InvalidReference {
            reference: s.to_string(),
            reason: reason.to_string(),
        };
        if s.is_empty() {
            return Err(invalid("empty reference"));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("contains whitespace"));
        }

        let (rest, digest) = match s.split_once('@') {
            Some((rest, digest)) => {
                if !super::blob::is_sha256_digest(digest) {
                    return Err(invalid("digest must be sha256:<64 lowercase hex>"));
                }
                (rest, Some(digest.to_string()))
            }
            None => (s, None),
        };

        // A ':' after the last '/' starts the tag; one before it belongs to a
        // registry port ("localhost:5000/app").
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].find(':') {
            Some(i) => {
                let colon = last_slash + i;
                (&rest[..colon], Some(rest[colon + 1..].to_string()))
            }
            None => (rest, None),
        };
        if let Some(tag) = &tag {
            if !valid_tag(tag) {
                return Err(invalid(
                    "tag must be 1-128 characters of [A-Za-z0-9_.-], not starting with '.' or '-'",
                ));
            }
        }
        if name.is_empty() {
            return Err(invalid("missing repository name"));
        }

        // The first component names a registry only if it cannot be a
        // repository component: it has a '.' or a port, or is "localhost".
        let (registry, path) = match name.split_once('/') {
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), path.to_string())
            }
            _ => (DEFAULT_REGISTRY.to_string(), name.to_string()),
        };
        if !valid_registry(&registry) {
            return Err(invalid("invalid registry host"));
        }
        // Docker Hub's legacy host name and its official-image namespace.
        let registry = if registry == "index.docker.io" {
            DEFAULT_REGISTRY.to_string()
        } else {
            registry
        };
        let repository = if registry == DEFAULT_REGISTRY && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        if repository.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(invalid("repository name must be lowercase"));
        }
        if !repository.split('/').all(valid_path_component) {
            return Err(invalid(
                "repository components must be lowercase letters and digits separated by '.', '_', '__' or '-'",
            ));
        }
        if registry.len() + 1 + repository.len() > MAX_NAME_LEN {
            return Err(invalid("repository name longer than 255 characters"));
        }

        let tag = match (tag, &digest) {
            (None, None) => Some(DEFAULT_TAG.to_string()),
            (tag, _) => tag,
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// `registry/repository` without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The short form people type: `busybox:latest`, `user/app:1`,
    /// `podlab.local/probe:latest`.
    pub fn familiar(&self) -> String {
        let name = if self.registry == DEFAULT_REGISTRY {
            self.repository
                .strip_prefix("library/")
                .unwrap_or(&self.repository)
                .to_string()
        } else {
            self.name()
        };
        self.with_suffix(name)
    }

    fn with_suffix(&self, mut out: String) -> String {
        if let Some(tag) = &self.tag {
            out.push(':');
            out.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            out.push('@');
            out.push_str(digest);
        }
        out
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.with_suffix(self.name()))
    }
}

/// Normalises an image reference to its full form, e.g.
/// `busybox` → `docker.io/library/busybox:latest`.
pub fn normalize_reference(s: &str) -> Result<String, Error> {
    Reference::parse(s).map(|r| r.to_string())
}

fn valid_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    first_ok
        && tag.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// `[a-z0-9]+` runs joined by one separator: `.`, `_`, `__` or any number of `-`.
fn valid_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &component[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// Host name labels (or an IPv4 address) with an optional numeric port.
fn valid_registry(registry: &str) -> bool {
    let (host, port) = match registry.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (registry, None),
    };
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[rstest]
    #[case("busybox", "docker.io/library/busybox:latest")]
    #[case("nginx:1.29", "docker.io/library/nginx:1.29")]
    #[case("user/app", "docker.io/user/app:latest")]
    #[case("user/app:v2", "docker.io/user/app:v2")]
    #[case("docker.io/busybox", "docker.io/library/busybox:latest")]
    #[case("index.docker.io/library/busybox:1", "docker.io/library/busybox:1")]
    #[case("podlab.local/probe", "podlab.local/probe:latest")]
    #[case("podlab.local/probe:v1", "podlab.local/probe:v1")]
    #[case("localhost/app", "localhost/app:latest")]
    #[case("localhost:5000/app:dev", "localhost:5000/app:dev")]
    #[case("quay.io/a/b/c", "quay.io/a/b/c:latest")]
    #[case("my-registry/app", "docker.io/my-registry/app:latest")]
    #[case("a__b/c-d--e.f_g", "docker.io/a__b/c-d--e.f_g:latest")]
    fn normalises(#[case] input: &str, #[case] expected: &str) {
        assert_eq!(normalize_reference(input).unwrap(), expected);
    }

    #[test]
    fn keeps_digest_without_adding_latest() {
        let input = format!("host:5000/a/b@sha256:{HEX}");
        assert_eq!(normalize_reference(&input).unwrap(), input);
        let tagged = format!("busybox:1@sha256:{HEX}");
        assert_eq!(
            normalize_reference(&tagged).unwrap(),
            format!("docker.io/library/busybox:1@sha256:{HEX}")
        );
    }

    #[rstest]
    #[case("")]
    #[case("Busybox")]
    #[case("user/App")]
    #[case("podlab.local/Probe")]
    #[case("busybox:")]
    #[case("busybox:-bad")]
    #[case("busybox@sha256:abc")]
    #[case("busybox@md5:0123")]
    #[case("/busybox")]
    #[case("busybox/")]
    #[case("a//b")]
    #[case("bad_-sep")]
    #[case("has space")]
    #[case("host:port/app")]
    fn rejects(#[case] input: &str) {
        let err = normalize_reference(input).unwrap_err();
        assert!(
            matches!(err, Error::InvalidReference { ref reference, .. } if reference == input),
            "{input:?} gave {err}"
        );
    }

    #[test]
    fn uppercase_error_says_why() {
        let err = normalize_reference("Busybox").unwrap_err().to_string();
        assert!(
            err.contains("Busybox") && err.contains("lowercase"),
            "{err}"
        );
    }

    #[rstest]
    #[case("docker.io/library/busybox:latest", "busybox:latest")]
    #[case("docker.io/user/app:1", "user/app:1")]
    #[case("podlab.local/probe:latest", "podlab.local/probe:latest")]
    fn familiar_form(#[case] input: &str, #[case] expected: &str) {
        assert_eq!(Reference::parse(input).unwrap().familiar(), expected);
    }
}
