//! How an error reads to a user. Each error says only what failed at its own
//! level ("reading the pod record {path}") and returns its cause from
//! `source()`; whoever shows one walks the chain once, here.

/// The error and its causes, outermost first, joined with ": " (the form
/// anyhow's `{:#}` gives in the binaries).
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("reading the pod record {path}")]
    struct Read {
        path: String,
        source: std::io::Error,
    }

    #[test]
    fn each_cause_once_outermost_first() {
        let err = Read {
            path: "/run/podlab/default/web".into(),
            source: std::io::Error::other("permission denied"),
        };
        assert_eq!(
            chain(&err),
            "reading the pod record /run/podlab/default/web: permission denied"
        );
    }
}
