//! `--focus` and `--skip` patterns.
//!
//! Not regular expressions (the suite has no regex engine): a pattern is
//! one or more alternatives separated by `|`, and a test matches when its
//! ID or its MUST sentence contains one of them, ignoring case. So
//! `NET-00|UTS-001` selects NET-001…NET-009 and UTS-001, and `loopback`
//! or `127.0.0.1` match words of the MUST sentences (`.` is literal).
//! Other regex syntax is refused rather than silently matching nothing.

use crate::suite::TestCase;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    alternatives: Vec<String>,
}

/// Characters that would make a pattern a regular expression.
const REGEX_SYNTAX: &[char] = &['[', ']', '(', ')', '{', '}', '*', '+', '?', '^', '$', '\\'];

impl Pattern {
    pub fn parse(text: &str) -> Result<Pattern, String> {
        if let Some(c) = text.chars().find(|c| REGEX_SYNTAX.contains(c)) {
            return Err(format!(
                "pattern {text:?}: {c:?} is regex syntax, which is not supported; \
                 use substrings separated by | (e.g. \"NET-00|UTS-001\")"
            ));
        }
        let alternatives: Vec<String> = text.split('|').map(|a| a.trim().to_lowercase()).collect();
        if alternatives.iter().any(String::is_empty) {
            return Err(format!("pattern {text:?} has an empty alternative"));
        }
        Ok(Pattern { alternatives })
    }

    pub fn matches(&self, id: &str, must: &str) -> bool {
        let (id, must) = (id.to_lowercase(), must.to_lowercase());
        self.alternatives
            .iter()
            .any(|a| id.contains(a.as_str()) || must.contains(a.as_str()))
    }
}

/// The tests `focus` selects (all when None) minus those `skip` matches, in registry order.
pub fn select(
    cases: &[TestCase],
    focus: Option<&Pattern>,
    skip: Option<&Pattern>,
) -> Vec<TestCase> {
    cases
        .iter()
        .filter(|c| focus.is_none_or(|f| f.matches(c.id, c.must)))
        .filter(|c| !skip.is_some_and(|s| s.matches(c.id, c.must)))
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::Outcome;
    use rstest::rstest;

    fn case(id: &'static str, must: &'static str) -> TestCase {
        TestCase {
            id,
            must,
            method: "",
            exclusive: false,
            run: |_, _| Outcome::Passed,
        }
    }

    fn cases() -> Vec<TestCase> {
        vec![
            case("NET-001", "Containers MUST share the network namespace."),
            case("NET-010", "Loopback MUST be up."),
            case("UTS-001", "The hostname MUST be the pod name."),
            case("CGR-004", "Memory MUST be limited."),
        ]
    }

    fn ids(selected: &[TestCase]) -> Vec<&'static str> {
        selected.iter().map(|c| c.id).collect()
    }

    #[rstest]
    #[case(Some("NET"), None, vec!["NET-001", "NET-010"])]
    #[case(Some("net-001|uts"), None, vec!["NET-001", "UTS-001"])]
    #[case(Some("hostname"), None, vec!["UTS-001"])]
    #[case(None, Some("NET-01|memory"), vec!["NET-001", "UTS-001"])]
    #[case(Some("NET"), Some("loopback"), vec!["NET-001"])]
    #[case(Some("nothing-matches"), None, vec![])]
    #[case(None, None, vec!["NET-001", "NET-010", "UTS-001", "CGR-004"])]
    fn focus_and_skip(
        #[case] focus: Option<&str>,
        #[case] skip: Option<&str>,
        #[case] expected: Vec<&str>,
    ) {
        let focus = focus.map(|f| Pattern::parse(f).unwrap());
        let skip = skip.map(|s| Pattern::parse(s).unwrap());
        assert_eq!(
            ids(&select(&cases(), focus.as_ref(), skip.as_ref())),
            expected
        );
    }

    #[rstest]
    #[case("NET-00[1-3]")]
    #[case("^NET")]
    #[case("NET.*")]
    #[case("a||b")]
    #[case("")]
    fn unsupported_patterns_are_refused(#[case] text: &str) {
        assert!(Pattern::parse(text).is_err(), "{text}");
    }
}
