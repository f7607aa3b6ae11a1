//! Label selectors as `kubectl -l` takes them: comma-separated requirements,
//! all of which must hold. Equality-based (`a=b`, `a==b`, `a!=b`) and the
//! set-based basics (`a`, `!a`, `a in (x,y)`, `a notin (x,y)`).

use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
#[error("invalid label selector {selector:?}: {reason}")]
pub struct Error {
    pub selector: String,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

/// A parsed selector; the empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector(Vec<Requirement>);

impl Selector {
    pub fn parse(text: &str) -> Result<Selector, Error> {
        let err = |reason: String| Error {
            selector: text.to_string(),
            reason,
        };
        let mut out = Vec::new();
        if text.trim().is_empty() {
            return Ok(Selector(out));
        }
        for part in split_top_level(text).map_err(err)? {
            let part = part.trim();
            if part.is_empty() {
                return Err(err("empty requirement".into()));
            }
            out.push(requirement(part).map_err(err)?);
        }
        Ok(Selector(out))
    }

    /// True when every requirement holds for these labels.
    pub fn matches(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            // As in Kubernetes, a missing label is "not equal".
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::NotExists(k) => get(k).is_none(),
            Requirement::In(k, vs) => get(k).is_some_and(|v| vs.iter().any(|x| x == v)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|v| vs.iter().all(|x| x != v)),
        })
    }
}

/// Splits on commas outside parentheses.
fn split_top_level(text: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        if !(0..=1).contains(&depth) {
            return Err("unbalanced parentheses".into());
        }
    }
    if depth != 0 {
        return Err("unbalanced parentheses".into());
    }
    parts.push(&text[start..]);
    Ok(parts)
}

fn requirement(part: &str) -> Result<Requirement, String> {
    if let Some(key) = part.strip_prefix('!') {
        return Ok(Requirement::NotExists(key_of(key.trim())?));
    }
    for (op, make) in [
        (
            "!=",
            Requirement::NotEquals as fn(String, String) -> Requirement,
        ),
        ("==", Requirement::Equals),
        ("=", Requirement::Equals),
    ] {
        if let Some((k, v)) = part.split_once(op) {
            return Ok(make(key_of(k.trim())?, value_of(v.trim())?));
        }
    }
    let words: Vec<&str> = part.splitn(2, char::is_whitespace).collect();
    match words.as_slice() {
        [key] => Ok(Requirement::Exists(key_of(key)?)),
        [key, rest] => {
            let rest = rest.trim();
            let (op, set) = if let Some(set) = rest.strip_prefix("notin") {
                ("notin", set)
            } else if let Some(set) = rest.strip_prefix("in") {
                ("in", set)
            } else {
                return Err(format!("{part:?}: expected =, !=, in or notin"));
            };
            let set = set
                .trim()
                .strip_prefix('(')
                .and_then(|s| s.strip_suffix(')'))
                .ok_or_else(|| format!("{part:?}: {op} needs a (value,...) list"))?;
            let values = set
                .split(',')
                .map(|v| value_of(v.trim()))
                .collect::<Result<Vec<_>, _>>()?;
            let key = key_of(key)?;
            Ok(if op == "in" {
                Requirement::In(key, values)
            } else {
                Requirement::NotIn(key, values)
            })
        }
        _ => Err(format!("{part:?}: empty requirement")),
    }
}

/// A label key: `[prefix/]name`, name of alphanumerics, `-`, `_`, `.`.
fn key_of(k: &str) -> Result<String, String> {
    let name = k.rsplit('/').next().unwrap_or(k);
    let ok = !name.is_empty()
        && name.len() <= 63
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
    if ok {
        Ok(k.to_string())
    } else {
        Err(format!("{k:?} is not a valid label key"))
    }
}

fn value_of(v: &str) -> Result<String, String> {
    let ok = v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(v.to_string())
    } else {
        Err(format!("{v:?} is not a valid label value"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[rstest]
    #[case("", true)]
    #[case("app=web", true)]
    #[case("app==web", true)]
    #[case("app=db", false)]
    #[case("app!=db", true)]
    #[case("app!=web", false)]
    #[case("missing!=x", true)]
    #[case("tier", true)]
    #[case("missing", false)]
    #[case("!missing", true)]
    #[case("!tier", false)]
    #[case("app in (db,web)", true)]
    #[case("app in (db)", false)]
    #[case("app notin (db)", true)]
    #[case("missing notin (db)", true)]
    #[case("app notin (web, db)", false)]
    #[case("app=web,tier=front", true)]
    #[case("app=web, tier in (back)", false)]
    #[case("example.com/team=a", true)]
    fn selectors_match_like_kubernetes(#[case] text: &str, #[case] want: bool) {
        let l = labels(&[("app", "web"), ("tier", "front"), ("example.com/team", "a")]);
        let sel = Selector::parse(text).unwrap();
        assert_eq!(sel.matches(Some(&l)), want, "{text}");
    }

    #[test]
    fn a_pod_without_labels() {
        assert!(Selector::parse("!app").unwrap().matches(None));
        assert!(!Selector::parse("app").unwrap().matches(None));
        assert!(Selector::parse("").unwrap().matches(None));
    }

    #[rstest]
    #[case("app in (a", "unbalanced")]
    #[case("app in a", "needs a (value,...) list")]
    #[case("app=a b", "not a valid label value")]
    #[case("a pp", "expected =, !=, in or notin")]
    #[case("app=web,", "empty requirement")]
    #[case("=x", "not a valid label key")]
    fn bad_selectors_say_why(#[case] text: &str, #[case] reason: &str) {
        let e = Selector::parse(text).unwrap_err().to_string();
        assert!(e.contains(reason), "{text}: {e}");
        assert!(e.contains(&format!("{text:?}")), "{e}");
    }
}
