//! Best-effort mapping from a field path (`spec.containers[0].imagee`) to
//! the line of a YAML or JSON document where that field is written.
//!
//! serde only reports positions for errors it raises itself; unknown fields
//! are found by `serde_ignored`, which knows the path but not the position.
//! This module re-reads the text to find the position: it follows block
//! mappings and `- ` sequences by indentation, and flow collections (`{...}`,
//! `[...]`, hence JSON) by scanning brackets. Whatever it cannot follow
//! (aliases, complex keys, odd layouts) gives `None` rather than a guess.

use std::fmt;

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A field path, displayed the way Kubernetes does: `spec.containers[0].name`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldPath(pub Vec<Seg>);

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(key) if i == 0 => f.write_str(key)?,
                Seg::Key(key) => write!(f, ".{key}")?,
                Seg::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

impl FieldPath {
    /// The path serde_ignored reports, without its `?` steps (Option and
    /// newtype wrappers, which have no name in the document).
    pub fn from_ignored(path: &serde_ignored::Path<'_>) -> FieldPath {
        fn walk(path: &serde_ignored::Path<'_>, out: &mut Vec<Seg>) {
            use serde_ignored::Path;
            match path {
                Path::Root => {}
                Path::Seq { parent, index } => {
                    walk(parent, out);
                    out.push(Seg::Index(*index));
                }
                Path::Map { parent, key } => {
                    walk(parent, out);
                    out.push(Seg::Key(key.clone()));
                }
                Path::Some { parent }
                | Path::NewtypeStruct { parent }
                | Path::NewtypeVariant { parent } => walk(parent, out),
            }
        }
        let mut segs = Vec::new();
        walk(path, &mut segs);
        FieldPath(segs)
    }
}

/// The 1-based line of `doc` where the last step of `path` is written: the
/// key for a field, the `- ` (or first element character) for an index.
pub fn locate(doc: &str, path: &[Seg]) -> Option<usize> {
    if path.is_empty() {
        return None;
    }
    let entries = entries(doc);
    let root: Vec<&Entry<'_>> = entries.iter().collect();
    block(doc, &root, path).map(|offset| line_of(doc, offset))
}

fn line_of(doc: &str, offset: usize) -> usize {
    doc[..offset.min(doc.len())].matches('\n').count() + 1
}

/// A piece of a line in block layout: either a `- ` sequence marker or the
/// content that follows the indentation (and any markers).
#[derive(Debug)]
struct Entry<'a> {
    col: usize,
    offset: usize,
    dash: bool,
    text: &'a str,
}

/// Splits the document into entries. `  - name: a` gives a dash at column 2
/// and content `name: a` at column 4, which is where the item's other keys
/// sit on the following lines.
fn entries(doc: &str) -> Vec<Entry<'_>> {
    let mut out = Vec::new();
    let mut line_start = 0;
    for raw in doc.split_inclusive('\n') {
        let line = raw.trim_end_matches(['\n', '\r']);
        let mut col = line.len() - line.trim_start_matches(' ').len();
        let mut rest = &line[col..];
        loop {
            if rest.is_empty() || rest.starts_with('#') {
                break;
            }
            let is_dash = rest == "-" || rest.starts_with("- ") || rest.starts_with("-\t");
            if !is_dash {
                out.push(Entry {
                    col,
                    offset: line_start + col,
                    dash: false,
                    text: rest,
                });
                break;
            }
            out.push(Entry {
                col,
                offset: line_start + col,
                dash: true,
                text: "-",
            });
            let after = &rest[1..];
            let content = after.trim_start_matches([' ', '\t']);
            col += 1 + after.len() - content.len();
            rest = content;
        }
        line_start += raw.len();
    }
    out
}

/// Follows `path` through the block node made of `node` (all its entries);
/// returns the byte offset of the final step.
fn block(doc: &str, node: &[&Entry<'_>], path: &[Seg]) -> Option<usize> {
    let (step, rest) = path.split_first()?;
    let first = node.first()?;
    if !first.dash && (first.text.starts_with('{') || first.text.starts_with('[')) {
        return Flow::new(doc, first.offset).find(path);
    }
    match step {
        Seg::Key(want) => {
            if first.dash {
                return None;
            }
            let col = first.col;
            for (i, entry) in node.iter().enumerate() {
                if entry.col != col || entry.dash {
                    continue;
                }
                let Some((key, after_colon)) = split_key(entry.text) else {
                    continue;
                };
                if key != *want {
                    continue;
                }
                if rest.is_empty() {
                    return Some(entry.offset);
                }
                let inline = inline_value(&entry.text[after_colon..]);
                if !inline.is_empty() {
                    if inline.starts_with('{') || inline.starts_with('[') {
                        let offset = entry.offset
                            + (inline.as_ptr() as usize - entry.text.as_ptr() as usize);
                        return Flow::new(doc, offset).find(rest);
                    }
                    // A scalar or an alias: nothing to descend into.
                    return None;
                }
                // The value: deeper entries, or a `- ` list at the key's own
                // column (YAML lets a sequence value sit flush with its key).
                let value: Vec<&Entry<'_>> = node[i + 1..]
                    .iter()
                    .copied()
                    .take_while(|e| e.col > col || (e.col == col && e.dash))
                    .collect();
                return block(doc, &value, rest);
            }
            None
        }
        Seg::Index(want) => {
            if !first.dash {
                return None;
            }
            let col = first.col;
            let mut seen = 0;
            for (i, entry) in node.iter().enumerate() {
                if entry.col != col || !entry.dash {
                    continue;
                }
                if seen < *want {
                    seen += 1;
                    continue;
                }
                if rest.is_empty() {
                    return Some(entry.offset);
                }
                let item: Vec<&Entry<'_>> = node[i + 1..]
                    .iter()
                    .copied()
                    .take_while(|e| e.col > col)
                    .collect();
                return block(doc, &item, rest);
            }
            None
        }
    }
}

/// Splits `key: value` into the key (unquoted) and the byte index just past
/// the colon. `None` when the text is not a block mapping entry.
fn split_key(text: &str) -> Option<(String, usize)> {
    let (key, after) = if let Some(quote @ ('"' | '\'')) = text.chars().next() {
        let (key, len) = quoted(text, quote)?;
        let rest = &text[len..];
        let trimmed = rest.trim_start_matches([' ', '\t']);
        if !trimmed.starts_with(':') {
            return None;
        }
        (key, len + (rest.len() - trimmed.len()) + 1)
    } else {
        let bytes = text.as_bytes();
        let colon = (0..bytes.len())
            .find(|&i| bytes[i] == b':' && matches!(bytes.get(i + 1), None | Some(b' ' | b'\t')))?;
        (text[..colon].trim_end().to_string(), colon + 1)
    };
    Some((key, after))
}

/// Reads a quoted scalar starting at `text[0] == quote`; returns its value
/// and its length in bytes including the quotes.
fn quoted(text: &str, quote: char) -> Option<(String, usize)> {
    let mut value = String::new();
    let mut chars = text.char_indices().skip(1).peekable();
    while let Some((i, c)) = chars.next() {
        if quote == '\'' && c == '\'' {
            if matches!(chars.peek(), Some((_, '\''))) {
                chars.next();
                value.push('\'');
                continue;
            }
            return Some((value, i + 1));
        }
        if quote == '"' && c == '\\' {
            // Escapes only matter for matching plain field names; keep the
            // escaped character as is.
            if let Some((_, escaped)) = chars.next() {
                value.push(escaped);
            }
            continue;
        }
        if c == quote {
            return Some((value, i + 1));
        }
        value.push(c);
    }
    None
}

/// The value written on the key's own line, without anchors, tags and
/// comments (which do not change where the value's content is).
fn inline_value(after_colon: &str) -> &str {
    let mut rest = after_colon.trim_start_matches([' ', '\t']);
    while rest.starts_with('&') || rest.starts_with('!') {
        let end = rest.find([' ', '\t']).unwrap_or(rest.len());
        rest = rest[end..].trim_start_matches([' ', '\t']);
    }
    if rest.starts_with('#') {
        ""
    } else {
        rest.trim_end()
    }
}

/// A scanner over flow collections (`{a: 1, b: [x, y]}`), which covers JSON.
struct Flow<'a> {
    s: &'a [u8],
    text: &'a str,
    pos: usize,
}

impl<'a> Flow<'a> {
    fn new(text: &'a str, pos: usize) -> Self {
        Flow {
            s: text.as_bytes(),
            text,
            pos,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(c) = self.peek() {
            match c {
                b' ' | b'\t' | b'\r' | b'\n' => self.pos += 1,
                b'#' if self.pos == 0 || self.s[self.pos - 1].is_ascii_whitespace() => {
                    while !matches!(self.peek(), None | Some(b'\n')) {
                        self.pos += 1;
                    }
                }
                _ => break,
            }
        }
    }

    /// At the start of a value: the offset of the last step of `path`.
    fn find(&mut self, path: &[Seg]) -> Option<usize> {
        let (step, rest) = path.split_first()?;
        self.skip_ws();
        match (self.peek()?, step) {
            (b'{', Seg::Key(want)) => {
                self.pos += 1;
                loop {
                    self.skip_ws();
                    if self.peek()? == b'}' {
                        return None;
                    }
                    let key_at = self.pos;
                    let key = self.scalar(true)?;
                    self.skip_ws();
                    let has_value = self.peek()? == b':';
                    if has_value {
                        self.pos += 1;
                    }
                    if key == *want {
                        return if rest.is_empty() {
                            Some(key_at)
                        } else if has_value {
                            self.find(rest)
                        } else {
                            None
                        };
                    }
                    if has_value {
                        self.skip_value()?;
                    }
                    self.next_item(b'}')?;
                }
            }
            (b'[', Seg::Index(want)) => {
                self.pos += 1;
                let mut index = 0;
                loop {
                    self.skip_ws();
                    if self.peek()? == b']' {
                        return None;
                    }
                    if index == *want {
                        return if rest.is_empty() {
                            Some(self.pos)
                        } else {
                            self.find(rest)
                        };
                    }
                    self.skip_value()?;
                    self.next_item(b']')?;
                    index += 1;
                }
            }
            _ => None,
        }
    }

    /// After an entry: consumes `,` and reports whether more may follow;
    /// `None` at the closing bracket or on malformed input.
    fn next_item(&mut self, close: u8) -> Option<()> {
        self.skip_ws();
        match self.peek()? {
            b',' => {
                self.pos += 1;
                Some(())
            }
            c if c == close => None,
            _ => None,
        }
    }

    fn skip_value(&mut self) -> Option<()> {
        self.skip_ws();
        match self.peek()? {
            open @ (b'{' | b'[') => {
                let close = if open == b'{' { b'}' } else { b']' };
                self.pos += 1;
                loop {
                    self.skip_ws();
                    if self.peek()? == close {
                        self.pos += 1;
                        return Some(());
                    }
                    if open == b'{' {
                        self.scalar(true)?;
                        self.skip_ws();
                        if self.peek()? == b':' {
                            self.pos += 1;
                            self.skip_value()?;
                        }
                    } else {
                        self.skip_value()?;
                    }
                    self.skip_ws();
                    match self.peek()? {
                        b',' => self.pos += 1,
                        c if c == close => {}
                        _ => return None,
                    }
                }
            }
            _ => self.scalar(false).map(|_| ()),
        }
    }

    /// Reads a quoted or plain scalar. A plain key stops at `: `; a plain
    /// value may contain colons (`image: nginx:1.27`).
    fn scalar(&mut self, key: bool) -> Option<String> {
        let rest = &self.text[self.pos..];
        if let Some(quote @ ('"' | '\'')) = rest.chars().next() {
            let (value, len) = quoted(rest, quote)?;
            self.pos += len;
            return Some(value);
        }
        let bytes = rest.as_bytes();
        let mut end = 0;
        while end < bytes.len() {
            match bytes[end] {
                b',' | b']' | b'}' => break,
                b':' if key
                    && matches!(
                        bytes.get(end + 1),
                        None | Some(b' ' | b'\t' | b'\n' | b'\r' | b',' | b']' | b'}')
                    ) =>
                {
                    break
                }
                b'#' if end > 0 && bytes[end - 1].is_ascii_whitespace() => break,
                _ => end += 1,
            }
        }
        self.pos += end;
        Some(rest[..end].trim().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn path(s: &str) -> Vec<Seg> {
        let mut out = Vec::new();
        for part in s.split('.') {
            let (key, indices) = part.split_once('[').unwrap_or((part, ""));
            if !key.is_empty() {
                out.push(Seg::Key(key.to_string()));
            }
            for index in indices.split('[') {
                let index = index.trim_end_matches(']');
                if !index.is_empty() {
                    out.push(Seg::Index(index.parse().unwrap()));
                }
            }
        }
        out
    }

    const BLOCK: &str = "\
apiVersion: v1
kind: Pod
metadata:
  name: web   # trailing comment
  labels: {app: web, 'tier': front}
spec:
  containers:
  - name: app
    image: nginx:1.27
    command:
    - sh
    - -c
    - |
      imagee: not a key, block scalar text
    ports:
      - containerPort: 80
        name: http
      -   containerPort: 81
          \"protocol\": UDP
  - name: side

    # a comment between keys
    imagee: busybox
    env: [{name: A, value: 'x: y'}, {name: B,
      valueFrom: {fieldRef: {fieldPath: metadata.name}}}]
  volumes:
    -
      name: data
      emptyDir: {}
";

    #[rstest]
    #[case("apiVersion", Some(1))]
    #[case("metadata.name", Some(4))]
    #[case("metadata.labels", Some(5))]
    #[case("metadata.labels.tier", Some(5))]
    #[case("spec.containers", Some(7))]
    #[case("spec.containers[0]", Some(8))]
    #[case("spec.containers[0].name", Some(8))]
    #[case("spec.containers[0].image", Some(9))]
    #[case("spec.containers[0].command[2]", Some(13))]
    #[case("spec.containers[0].ports[0].containerPort", Some(16))]
    #[case("spec.containers[0].ports[0].name", Some(17))]
    #[case("spec.containers[0].ports[1].protocol", Some(19))]
    #[case("spec.containers[1].name", Some(20))]
    #[case("spec.containers[1].imagee", Some(23))]
    #[case("spec.containers[1].env[0].value", Some(24))]
    #[case("spec.containers[1].env[1].valueFrom.fieldRef.fieldPath", Some(25))]
    #[case("spec.volumes[0]", Some(27))]
    #[case("spec.volumes[0].emptyDir", Some(29))]
    // Not there: text inside a block scalar is not a key.
    #[case("spec.containers[0].imagee", None)]
    #[case("spec.containers[2].name", None)]
    #[case("spec.containers[0].ports[2]", None)]
    #[case("spec.nodeName", None)]
    // Cannot descend into a scalar.
    #[case("kind.x", None)]
    fn finds_lines_in_block_yaml(#[case] p: &str, #[case] line: Option<usize>) {
        assert_eq!(locate(BLOCK, &path(p)), line, "{p}");
    }

    const JSON: &str = r#"{
  "apiVersion": "v1",
  "kind": "Pod",
  "metadata": {"name": "web", "labels": {"a:b": "c,d"}},
  "spec": {
    "containers": [
      {
        "name": "app",
        "image": "nginx",
        "args": ["]", "{", "\"x\""],
        "ports": [{"containerPort": 80}, {"containerPort": 81, "protcol": "UDP"}]
      },
      {"name": "side", "imagee": "busybox"}
    ]
  }
}"#;

    #[rstest]
    #[case("kind", Some(3))]
    #[case("metadata.name", Some(4))]
    #[case("spec.containers[0].image", Some(9))]
    #[case("spec.containers[0].ports[1].protcol", Some(11))]
    #[case("spec.containers[1]", Some(13))]
    #[case("spec.containers[1].imagee", Some(13))]
    #[case("spec.containers[2]", None)]
    #[case("spec.missing", None)]
    fn finds_lines_in_json(#[case] p: &str, #[case] line: Option<usize>) {
        assert_eq!(locate(JSON, &path(p)), line, "{p}");
    }

    #[test]
    fn anchors_and_tags_do_not_hide_the_value() {
        let doc = "metadata: &meta\n  name: a\nspec: !!map\n  x: 1\n";
        assert_eq!(locate(doc, &path("metadata.name")), Some(2));
        assert_eq!(locate(doc, &path("spec.x")), Some(4));
    }

    #[test]
    fn aliases_and_empty_paths_give_up() {
        let doc = "a: &x {b: 1}\nc: *x\n";
        assert_eq!(locate(doc, &path("a.b")), Some(1));
        assert_eq!(locate(doc, &path("c.b")), None);
        assert_eq!(locate(doc, &[]), None);
    }

    #[test]
    fn nested_dashes_on_one_line() {
        let doc = "m:\n- - a\n  - b\n- - c\n";
        assert_eq!(locate(doc, &path("m[0][1]")), Some(3));
        assert_eq!(locate(doc, &path("m[1][0]")), Some(4));
    }

    #[test]
    fn malformed_flow_gives_up() {
        assert_eq!(locate("a: {b: [1, 2}\n", &path("a.c")), None);
        assert_eq!(locate("{\"a\": ", &path("a.b")), None);
    }

    #[test]
    fn displays_kubernetes_style_paths() {
        let p = FieldPath(path("spec.containers[0].ports[1].name"));
        assert_eq!(p.to_string(), "spec.containers[0].ports[1].name");
        assert_eq!(FieldPath(path("m[0][1]")).to_string(), "m[0][1]");
    }
}
