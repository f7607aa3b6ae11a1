//! Just enough of Kubernetes' protobuf encoding to read what kubectl's
//! typed clients send that way (`kubectl create namespace` posts its
//! Namespace as `application/vnd.kubernetes.protobuf`): the `k8s\0`
//! envelope (`runtime.Unknown`, the object in its field 2) and the
//! object's metadata name and labels. Answers stay JSON, which those
//! clients accept too.

use std::collections::BTreeMap;

pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";
const MAGIC: &[u8] = b"k8s\0";

/// One field of a message: its number and, for the length-delimited
/// kind (wire type 2), its bytes.
type Field<'a> = (u64, Option<&'a [u8]>);

/// The fields of a message, in order; `None` when it is not one.
fn fields(mut buf: &[u8]) -> Option<Vec<Field<'_>>> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let tag = varint(&mut buf)?;
        let (number, wire) = (tag >> 3, tag & 7);
        match wire {
            0 => {
                varint(&mut buf)?;
                out.push((number, None));
            }
            1 => buf = buf.get(8..)?,
            2 => {
                let len = usize::try_from(varint(&mut buf)?).ok()?;
                let (bytes, rest) = (buf.get(..len)?, buf.get(len..)?);
                out.push((number, Some(bytes)));
                buf = rest;
            }
            5 => buf = buf.get(4..)?,
            _ => return None,
        }
    }
    Some(out)
}

fn varint(buf: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn field(msg: &[u8], number: u64) -> Option<&[u8]> {
    fields(msg)?
        .into_iter()
        .find(|(n, _)| *n == number)
        .and_then(|(_, b)| b)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The metadata name and labels of an object in the protobuf envelope;
/// `None` when the bytes are not one.
pub fn name_and_labels(body: &[u8]) -> Option<(String, BTreeMap<String, String>)> {
    let unknown = body.strip_prefix(MAGIC)?;
    let raw = field(unknown, 2)?;
    let meta = field(raw, 1).unwrap_or_default();
    let mut name = String::new();
    let mut labels = BTreeMap::new();
    for (n, b) in fields(meta)? {
        match (n, b) {
            (1, Some(b)) => name = text(b),
            (11, Some(entry)) => {
                let k = field(entry, 1).map(text).unwrap_or_default();
                let v = field(entry, 2).map(text).unwrap_or_default();
                labels.insert(k, v);
            }
            _ => {}
        }
    }
    Some((name, labels))
}

/// A Secret in the protobuf envelope (`kubectl create secret` sends one):
/// its name, namespace, labels, annotations, type, `data` and `stringData`;
/// `None` when the bytes are not one.
pub fn secret(body: &[u8]) -> Option<k8s_openapi::api::core::v1::Secret> {
    use k8s_openapi::ByteString;
    let unknown = body.strip_prefix(MAGIC)?;
    let raw = field(unknown, 2)?;
    let mut secret = k8s_openapi::api::core::v1::Secret::default();
    let entry = |b: &[u8]| -> (String, Vec<u8>) {
        let k = field(b, 1).map(text).unwrap_or_default();
        let v = field(b, 2).unwrap_or_default().to_vec();
        (k, v)
    };
    for (n, b) in fields(raw)? {
        let Some(b) = b else { continue };
        match n {
            1 => {
                let meta = &mut secret.metadata;
                for (m, v) in fields(b)? {
                    match (m, v) {
                        (1, Some(v)) => meta.name = Some(text(v)),
                        (3, Some(v)) => meta.namespace = Some(text(v)),
                        (11 | 12, Some(v)) => {
                            let (k, v) = entry(v);
                            let map = if m == 11 {
                                meta.labels.get_or_insert_with(BTreeMap::new)
                            } else {
                                meta.annotations.get_or_insert_with(BTreeMap::new)
                            };
                            map.insert(k, text(&v));
                        }
                        _ => {}
                    }
                }
            }
            2 => {
                let (k, v) = entry(b);
                secret
                    .data
                    .get_or_insert_with(BTreeMap::new)
                    .insert(k, ByteString(v));
            }
            3 => secret.type_ = Some(text(b)),
            4 => {
                let (k, v) = entry(b);
                secret
                    .string_data
                    .get_or_insert_with(BTreeMap::new)
                    .insert(k, text(&v));
            }
            _ => {}
        }
    }
    Some(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ld(number: u8, bytes: &[u8]) -> Vec<u8> {
        let mut v = vec![(number << 3) | 2, bytes.len() as u8];
        v.extend_from_slice(bytes);
        v
    }

    #[test]
    fn a_namespace_in_the_envelope_is_read() {
        let entry = [ld(1, b"team"), ld(2, b"a")].concat();
        let meta = [ld(1, b"ns-1"), vec![0x20, 0x05], ld(11, &entry)].concat();
        let raw = [ld(1, &meta), ld(2, b""), ld(3, b"")].concat();
        let type_meta = [ld(1, b"v1"), ld(2, b"Namespace")].concat();
        let body = [MAGIC.to_vec(), ld(1, &type_meta), ld(2, &raw)].concat();
        let (name, labels) = name_and_labels(&body).unwrap();
        assert_eq!(name, "ns-1");
        assert_eq!(labels["team"], "a");
        assert!(name_and_labels(b"{\"kind\": \"Namespace\"}").is_none());
        assert!(name_and_labels(b"k8s\0\x12\x7f").is_none());
    }

    #[test]
    fn a_secret_in_the_envelope_is_read() {
        let meta = [ld(1, b"reg"), ld(3, b"team")].concat();
        let data = [ld(1, b".dockerconfigjson"), ld(2, b"{}")].concat();
        let raw = [
            ld(1, &meta),
            ld(2, &data),
            ld(3, b"kubernetes.io/dockerconfigjson"),
        ]
        .concat();
        let type_meta = [ld(1, b"v1"), ld(2, b"Secret")].concat();
        let body = [MAGIC.to_vec(), ld(1, &type_meta), ld(2, &raw)].concat();
        let s = secret(&body).unwrap();
        assert_eq!(s.metadata.name.as_deref(), Some("reg"));
        assert_eq!(s.metadata.namespace.as_deref(), Some("team"));
        assert_eq!(s.type_.as_deref(), Some("kubernetes.io/dockerconfigjson"));
        assert_eq!(s.data.unwrap()[".dockerconfigjson"].0, b"{}");
    }
}
