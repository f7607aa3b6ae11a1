//! The three patch formats of the Kubernetes API, over JSON values:
//! JSON merge patch (RFC 7386), JSON patch (RFC 6902) and the strategic
//! merge patch kubectl sends (`apply`, `label`, `set image`, `patch`),
//! which merges the lists of a pod by their key (containers by name,
//! ports by containerPort, ...) instead of replacing them whole.

use serde_json::{Map, Value};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("the patch is not a JSON object")]
    NotAnObject,
    #[error("the JSON patch is not a list of operations")]
    NotAList,
    #[error("JSON patch operation {index}: {message}")]
    Operation { index: usize, message: String },
    #[error("unknown strategic merge patch directive {0:?}")]
    Directive(String),
}

/// RFC 7386: objects merge key by key, `null` removes, anything else
/// replaces (lists whole).
pub fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// The key a list field's items merge by in a strategic merge patch (the
/// `patchMergeKey` of the pod's types); lists without one are replaced.
fn merge_key(field: &str) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "resourceClaims"
        | "schedulingGates" => "name",
        "ports" => "containerPort",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "hostAliases" => "ip",
        "ownerReferences" => "uid",
        "conditions" => "type",
        "topologySpreadConstraints" => "topologyKey",
        _ => return None,
    })
}

/// kubectl's strategic merge patch: like [`merge`], but lists with a merge
/// key merge item by item, and the `$patch`, `$setElementOrder`,
/// `$retainKeys` and `$deleteFromPrimitiveList` directives apply.
pub fn strategic(target: &mut Value, patch: &Value) -> Result<(), Error> {
    let Value::Object(p) = patch else {
        return Err(Error::NotAnObject);
    };
    strategic_object(target, p)
}

fn strategic_object(target: &mut Value, patch: &Map<String, Value>) -> Result<(), Error> {
    match patch.get("$patch").and_then(Value::as_str) {
        None | Some("merge") => {}
        Some("replace") => {
            let mut p = patch.clone();
            p.remove("$patch");
            *target = Value::Object(p);
            return Ok(());
        }
        Some("delete") => {
            *target = Value::Null;
            return Ok(());
        }
        Some(other) => return Err(Error::Directive(other.to_string())),
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(t) = target else {
        return Ok(());
    };
    for (k, v) in patch {
        if k == "$patch" || k == "$retainKeys" || k.starts_with("$setElementOrder/") {
            // Ordering and retained keys only matter to what kubectl diffs.
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(items)), Value::Array(gone)) = (t.get_mut(field), v) {
                items.retain(|i| !gone.contains(i));
            }
            continue;
        }
        if k.starts_with('$') {
            return Err(Error::Directive(k.clone()));
        }
        if v.is_null() {
            t.remove(k);
            continue;
        }
        let slot = t.entry(k.clone()).or_insert(Value::Null);
        match (v, merge_key(k)) {
            (Value::Object(o), _) => {
                strategic_object(slot, o)?;
                if slot.is_null() {
                    t.remove(k);
                }
            }
            (Value::Array(items), Some(key)) => merge_list(slot, items, key)?,
            _ => *slot = v.clone(),
        }
    }
    Ok(())
}

/// Merges a list by `key`: an item of the patch with `$patch: delete`
/// removes the target's item, one with the key of an item merges into
/// it, any other is appended; `[{"$patch": "replace"}, ...]` replaces.
fn merge_list(target: &mut Value, patch: &[Value], key: &str) -> Result<(), Error> {
    let replace = patch
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"));
    if replace || !target.is_array() {
        let items = patch
            .iter()
            .filter(|i| i.get("$patch").is_none())
            .cloned()
            .collect();
        *target = Value::Array(items);
        return Ok(());
    }
    let Value::Array(list) = target else {
        return Ok(());
    };
    for item in patch {
        let Value::Object(o) = item else {
            list.push(item.clone());
            continue;
        };
        let wanted = o.get(key);
        let found = wanted.and_then(|w| list.iter().position(|t| t.get(key) == Some(w)));
        match (o.get("$patch").and_then(Value::as_str), found) {
            (Some("delete"), Some(i)) => {
                list.remove(i);
            }
            (Some("delete"), None) => {}
            (_, Some(i)) => strategic_object(&mut list[i], o)?,
            (_, None) => {
                let mut fresh = Value::Object(Map::new());
                strategic_object(&mut fresh, o)?;
                list.push(fresh);
            }
        }
    }
    Ok(())
}

/// `/a/b~1c/0` into its unescaped tokens.
fn pointer_tokens(pointer: &str) -> Result<Vec<String>, String> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(format!("path {pointer:?} does not start with /"));
    };
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

/// The parent of what `tokens` names, and the last token.
fn parent<'a>(root: &'a mut Value, tokens: &[String]) -> Result<(&'a mut Value, String), String> {
    let Some((last, up)) = tokens.split_last() else {
        return Err("the operation needs a path below the root".into());
    };
    let mut v = root;
    for t in up {
        v = match v {
            Value::Object(o) => o.get_mut(t),
            Value::Array(a) => t.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| format!("path element {t:?} does not exist"))?;
    }
    Ok((v, last.clone()))
}

fn remove_at(root: &mut Value, tokens: &[String]) -> Result<Value, String> {
    let (p, last) = parent(root, tokens)?;
    match p {
        Value::Object(o) => o
            .remove(&last)
            .ok_or_else(|| format!("{last:?} does not exist")),
        Value::Array(a) => match last.parse::<usize>() {
            Ok(i) if i < a.len() => Ok(a.remove(i)),
            _ => Err(format!("index {last:?} is out of range")),
        },
        _ => Err("the parent is not an object or a list".into()),
    }
}

fn add_at(root: &mut Value, tokens: &[String], value: Value) -> Result<(), String> {
    if tokens.is_empty() {
        *root = value;
        return Ok(());
    }
    let (p, last) = parent(root, tokens)?;
    match p {
        Value::Object(o) => {
            o.insert(last, value);
            Ok(())
        }
        Value::Array(a) if last == "-" => {
            a.push(value);
            Ok(())
        }
        Value::Array(a) => match last.parse::<usize>() {
            Ok(i) if i <= a.len() => {
                a.insert(i, value);
                Ok(())
            }
            _ => Err(format!("index {last:?} is out of range")),
        },
        _ => Err("the parent is not an object or a list".into()),
    }
}

/// RFC 6902: add, remove, replace, move, copy, test, in order; the
/// target is left as it was when an operation fails.
pub fn json_patch(target: &mut Value, ops: &Value) -> Result<(), Error> {
    let Value::Array(ops) = ops else {
        return Err(Error::NotAList);
    };
    let mut work = target.clone();
    for (index, op) in ops.iter().enumerate() {
        let fail = |message: String| Error::Operation { index, message };
        let field = |name: &str| -> Result<Vec<String>, Error> {
            let p = op
                .get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| fail(format!("missing {name:?}")))?;
            pointer_tokens(p).map_err(fail)
        };
        let path = field("path")?;
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| fail("missing \"value\"".into()))
        };
        match op.get("op").and_then(Value::as_str) {
            Some("add") => add_at(&mut work, &path, value()?).map_err(fail)?,
            Some("remove") => {
                remove_at(&mut work, &path).map_err(fail)?;
            }
            Some("replace") => {
                remove_at(&mut work, &path).map_err(fail)?;
                add_at(&mut work, &path, value()?).map_err(fail)?;
            }
            Some("move") => {
                let moved = remove_at(&mut work, &field("from")?).map_err(fail)?;
                add_at(&mut work, &path, moved).map_err(fail)?;
            }
            Some("copy") => {
                let from = op.get("from").and_then(Value::as_str).unwrap_or("");
                let copied = work
                    .pointer(from)
                    .cloned()
                    .ok_or_else(|| fail(format!("{from:?} does not exist")))?;
                add_at(&mut work, &path, copied).map_err(fail)?;
            }
            Some("test") => {
                let at = op.get("path").and_then(Value::as_str).unwrap_or("");
                if work.pointer(at) != Some(&value()?) {
                    return Err(fail(format!("test of {at:?} failed")));
                }
            }
            other => return Err(fail(format!("unknown op {other:?}"))),
        }
    }
    *target = work;
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod() -> Value {
        json!({
            "metadata": {"name": "web", "labels": {"app": "web", "tier": "a"}},
            "spec": {
                "containers": [
                    {"name": "main", "image": "busybox", "ports": [{"containerPort": 80}]},
                    {"name": "side", "image": "probe"}
                ],
                "tolerations": [{"key": "a"}]
            }
        })
    }

    #[test]
    fn merge_patch_replaces_lists_and_null_removes() {
        let mut p = pod();
        merge(
            &mut p,
            &json!({"metadata": {"labels": {"tier": null, "new": "x"}},
                "spec": {"containers": [{"name": "only", "image": "i"}]}}),
        );
        assert_eq!(p["metadata"]["labels"], json!({"app": "web", "new": "x"}));
        assert_eq!(
            p["spec"]["containers"],
            json!([{"name": "only", "image": "i"}])
        );
    }

    #[test]
    fn strategic_merge_merges_containers_by_name() {
        let mut p = pod();
        // What `kubectl set image pod/web main=probe` sends.
        strategic(
            &mut p,
            &json!({"spec": {"containers": [{"name": "main", "image": "probe"}]}}),
        )
        .unwrap();
        let c = &p["spec"]["containers"];
        assert_eq!(c[0]["image"], "probe");
        assert_eq!(c[0]["ports"], json!([{"containerPort": 80}]));
        assert_eq!(c[1]["image"], "probe");
        assert_eq!(c.as_array().unwrap().len(), 2);
        // A list without a merge key is replaced whole.
        strategic(&mut p, &json!({"spec": {"tolerations": [{"key": "b"}]}})).unwrap();
        assert_eq!(p["spec"]["tolerations"], json!([{"key": "b"}]));
    }

    #[test]
    fn strategic_merge_directives() {
        let mut p = pod();
        strategic(
            &mut p,
            &json!({
                "$setElementOrder/containers": [{"name": "main"}],
                "metadata": {"labels": {"$patch": "replace", "only": "this"}},
                "spec": {"containers": [{"name": "side", "$patch": "delete"},
                    {"name": "new", "image": "x", "$setElementOrder/ports": []}]}
            }),
        )
        .unwrap();
        assert_eq!(p["metadata"]["labels"], json!({"only": "this"}));
        let names: Vec<&str> = p["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["main", "new"]);
        assert!(p["spec"]["containers"][1]
            .get("$setElementOrder/ports")
            .is_none());
        let mut q = json!({"metadata": {"finalizers": ["a", "b"]}});
        strategic(
            &mut q,
            &json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
        )
        .unwrap();
        assert_eq!(q["metadata"]["finalizers"], json!(["b"]));
        assert_eq!(
            strategic(&mut q, &json!({"$bogus": 1})),
            Err(Error::Directive("$bogus".into()))
        );
        assert_eq!(strategic(&mut q, &json!([1])), Err(Error::NotAnObject));
    }

    #[test]
    fn json_patch_operations_apply_in_order_or_not_at_all() {
        let mut p = pod();
        json_patch(
            &mut p,
            &json!([
                {"op": "replace", "path": "/spec/containers/0/image", "value": "probe"},
                {"op": "add", "path": "/metadata/labels/a~1b", "value": "c"},
                {"op": "remove", "path": "/metadata/labels/tier"},
                {"op": "add", "path": "/spec/tolerations/-", "value": {"key": "z"}},
                {"op": "copy", "from": "/metadata/name", "path": "/metadata/labels/n"},
                {"op": "move", "from": "/metadata/labels/n", "path": "/metadata/labels/m"},
                {"op": "test", "path": "/metadata/labels/m", "value": "web"}
            ]),
        )
        .unwrap();
        assert_eq!(p["spec"]["containers"][0]["image"], "probe");
        assert_eq!(
            p["metadata"]["labels"],
            json!({"app": "web", "a/b": "c", "m": "web"})
        );
        assert_eq!(p["spec"]["tolerations"][1]["key"], "z");
        let before = p.clone();
        let err = json_patch(
            &mut p,
            &json!([
                {"op": "remove", "path": "/metadata/labels/app"},
                {"op": "test", "path": "/metadata/name", "value": "other"}
            ]),
        )
        .unwrap_err();
        assert!(matches!(err, Error::Operation { index: 1, .. }), "{err}");
        assert_eq!(p, before);
        assert!(json_patch(&mut p, &json!({"op": "add"})).is_err());
        assert!(json_patch(&mut p, &json!([{"op": "remove", "path": "/nope"}])).is_err());
    }
}
