//! `$(VAR)` references in a container's env values, command and args, as
//! the kubelet expands them before the runtime sees the container.
//!
//! The variables are the container's own `env` entries only: the image's
//! Env is the runtime's business and unknown at expansion time, so a
//! reference to it stays as written. An env value sees the entries before
//! it; command and args see all of them. `$$` is a literal `$` (so
//! `$$(VAR)` gives `$(VAR)`), a reference to an unknown name and an
//! unclosed `$(` stay as written, and any other `$` is kept.

use k8s_openapi::api::core::v1::EnvVar;

/// `s` with every `$(NAME)` that `lookup` knows replaced by its value.
pub fn expand<'a>(s: &str, lookup: impl Fn(&str) -> Option<&'a str>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
            continue;
        }
        // A reference runs to the first `)`, whatever it holds: what is
        // inside is never expanded on its own.
        let reference = after
            .strip_prefix('(')
            .and_then(|body| body.find(')').map(|end| (&body[..end], &body[end + 1..])));
        match reference {
            Some((name, tail)) => {
                match lookup(name) {
                    Some(value) => out.push_str(value),
                    None => {
                        out.push_str("$(");
                        out.push_str(name);
                        out.push(')');
                    }
                }
                rest = tail;
            }
            None => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The container's environment as the runtime gets it: each entry's value
/// expanded from the entries before it (`value_from` gives the value of an
/// entry with `valueFrom`, used as is), a later entry of the same name
/// replacing the earlier one where it stood.
pub fn container_env(
    vars: &[EnvVar],
    mut value_from: impl FnMut(&EnvVar) -> Option<String>,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::new();
    for var in vars {
        // Validation allows `valueFrom` only beside an empty `value`.
        let value = match (var.value.as_deref().unwrap_or(""), &var.value_from) {
            ("", Some(_)) => value_from(var).unwrap_or_default(),
            (v, _) => expand(v, |name| lookup(&env, name)),
        };
        match env.iter_mut().find(|(k, _)| *k == var.name) {
            Some(slot) => slot.1 = value,
            None => env.push((var.name.clone(), value)),
        }
    }
    env
}

/// `argv` (a command or args) with references expanded from `env`, the
/// result of [`container_env`].
pub fn expand_all(argv: &[String], env: &[(String, String)]) -> Vec<String> {
    argv.iter()
        .map(|a| expand(a, |name| lookup(env, name)))
        .collect()
}

fn lookup<'e>(env: &'e [(String, String)], name: &str) -> Option<&'e str> {
    env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn known(name: &str) -> Option<&'static str> {
        match name {
            "A" => Some("alpha"),
            "EMPTY" => Some(""),
            _ => None,
        }
    }

    #[rstest]
    #[case("$(A)", "alpha")]
    #[case("x$(A)y$(A)", "xalphayalpha")]
    #[case("[$(EMPTY)]", "[]")]
    #[case("$$(A)", "$(A)")]
    #[case("$$$(A)", "$alpha")]
    #[case("$$$$(A)", "$$(A)")]
    #[case("$(UNDEFINED)", "$(UNDEFINED)")]
    #[case("$(A", "$(A")]
    #[case("$()", "$()")]
    #[case("$A and $", "$A and $")]
    #[case("cost: $5", "cost: $5")]
    #[case("$(A$(A))", "$(A$(A))")]
    #[case("$((A))", "$((A))")]
    #[case("no references", "no references")]
    #[case("ünïcödé $(A) ✓", "ünïcödé alpha ✓")]
    fn references_expand_as_the_kubelet_expands_them(#[case] input: &str, #[case] want: &str) {
        assert_eq!(expand(input, known), want);
    }

    fn var(name: &str, value: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: Some(value.into()),
            ..Default::default()
        }
    }

    #[test]
    fn env_values_see_only_the_entries_before_them() {
        let env = container_env(
            &[
                var("A", "alpha"),
                var("B", "$(A)-$(C)"),
                var("C", "gamma"),
                var("D", "$$(A) $(IMAGE_ONLY)"),
            ],
            |_| None,
        );
        let got: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            got,
            [
                ("A", "alpha"),
                ("B", "alpha-$(C)"),
                ("C", "gamma"),
                ("D", "$(A) $(IMAGE_ONLY)"),
            ]
        );
    }

    #[test]
    fn a_later_entry_replaces_an_earlier_one_and_sees_it() {
        let env = container_env(
            &[var("A", "one"), var("B", "b"), var("A", "$(A)-two")],
            |_| None,
        );
        assert_eq!(
            env,
            [
                ("A".to_string(), "one-two".to_string()),
                ("B".to_string(), "b".to_string())
            ]
        );
    }

    #[test]
    fn values_from_elsewhere_are_not_expanded() {
        let from = EnvVar {
            name: "F".into(),
            value_from: Some(Default::default()),
            ..Default::default()
        };
        let env = container_env(&[var("A", "alpha"), from], |_| Some("$(A)".into()));
        assert_eq!(env[1], ("F".to_string(), "$(A)".to_string()));
    }

    #[test]
    fn command_and_args_see_every_entry() {
        let env = container_env(&[var("A", "alpha"), var("B", "$(A)!")], |_| None);
        let argv: Vec<String> = ["$(B)", "$(A)$(B)", "$$(B)", "$(NOPE)"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            expand_all(&argv, &env),
            ["alpha!", "alphaalpha!", "$(B)", "$(NOPE)"]
        );
    }
}
