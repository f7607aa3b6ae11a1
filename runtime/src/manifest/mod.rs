//! Manifests: what `podlab apply -f FILE|-` reads.
//!
//! [`parse`] turns YAML or JSON text into pods and secrets, refusing what the API server
//! would refuse at decoding time: other kinds, syntax and type errors, and
//! unknown fields (which k8s-openapi would silently drop). [`default_pod`]
//! then fills in what Kubernetes defaults, and [`validate`] checks the pod as
//! the API server's validation would, within what podlab supports;
//! [`default_secret`] and [`validate_secret`] do the same for a Secret.
//!
//! The CLI is expected to run the three in that order and print errors with
//! `{err}`: the text is already kubectl-shaped (`error: ...` for client-side
//! problems, `The Pod "web" is invalid: ...` for validation).

mod defaults;
mod locate;
mod validate;

#[cfg(test)]
mod tests;

use std::fmt;

use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta;
use serde::de::DeserializeOwned;
use serde::Deserialize;

pub use defaults::default_pod;
pub use locate::{locate, FieldPath, Seg};
pub use validate::secret::{
    default_secret, validate_secret, DOCKERCFG, DOCKERCFG_KEY, DOCKER_CONFIG_JSON,
    DOCKER_CONFIG_JSON_KEY, MAX_SECRET_BYTES, OPAQUE,
};
pub use validate::{is_safe_sysctl, validate, FieldError, FieldErrorKind, SAFE_SYSCTLS};

/// The largest document podlab accepts, checked before parsing it (the API
/// server refuses large objects too; a pod manifest is a few KiB).
pub const MAX_DOCUMENT_BYTES: usize = 1 << 20;

const RUNS_ONLY: &str = "podlab takes kinds Pod and Secret (apiVersion v1)";

/// An object a manifest may hold.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    Pod(Box<Pod>),
    Secret(Box<Secret>),
}

/// One object read from a manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub object: Object,
    /// 1-based number of the document in the file (empty documents are not
    /// counted).
    pub document: usize,
    /// Index in `items` when the document is a `kind: List`.
    pub item: Option<usize>,
    /// 1-based line where the document (or the list item) starts.
    pub line: usize,
}

impl Document {
    /// The pod, when the document is one.
    pub fn pod(&self) -> Option<&Pod> {
        match &self.object {
            Object::Pod(p) => Some(p),
            Object::Secret(_) => None,
        }
    }

    pub fn pod_mut(&mut self) -> Option<&mut Pod> {
        match &mut self.object {
            Object::Pod(p) => Some(p),
            Object::Secret(_) => None,
        }
    }
}

/// Whether a text was read as YAML or as JSON (kubectl treats a text whose
/// first character is `{` as JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Yaml => "YAML",
            Format::Json => "JSON",
        })
    }
}

/// Which document of which file an error is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The source name given to [`parse`] (a path, or `-` for stdin).
    pub file: String,
    pub document: usize,
    /// 1-based line of the document's first content line.
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: document {} (line {})",
            self.file, self.document, self.line
        )
    }
}

/// A field that no Pod has, with the line it is written on when the
/// locator could tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownField {
    pub path: String,
    pub line: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("error: {origin}: the document is {size} bytes; podlab accepts at most {MAX_DOCUMENT_BYTES} bytes (1 MiB) per document")]
    TooLarge { origin: Origin, size: usize },

    /// The text is not well-formed YAML or JSON (or repeats a key).
    #[error("error: {origin}: invalid {format}{}: {message}", at(*line, *column))]
    Syntax {
        origin: Origin,
        format: Format,
        line: Option<usize>,
        column: Option<usize>,
        message: String,
    },

    #[error("error: {origin}: {} is not a Kubernetes object (a mapping with apiVersion and kind)", item_prefix(*item, found))]
    NotAnObject {
        origin: Origin,
        item: Option<usize>,
        /// What was found instead: "a sequence", "a string", ...
        found: String,
    },

    #[error("error: {origin}: {}", kind_problem(*item, api_version.as_deref(), kind.as_deref()))]
    Kind {
        origin: Origin,
        item: Option<usize>,
        api_version: Option<String>,
        kind: Option<String>,
    },

    #[error("error: {origin}: {}", unknown_fields(fields))]
    UnknownField {
        origin: Origin,
        fields: Vec<UnknownField>,
    },

    /// A value of the wrong type (`containerPort: abc`).
    #[error("error: {origin}: {}{}: {message}", path.as_deref().unwrap_or("the document"), at(*line, *column))]
    Type {
        origin: Origin,
        path: Option<String>,
        line: Option<usize>,
        column: Option<usize>,
        message: String,
    },

    /// The object failed validation; one problem per field, like the API server.
    #[error("{}", invalid(kind, name, problems))]
    Invalid {
        /// `Pod` or `Secret`.
        kind: &'static str,
        name: String,
        problems: Vec<FieldError>,
    },

    /// `-n` names another namespace than the manifest's metadata.namespace.
    #[error("error: the namespace from the manifest ({manifest:?}) does not match the namespace given on the command line ({requested:?}): pass --namespace={manifest} or remove metadata.namespace")]
    NamespaceMismatch { manifest: String, requested: String },
}

fn at(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!(" at line {line}, column {column}"),
        (Some(line), None) => format!(" at line {line}"),
        _ => String::new(),
    }
}

fn item_prefix(item: Option<usize>, found: &str) -> String {
    match item {
        Some(i) => format!("items[{i}] is {found}, which"),
        None => format!("the document is {found}, which"),
    }
}

fn kind_problem(item: Option<usize>, api_version: Option<&str>, kind: Option<&str>) -> String {
    let prefix = item.map(|i| format!("items[{i}]: ")).unwrap_or_default();
    let problem = match (kind, api_version) {
        (None, _) => "kind is missing".to_string(),
        (Some("Secret"), Some("v1")) if item.is_some() => {
            "a Secret in a List is not supported; give it a document of its own".to_string()
        }
        (Some(kind @ ("Pod" | "Secret" | "List")), None) => {
            format!("apiVersion is missing for kind {kind}")
        }
        (Some(kind @ ("Pod" | "Secret" | "List")), Some(version)) => {
            format!("apiVersion {version:?} is not supported for kind {kind}")
        }
        (Some(kind), _) => format!("kind {kind:?} is not supported"),
    };
    format!("{prefix}{problem}: {RUNS_ONLY}")
}

fn unknown_fields(fields: &[UnknownField]) -> String {
    let list: Vec<String> = fields
        .iter()
        .map(|f| match f.line {
            Some(line) => format!("{:?} at line {line}", f.path),
            None => format!("{:?}", f.path),
        })
        .collect();
    let noun = if fields.len() == 1 { "field" } else { "fields" };
    format!("unknown {noun} {}", list.join(", "))
}

fn invalid(kind: &str, name: &str, problems: &[FieldError]) -> String {
    match problems {
        [one] => format!("The {kind} {name:?} is invalid: {one}"),
        _ => {
            // kubectl's layout for several causes: a header, then one per line.
            let mut out = format!("The {kind} {name:?} is invalid: ");
            for problem in problems {
                out.push_str(&format!("\n* {problem}"));
            }
            out
        }
    }
}

/// Reads every pod and secret in `text` (YAML, several documents allowed, or JSON).
/// `source` names the input in error messages (a path, or `-`).
///
/// Empty documents are skipped; a `kind: List` document contributes its
/// items. The first problem found stops parsing: a file is applied whole or
/// not at all. An input without any document gives an empty list.
pub fn parse(text: &str, source: &str) -> Result<Vec<Document>, Error> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let json = text.trim_start().starts_with('{');
    let chunks = if json {
        split_json(text, source)?
    } else {
        split_yaml(text)
    };
    let mut docs = Vec::new();
    let mut number = 0;
    for chunk in chunks {
        let Some(line) = chunk.content_line() else {
            continue;
        };
        number += 1;
        let origin = Origin {
            file: source.to_string(),
            document: number,
            line,
        };
        if chunk.size > MAX_DOCUMENT_BYTES {
            return Err(Error::TooLarge {
                origin,
                size: chunk.size,
            });
        }
        chunk.decode(origin, &mut docs)?;
    }
    Ok(docs)
}

/// One document's text, padded so that line and column numbers inside it
/// match the whole input once shifted by `first_line - 1`.
#[derive(Debug)]
struct Chunk {
    text: String,
    /// Line of the input where `text` starts.
    first_line: usize,
    /// Bytes of the input the document spans.
    size: usize,
    format: Format,
}

/// `---` (alone or followed by content) starts a document and `...` ends
/// one, at column 0 only: YAML forbids both markers inside any content.
fn marker(line: &str, mark: &str) -> bool {
    line.strip_prefix(mark)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
}

fn split_yaml(text: &str) -> Vec<Chunk> {
    let new = |first_line| Chunk {
        text: String::new(),
        first_line,
        size: 0,
        format: Format::Yaml,
    };
    let mut chunks = Vec::new();
    let mut current = new(1);
    for (index, raw) in text.split_inclusive('\n').enumerate() {
        let number = index + 1;
        let line = raw.trim_end_matches(['\n', '\r']);
        if marker(line, "---") {
            chunks.push(std::mem::replace(&mut current, new(number)));
            // Keep what follows the marker (`--- {a: 1}`) at its column.
            current.text.push_str("   ");
            current.text.push_str(&raw[3..]);
        } else if marker(line, "...") {
            chunks.push(std::mem::replace(&mut current, new(number + 1)));
            continue;
        } else {
            current.text.push_str(raw);
        }
        current.size += raw.len();
    }
    chunks.push(current);
    chunks
}

/// Splits a stream of JSON values (kubectl accepts several objects in a
/// row), reporting JSON syntax errors with serde_json's exact messages.
fn split_json(text: &str, source: &str) -> Result<Vec<Chunk>, Error> {
    let mut chunks = Vec::new();
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<serde::de::IgnoredAny>();
    let mut end = 0;
    loop {
        let begin = end + (text[end..].len() - text[end..].trim_start().len());
        match stream.next() {
            None => return Ok(chunks),
            Some(Ok(_)) => {
                end = stream.byte_offset();
                let line_start = text[..begin].rfind('\n').map_or(0, |i| i + 1);
                let padding = " ".repeat(text[line_start..begin].chars().count());
                chunks.push(Chunk {
                    text: format!("{padding}{}", &text[begin..end]),
                    first_line: line_number(text, begin),
                    size: end - begin,
                    format: Format::Json,
                });
            }
            Some(Err(e)) => {
                let message = e.to_string();
                let suffix = format!(" at line {} column {}", e.line(), e.column());
                return Err(Error::Syntax {
                    origin: Origin {
                        file: source.to_string(),
                        document: chunks.len() + 1,
                        line: line_number(text, begin),
                    },
                    format: Format::Json,
                    line: Some(e.line()),
                    column: Some(e.column()),
                    message: message
                        .strip_suffix(&suffix)
                        .unwrap_or(&message)
                        .to_string(),
                });
            }
        }
    }
}

fn line_number(text: &str, offset: usize) -> usize {
    text[..offset].matches('\n').count() + 1
}

/// The parts of a List podlab reads; metadata is accepted and ignored.
#[derive(Deserialize)]
struct PodList {
    #[serde(rename = "apiVersion")]
    _api_version: Option<String>,
    #[serde(rename = "kind")]
    _kind: Option<String>,
    #[serde(rename = "metadata")]
    _metadata: Option<ListMeta>,
    #[serde(default)]
    items: Vec<Pod>,
}

impl Chunk {
    /// The input line of the first line that holds more than blanks,
    /// comments or directives; `None` for an empty document.
    fn content_line(&self) -> Option<usize> {
        self.text
            .lines()
            .position(|line| {
                let t = line.trim();
                !(t.is_empty() || t.starts_with('#') || t.starts_with('%'))
            })
            .map(|i| self.first_line + i)
    }

    fn shift(&self, line: usize) -> usize {
        line + self.first_line - 1
    }

    fn decode(&self, origin: Origin, docs: &mut Vec<Document>) -> Result<(), Error> {
        // A first pass into a generic value: catches repeated keys (which
        // typed decoding would silently resolve) and tells the kind.
        let value: serde_norway::Value =
            serde_norway::from_str(&self.text).map_err(|e| self.syntax(&e, &origin))?;
        let map = match value {
            serde_norway::Value::Null => return Ok(()),
            serde_norway::Value::Mapping(map) => map,
            other => {
                return Err(Error::NotAnObject {
                    origin,
                    item: None,
                    found: describe(&other).to_string(),
                })
            }
        };
        let (api_version, kind) = type_meta(&map);
        let is_v1 = api_version.as_deref() == Some("v1");
        match kind.as_deref() {
            Some(kind @ ("Pod" | "Secret")) if is_v1 => {
                let object = if kind == "Pod" {
                    Object::Pod(Box::new(self.typed::<Pod>(&origin)?))
                } else {
                    Object::Secret(Box::new(self.typed::<Secret>(&origin)?))
                };
                docs.push(Document {
                    object,
                    document: origin.document,
                    item: None,
                    line: origin.line,
                });
                Ok(())
            }
            Some("List") if is_v1 => self.decode_list(&map, origin, docs),
            _ => Err(Error::Kind {
                origin,
                item: None,
                api_version,
                kind,
            }),
        }
    }

    fn decode_list(
        &self,
        map: &serde_norway::Mapping,
        origin: Origin,
        docs: &mut Vec<Document>,
    ) -> Result<(), Error> {
        if let Some(serde_norway::Value::Sequence(items)) = map.get("items") {
            for (i, item) in items.iter().enumerate() {
                let serde_norway::Value::Mapping(item) = item else {
                    return Err(Error::NotAnObject {
                        origin,
                        item: Some(i),
                        found: describe(item).to_string(),
                    });
                };
                let (api_version, kind) = type_meta(item);
                if !(kind.as_deref() == Some("Pod") && api_version.as_deref() == Some("v1")) {
                    return Err(Error::Kind {
                        origin,
                        item: Some(i),
                        api_version,
                        kind,
                    });
                }
            }
        }
        // Anything but a sequence of items is a type error, reported here.
        let list = self.typed::<PodList>(&origin)?;
        for (i, pod) in list.items.into_iter().enumerate() {
            let path = [Seg::Key("items".to_string()), Seg::Index(i)];
            let line = locate(&self.text, &path).map_or(origin.line, |l| self.shift(l));
            docs.push(Document {
                object: Object::Pod(Box::new(pod)),
                document: origin.document,
                item: Some(i),
                line,
            });
        }
        Ok(())
    }

    /// Decodes into `T`, refusing unknown fields and naming the path of a
    /// wrongly typed value.
    fn typed<T: DeserializeOwned>(&self, origin: &Origin) -> Result<T, Error> {
        let de = serde_norway::Deserializer::from_str(&self.text);
        let mut unknown = Vec::new();
        let value: T = serde_ignored::deserialize(de, |path| {
            unknown.push(FieldPath::from_ignored(&path));
        })
        .map_err(|e| {
            let (line, column) = self.location(&e);
            let (path, message) = split_serde_path(&strip_location(&e));
            Error::Type {
                origin: origin.clone(),
                path,
                line,
                column,
                message,
            }
        })?;
        if unknown.is_empty() {
            return Ok(value);
        }
        Err(Error::UnknownField {
            origin: origin.clone(),
            fields: unknown
                .into_iter()
                .map(|path| UnknownField {
                    line: locate(&self.text, &path.0).map(|l| self.shift(l)),
                    path: path.to_string(),
                })
                .collect(),
        })
    }

    fn location(&self, e: &serde_norway::Error) -> (Option<usize>, Option<usize>) {
        match e.location() {
            Some(loc) => (Some(self.shift(loc.line())), Some(loc.column())),
            None => (None, None),
        }
    }

    fn syntax(&self, e: &serde_norway::Error, origin: &Origin) -> Error {
        let (line, column) = self.location(e);
        Error::Syntax {
            origin: origin.clone(),
            format: self.format,
            line,
            column,
            message: shift_lines(&strip_location(e), self.first_line - 1),
        }
    }
}

/// The message of a serde_norway error without its own position (reported
/// separately, shifted to the whole input).
fn strip_location(e: &serde_norway::Error) -> String {
    let message = e.to_string();
    let Some(loc) = e.location() else {
        return message;
    };
    for suffix in [
        format!(" at line {} column {}", loc.line(), loc.column()),
        format!(" at position {}", loc.index()),
    ] {
        if let Some(i) = message.find(&suffix) {
            return format!("{}{}", &message[..i], &message[i + suffix.len()..]);
        }
    }
    message
}

/// Adds `offset` to every `line N` in a libyaml message (its context part
/// names a second position, relative to the document).
fn shift_lines(message: &str, offset: usize) -> String {
    let mut out = String::new();
    let mut rest = message;
    while let Some(i) = rest.find("line ") {
        out.push_str(&rest[..i + 5]);
        rest = &rest[i + 5..];
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        match rest[..digits].parse::<usize>() {
            Ok(n) => out.push_str(&(n + offset).to_string()),
            Err(_) => out.push_str(&rest[..digits]),
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

/// serde_norway prefixes its messages with the path of the value
/// (`spec.containers[0].ports[0].containerPort: invalid type: ...`); splits
/// that path off by finding where serde's own wording starts.
fn split_serde_path(message: &str) -> (Option<String>, String) {
    const SERDE_WORDING: [&str; 14] = [
        "invalid type: ",
        "invalid value: ",
        "invalid length ",
        "unknown variant ",
        "unknown field ",
        "missing field ",
        "duplicate field ",
        "duplicate entry ",
        "expected ",
        // The base64 decoder of a Secret's `data` values.
        "Invalid symbol ",
        "Invalid byte ",
        "Invalid last symbol ",
        "Invalid padding",
        "Encoded text cannot ",
    ];
    if SERDE_WORDING.iter().any(|w| message.starts_with(w)) {
        return (None, message.to_string());
    }
    let found = message.match_indices(": ").find(|(i, _)| {
        let after = &message[i + 2..];
        SERDE_WORDING.iter().any(|w| after.starts_with(w))
    });
    match found {
        Some((i, _)) => (Some(message[..i].to_string()), message[i + 2..].to_string()),
        None => (None, message.to_string()),
    }
}

fn type_meta(map: &serde_norway::Mapping) -> (Option<String>, Option<String>) {
    // `kind: null` (or `kind:`) is as good as missing.
    let text = |key: &str| map.get(key).filter(|v| !v.is_null()).map(scalar_text);
    (text("apiVersion"), text("kind"))
}

/// A value as it would read in the manifest, for messages about it.
fn scalar_text(value: &serde_norway::Value) -> String {
    match value {
        serde_norway::Value::String(s) => s.clone(),
        serde_norway::Value::Number(n) => n.to_string(),
        serde_norway::Value::Bool(b) => b.to_string(),
        serde_norway::Value::Null => "null".to_string(),
        other => describe(other).to_string(),
    }
}

fn describe(value: &serde_norway::Value) -> &'static str {
    match value {
        serde_norway::Value::Null => "null",
        serde_norway::Value::Bool(_) => "a boolean",
        serde_norway::Value::Number(_) => "a number",
        serde_norway::Value::String(_) => "a string",
        serde_norway::Value::Sequence(_) => "a sequence",
        serde_norway::Value::Mapping(_) => "a mapping",
        serde_norway::Value::Tagged(_) => "a tagged value",
    }
}
