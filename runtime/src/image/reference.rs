//! Image reference normalisation, following the rules Docker and containerd
//! share: an implicit `docker.io` registry, `library/` for official images and
//! `:latest` when neither a tag nor a digest is given.
//!
//! oci-spec's `distribution::Reference` does the parsing and normalising; this
//! wrapper only adds where it accepts what the kubelet (distribution/reference
//! and go-digest underneath) refuses, or what podlab's store cannot hold:
//! non-ASCII tags (its `\w` is Unicode), upper-case digest hex, a bare
//! 64-hex name, and digests other than sha256. It also says "must be
//! lowercase" where oci-spec says only "invalid reference format".

use oci_spec::distribution::{ParseError, Reference as OciReference};

use super::Error;

const DEFAULT_REGISTRY: &str = "docker.io";
/// Images named under this registry exist only in podlab's store (the
/// fixtures, images a user imports): podlab never pulls them, whatever the
/// imagePullPolicy, as `.local` names no host a registry could be on.
pub const LOCAL_REGISTRY: &str = "podlab.local";

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
        // oci-spec's tag pattern is Unicode-aware; the kubelet's is ASCII.
        if !s.is_ascii() {
            return Err(invalid("contains non-ASCII characters"));
        }
        // The kubelet refuses a name that could be mistaken for an image ID.
        if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(invalid(
                "a 64-character hexadecimal string is an image ID, not a name",
            ));
        }
        let parsed = OciReference::try_from(s).map_err(|e| {
            // The same as the kubelet: if only case stops it, the name is at fault.
            let lower = s.to_ascii_lowercase();
            match e {
                ParseError::ReferenceInvalidFormat
                    if lower != s && OciReference::try_from(lower.as_str()).is_ok() =>
                {
                    invalid("repository name must be lowercase")
                }
                e => invalid(&e.to_string()),
            }
        })?;
        // Blobs are stored by sha256 only, and go-digest wants lowercase hex.
        if let Some(digest) = parsed.digest() {
            if !super::blob::is_sha256_digest(digest) {
                return Err(invalid("digest must be sha256:<64 lowercase hex>"));
            }
        }
        Ok(Reference {
            registry: parsed.registry().to_string(),
            repository: parsed.repository().to_string(),
            tag: parsed.tag().map(String::from),
            digest: parsed.digest().map(String::from),
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

    /// Each of these parses with oci-spec alone; the wrapper refuses it as
    /// the kubelet does (or as podlab's sha256-only store must).
    #[test]
    fn refuses_what_oci_spec_lets_through() {
        let cases = [
            ("busybox:\u{df}", "non-ASCII"),
            ("busybox:v\u{663}", "non-ASCII"),
            (HEX, "image ID"),
            (
                &format!("busybox@sha256:{}", HEX.to_uppercase()),
                "lowercase hex",
            ),
            (&format!("busybox@sha512:{HEX}{HEX}"), "sha256"),
        ];
        for (input, why) in cases {
            assert!(
                OciReference::try_from(input).is_ok(),
                "oci-spec now refuses {input:?}: the wrapper case may go"
            );
            let err = normalize_reference(input).unwrap_err().to_string();
            assert!(err.contains(why), "{input:?} gave {err}");
        }
    }

    #[rstest]
    #[case("Busybox")]
    #[case("localhost:5000/App:v1")]
    #[case("user/app@sha256:0123")]
    fn lowercase_reason_only_when_case_is_the_fault(#[case] input: &str) {
        let err = normalize_reference(input).unwrap_err().to_string();
        let lowercase = input != input.to_ascii_lowercase();
        assert_eq!(err.contains("must be lowercase"), lowercase, "{err}");
    }

    /// As distribution/reference: the 255-character limit is on the
    /// normalised repository path, the registry not counted.
    #[test]
    fn length_limit_is_on_the_repository() {
        let registry = "registry.example.com:5000";
        let path = "a".repeat(255);
        assert!(normalize_reference(&format!("{registry}/{path}")).is_ok());
        let err = normalize_reference(&format!("{registry}/{path}a")).unwrap_err();
        assert!(err.to_string().contains("255"), "{err}");
        // `library/` counts: 248 characters become 256.
        assert!(normalize_reference(&"b".repeat(248)).is_err());
        assert!(normalize_reference(&"b".repeat(247)).is_ok());
    }

    #[rstest]
    #[case("docker.io/library/busybox:latest", "busybox:latest")]
    #[case("docker.io/user/app:1", "user/app:1")]
    #[case("podlab.local/probe:latest", "podlab.local/probe:latest")]
    fn familiar_form(#[case] input: &str, #[case] expected: &str) {
        assert_eq!(Reference::parse(input).unwrap().familiar(), expected);
    }
}
