//! `-o jsonpath=TEMPLATE`: the common subset of kubectl's JSONPath templates.
//!
//! Text outside braces is printed as is; inside braces: a path (`.a.b`,
//! `.items[0]`, `.items[*].metadata.name`, an optional leading `$`), a
//! string literal (`{"\n"}`, `{'\t'}`), or `range PATH` ... `end` repeating
//! its body for each value with paths relative to it. Several values print
//! space-separated; strings raw, anything else as JSON. A missing field
//! prints nothing, as kubectl's default `--allow-missing-template-keys`.

use serde_json::Value;

#[derive(Debug, thiserror::Error)]
#[error("error parsing jsonpath {template:?}: {reason}")]
pub struct Error {
    template: String,
    reason: String,
}

#[derive(Clone, Debug, PartialEq)]
enum Step {
    Field(String),
    Index(usize),
    All,
}

#[derive(Clone, Debug, PartialEq)]
enum Node {
    Text(String),
    Path(Vec<Step>),
    Range(Vec<Step>, Vec<Node>),
}

/// A parsed template.
#[derive(Debug)]
pub struct Template(Vec<Node>);

impl Template {
    pub fn parse(template: &str) -> Result<Template, Error> {
        let err = |reason: String| Error {
            template: template.to_string(),
            reason,
        };
        let mut stack: Vec<(Option<Vec<Step>>, Vec<Node>)> = vec![(None, Vec::new())];
        let mut rest = template;
        while !rest.is_empty() {
            let Some(open) = rest.find('{') else {
                push(&mut stack, Node::Text(rest.to_string()));
                break;
            };
            if open > 0 {
                push(&mut stack, Node::Text(rest[..open].to_string()));
            }
            let inner_start = &rest[open + 1..];
            let close = closing_brace(inner_start).ok_or_else(|| err("unclosed {".into()))?;
            let inner = inner_start[..close].trim();
            rest = &inner_start[close + 1..];
            if let Some(path) = inner.strip_prefix("range ") {
                stack.push((Some(parse_path(path.trim()).map_err(err)?), Vec::new()));
            } else if inner == "end" {
                if stack.len() < 2 {
                    return Err(err("{end} without {range}".into()));
                }
                let (path, body) = stack.pop().unwrap_or_default();
                push(&mut stack, Node::Range(path.unwrap_or_default(), body));
            } else if let Some(text) = literal(inner) {
                push(&mut stack, Node::Text(text.map_err(err)?));
            } else {
                push(&mut stack, Node::Path(parse_path(inner).map_err(err)?));
            }
        }
        if stack.len() != 1 {
            return Err(err("{range} without {end}".into()));
        }
        Ok(Template(stack.pop().map(|(_, n)| n).unwrap_or_default()))
    }

    pub fn render(&self, data: &Value) -> String {
        let mut out = String::new();
        render(&self.0, data, &mut out);
        out
    }
}

fn push(stack: &mut [(Option<Vec<Step>>, Vec<Node>)], node: Node) {
    if let Some((_, nodes)) = stack.last_mut() {
        nodes.push(node);
    }
}

/// The index of the `}` closing a `{`, skipping braces inside quotes.
fn closing_brace(s: &str) -> Option<usize> {
    let mut quote = None;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(_), '\\') if !escaped => {
                escaped = true;
                continue;
            }
            (Some(q), c) if c == q && !escaped => quote = None,
            (None, '"' | '\'') => quote = Some(c),
            (None, '}') => return Some(i),
            _ => {}
        }
        escaped = false;
    }
    None
}

/// A quoted literal with `\n`, `\t`, `\\` and the quote escaped.
fn literal(inner: &str) -> Option<Result<String, String>> {
    let q = inner.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let body = inner[1..].strip_suffix(q);
    let Some(body) = body else {
        return Some(Err(format!("unterminated string {inner}")));
    };
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => return Some(Err(format!("dangling \\ in {inner}"))),
        }
    }
    Some(Ok(out))
}

fn parse_path(text: &str) -> Result<Vec<Step>, String> {
    let mut rest = text.strip_prefix('$').unwrap_or(text);
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    if !rest.starts_with('.') && !rest.starts_with('[') && !rest.starts_with('@') {
        return Err(format!("unrecognized identifier {text}"));
    }
    rest = rest.strip_prefix('@').unwrap_or(rest);
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if rest.starts_with("..") {
            return Err(format!("recursive descent (..) is not supported: {text}"));
        }
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let name = &r[..end];
            if name.is_empty() && end < r.len() {
                return Err(format!("empty field name in {text}"));
            }
            if name == "*" {
                steps.push(Step::All);
            } else if !name.is_empty() {
                steps.push(Step::Field(name.to_string()));
            }
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').ok_or_else(|| format!("unclosed [ in {text}"))?;
            let index = &r[..end];
            steps.push(match index {
                "*" => Step::All,
                i => match i.parse::<usize>() {
                    Ok(n) => Step::Index(n),
                    Err(_) => {
                        // Filters, slices, negative and quoted indexes.
                        return Err(format!("[{i}] is not supported (only [N] and [*])"));
                    }
                },
            });
            rest = &r[end + 1..];
        } else {
            return Err(format!("unexpected {rest:?} in {text}"));
        }
    }
    Ok(steps)
}

fn eval<'a>(steps: &[Step], value: &'a Value) -> Vec<&'a Value> {
    let Some((first, rest)) = steps.split_first() else {
        return vec![value];
    };
    let next: Vec<&Value> = match (first, value) {
        (Step::Field(f), Value::Object(m)) => m.get(f).into_iter().collect(),
        (Step::Index(i), Value::Array(a)) => a.get(*i).into_iter().collect(),
        (Step::All, Value::Array(a)) => a.iter().collect(),
        (Step::All, Value::Object(m)) => m.values().collect(),
        _ => Vec::new(),
    };
    next.into_iter().flat_map(|v| eval(rest, v)).collect()
}

fn render(nodes: &[Node], data: &Value, out: &mut String) {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Path(p) => {
                let texts: Vec<String> = eval(p, data)
                    .into_iter()
                    .map(|v| match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect();
                out.push_str(&texts.join(" "));
            }
            Node::Range(p, body) => {
                for v in eval(p, data) {
                    render(body, v, out);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> Value {
        serde_json::json!({"kind": "List", "items": [
            {"metadata": {"name": "a", "labels": {"app": "web"}}, "status": {"podIP": "10.0.0.2",
                "containerStatuses": [{"name": "c1", "ready": true}, {"name": "c2", "ready": false}]}},
            {"metadata": {"name": "b"}, "status": {}}
        ]})
    }

    fn run(t: &str) -> String {
        Template::parse(t).unwrap().render(&list())
    }

    #[test]
    fn fields_items_and_ranges() {
        assert_eq!(run("{.kind}"), "List");
        assert_eq!(run("{$.kind}"), "List");
        assert_eq!(run("{.items[*].metadata.name}"), "a b");
        assert_eq!(run("{.items[0].status.podIP}"), "10.0.0.2");
        assert_eq!(run("{.items[1].status.podIP}"), "");
        assert_eq!(
            run("{.items[0].status.containerStatuses[*].ready}"),
            "true false"
        );
        assert_eq!(run("{.items[0].metadata.labels}"), r#"{"app":"web"}"#);
        assert_eq!(
            run(r#"{range .items[*]}{.metadata.name}{"\t"}{.status.podIP}{"\n"}{end}"#),
            "a\t10.0.0.2\nb\t\n"
        );
        assert_eq!(
            run("names: {range .items[*]}[{.metadata.name}]{end}"),
            "names: [a][b]"
        );
        assert_eq!(
            run(r#"{range .items[*]}{range .status.containerStatuses[*]}{.name}{','}{end}{end}"#),
            "c1,c2,"
        );
        assert_eq!(run(r#"{"a}b"}"#), "a}b");
    }

    #[test]
    fn unsupported_and_broken_templates_say_why() {
        for (t, why) in [
            ("{.items[?(@.x)]}", "not supported"),
            ("{..name}", "recursive descent"),
            ("{.items", "unclosed {"),
            ("{range .items[*]}{.x}", "{range} without {end}"),
            ("{end}", "{end} without {range}"),
            ("{name}", "unrecognized identifier"),
            (r#"{"ab"c}"#, "unterminated string"),
        ] {
            let e = Template::parse(t).unwrap_err().to_string();
            assert!(e.contains(why), "{t}: {e}");
        }
    }
}
