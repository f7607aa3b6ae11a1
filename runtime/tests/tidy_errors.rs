//! Error messages say what failed at their own level and never print their
//! cause: whoever shows an error walks `source()` once (`podlab::error::chain`,
//! anyhow's `{:#}`). This test reads every `#[error("...")]` of the workspace
//! and fails on a format string that names the variant's source field.

use std::path::{Path, PathBuf};

/// The workspace's crates with thiserror enums.
const CRATES: &[&str] = &["runtime", "conformance", "kube", "testkit", "xtask"];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The string literal at the start of `text` (after `"`), unescaped only as
/// far as needed: its end.
fn literal(text: &str) -> Option<&str> {
    let body = text.strip_prefix('"')?;
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => return Some(&body[..i]),
            _ => escaped = false,
        }
    }
    None
}

/// The text inside the brackets that open at the start of `text`, and the
/// rest after them; string literals are skipped whole.
fn group(text: &str) -> Option<(&str, &str)> {
    let open = text.chars().next()?;
    let close = match open {
        '(' => ')',
        '{' => '}',
        _ => return None,
    };
    let mut depth = 0;
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        if c == '"' {
            let len = literal(&text[i..])?.len();
            // Skip the literal's body and its closing quote.
            for _ in 0..=len {
                chars.next();
            }
            continue;
        }
        if c == open {
            depth += 1;
        } else if c == close {
            depth -= 1;
            if depth == 0 {
                return Some((&text[1..i], &text[i + 1..]));
            }
        }
    }
    None
}

/// Split field declarations on the commas outside `<>`, `()`, `[]`.
fn fields(body: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in body.char_indices() {
        match c {
            '<' | '(' | '[' => depth += 1,
            '>' if !body[..i].ends_with('-') => depth -= 1,
            ')' | ']' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&body[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&body[start..]);
    out.into_iter().filter(|f| !f.trim().is_empty()).collect()
}

/// The names a format string prints: `{0}`, `{source}`, `{err:?}` give
/// `0`, `source`, `err`; `{{` is a literal brace.
fn printed(format: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = format;
    while let Some(i) = rest.find('{') {
        rest = &rest[i + 1..];
        if let Some(after) = rest.strip_prefix('{') {
            rest = after;
            continue;
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '.')
            .collect();
        // `{0.path}` prints a field of field 0, not field 0 itself.
        if !name.contains('.') {
            names.push(name);
        }
    }
    names
}

/// The source field of a variant's fields (named or positional): the one
/// marked `#[source]` or `#[from]`, or the one called `source`.
fn source_field(fields: &[&str], named: bool) -> Option<String> {
    fields.iter().enumerate().find_map(|(i, field)| {
        let marked = field.contains("#[source]") || field.contains("#[from]");
        let name = if named {
            // The last attribute's end, then `pub`, then `name: Type`.
            let decl = field.rsplit(']').next().unwrap_or(field);
            let decl = decl.trim().trim_start_matches("pub ").trim();
            decl.split(':').next().unwrap_or("").trim().to_string()
        } else {
            i.to_string()
        };
        (marked || (named && name == "source")).then_some(name)
    })
}

/// Each `#[error("...")]` in `source` whose format prints the source field
/// of the variant (or struct) it describes, as `line: message`.
fn repeats(source: &str) -> Vec<String> {
    let mut found = Vec::new();
    let needle = "#[error(";
    let mut offset = 0;
    while let Some(i) = source[offset..].find(needle) {
        let at = offset + i;
        offset = at + needle.len();
        let Some(format) = literal(source[offset..].trim_start()) else {
            continue; // transparent
        };
        // The item the attribute describes: skip its own `)]` and any other
        // attributes, then the name, then its fields.
        let Some((_, mut rest)) = group(&source[offset - 1..]) else {
            continue;
        };
        loop {
            rest = rest.trim_start().trim_start_matches(']').trim_start();
            match rest.strip_prefix("#[") {
                Some(attr) => rest = attr.split_once(']').map_or("", |(_, r)| r),
                None => break,
            }
        }
        let rest = rest.trim_start_matches("pub ").trim_start();
        let rest = rest.strip_prefix("struct ").unwrap_or(rest);
        let name_len = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let body = rest[name_len..].trim_start();
        let Some((inner, _)) = group(body) else {
            continue; // a unit variant has no source
        };
        let named = body.starts_with('{');
        if let Some(field) = source_field(&fields(inner), named) {
            if printed(format).contains(&field) {
                let line = source[..at].matches('\n').count() + 1;
                found.push(format!("{line}: \"{format}\" prints its source `{field}`"));
            }
        }
    }
    found
}

#[test]
fn error_messages_do_not_repeat_their_source() {
    let root = workspace();
    let mut files = Vec::new();
    for krate in CRATES {
        files.extend(podlab_testkit::source::rust_files(
            &root.join(krate).join("src"),
        ));
    }
    assert!(files.len() > 50, "found the sources under {root:?}");
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for hit in repeats(&text) {
            let rel = file.strip_prefix(&root).unwrap_or(&file);
            found.push(format!("{}:{hit}", rel.display()));
        }
    }
    assert!(
        found.is_empty(),
        "these messages print their source, which `source()` returns too; \
         say only what failed at this level: {found:#?}"
    );
}

/// The checker itself: every way to mark a source, and the forms it leaves
/// alone (a cause that is not the source, transparent, a field of a field).
#[test]
fn the_checker_finds_a_repeated_source() {
    let wrong = r#"
#[derive(Debug, Error)]
pub enum Error {
    #[error("reading {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("parsing: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("pulling {name}")]
    #[allow(dead_code)]
    Pull { name: String, #[source] err: Box<dyn std::error::Error + Send>, },
    #[error("pulling {name}: {err:?}")]
    Pull2 { name: String, #[source] err: Box<dyn Fn(u8) -> u8> },
    #[error("fine \"{0}\"")]
    Fine(String, #[source] std::io::Error),
    #[error(transparent)]
    Other(#[from] std::io::Error),
    #[error("{} at {0.path}", "x")]
    Nested(#[from] Inner),
    #[error("no source: {reason}")]
    Invalid { reason: String },
    #[error("unit")]
    Unit,
}
#[derive(Debug, Error)]
#[error("struct {source}")]
pub struct Wrapped { source: std::io::Error }
"#;
    let found = repeats(wrong);
    assert_eq!(
        found,
        [
            "4: \"reading {path}: {source}\" prints its source `source`",
            "6: \"parsing: {0}\" prints its source `0`",
            "11: \"pulling {name}: {err:?}\" prints its source `err`",
            "25: \"struct {source}\" prints its source `source`",
        ]
    );
}
