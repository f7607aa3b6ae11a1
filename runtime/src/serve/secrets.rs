//! Secrets over the API: create (JSON, YAML or kubectl's protobuf), get,
//! list (kubectl's table: NAME TYPE DATA AGE), patch, delete. The API layer
//! ([`crate::secrets`]) validates and stores; this only translates.

use hyper::Response;
use k8s_openapi::api::core::v1::Secret;
use serde_json::{json, Value};

use super::{json, tables, ApiError, Body, Ctx, Req};

fn object(secret: &Secret) -> Result<Value, ApiError> {
    serde_json::to_value(secret).map_err(|e| ApiError::internal(e.to_string()))
}

pub fn list(ctx: &Ctx, req: &Req, ns: Option<&str>) -> Result<Response<Body>, ApiError> {
    if req.is_watch() {
        return Err(ApiError::method_not_allowed());
    }
    let rv = crate::api::resource_version(&ctx.config)?;
    let secrets = crate::secrets::list(&ctx.config, ns)?;
    let items = secrets.iter().map(object).collect::<Result<Vec<_>, _>>()?;
    if req.wants_table() {
        let column = |name: &str, type_: &str| {
            let format = if name == "Name" { "name" } else { "" };
            json!({"name": name, "type": type_, "format": format, "description": "", "priority": 0})
        };
        let columns = vec![
            column("Name", "string"),
            column("Type", "string"),
            column("Data", "string"),
            column("Age", "string"),
        ];
        let rows = secrets
            .iter()
            .zip(&items)
            .map(|(s, o)| {
                let cells = vec![
                    json!(s.metadata.name),
                    json!(s.type_),
                    json!(s.data.as_ref().map_or(0, |d| d.len())),
                    json!(tables::age_of(o["metadata"]["creationTimestamp"].as_str())),
                ];
                (cells, o.clone())
            })
            .collect();
        let include = tables::Include::parse(req.q("includeObject"));
        return Ok(json(200, &tables::table(columns, rows, include, rv)));
    }
    Ok(json(
        200,
        &json!({"kind": "SecretList", "apiVersion": "v1",
            "metadata": {"resourceVersion": rv.to_string()}, "items": items}),
    ))
}

pub fn get(ctx: &Ctx, ns: &str, name: &str) -> Result<Response<Body>, ApiError> {
    let secret = crate::secrets::get(&ctx.config, ns, name)?;
    Ok(json(200, &object(&secret)?))
}

/// The request body as a Secret: JSON or YAML (unknown fields refused, as
/// with `podlab apply`), or protobuf.
fn body_secret(req: &Req) -> Result<Secret, ApiError> {
    let base = req.content_type.split(';').next().unwrap_or("").trim();
    match base {
        "application/json" | "application/yaml" | "" => {
            let text = std::str::from_utf8(&req.body)
                .map_err(|_| ApiError::bad_request("the request body is not UTF-8"))?;
            let docs = crate::manifest::parse(text, "the request body")
                .map_err(|e| ApiError::from(crate::api::Error::Manifest(e)))?;
            match docs.into_iter().next().map(|d| d.object) {
                Some(crate::manifest::Object::Secret(s)) => Ok(*s),
                _ => Err(ApiError::bad_request("the request must hold one Secret")),
            }
        }
        super::protobuf::MEDIA_TYPE => super::protobuf::secret(&req.body)
            .ok_or_else(|| ApiError::bad_request("the body is not a protobuf Secret")),
        _ => Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, {} (not {base:?})", super::protobuf::MEDIA_TYPE),
        )),
    }
}

pub fn create(ctx: &Ctx, req: &Req, ns: &str) -> Result<Response<Body>, ApiError> {
    let mut secret = body_secret(req)?;
    if let Some(given) = secret
        .metadata
        .namespace
        .as_deref()
        .filter(|n| !n.is_empty() && *n != ns)
    {
        return Err(ApiError::bad_request(format!(
            "the namespace of the provided object ({given}) does not match the namespace sent on the request ({ns})"
        )));
    }
    let name = secret.metadata.name.clone().unwrap_or_default();
    let found = crate::kube_namespaces::get(&ctx.config, ns, &ctx.started)?;
    if found.phase == crate::kube_namespaces::TERMINATING {
        return Err(ApiError::new(
            403,
            "Forbidden",
            format!("secrets \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated"),
        ));
    }
    crate::secrets::prepare(&mut secret, Some(ns))?;
    let (stored, _) = crate::secrets::store(&ctx.config, secret, false)?;
    Ok(json(201, &object(&stored)?))
}

/// PATCH (merge, strategic merge or JSON patch; `kubectl apply` of a
/// changed manifest): the patched secret is validated and stored anew.
pub fn patch(ctx: &Ctx, req: &Req, ns: &str, name: &str) -> Result<Response<Body>, ApiError> {
    let current = crate::secrets::get(&ctx.config, ns, name)?;
    let mut target = object(&current)?;
    let patch: Value = serde_json::from_slice(&req.body)
        .map_err(|e| ApiError::bad_request(format!("the patch is not JSON: {e}")))?;
    let bad = |e: crate::patch::Error| ApiError::bad_request(e.to_string());
    match req.content_type.split(';').next().unwrap_or("").trim() {
        "application/merge-patch+json" => crate::patch::merge(&mut target, &patch),
        "application/strategic-merge-patch+json" => {
            crate::patch::strategic(&mut target, &patch).map_err(bad)?
        }
        "application/json-patch+json" => crate::patch::json_patch(&mut target, &patch).map_err(bad)?,
        other => {
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (not {other:?})"),
            ))
        }
    }
    let mut secret: Secret = serde_json::from_value(target)
        .map_err(|e| ApiError::bad_request(format!("the object is not a valid Secret: {e}")))?;
    if secret.metadata.name.as_deref() != Some(name) {
        return Err(ApiError::bad_request(
            "the patch may not change metadata.name",
        ));
    }
    crate::secrets::prepare(&mut secret, Some(ns))?;
    let (stored, _) = crate::secrets::store(&ctx.config, secret, true)?;
    Ok(json(200, &object(&stored)?))
}

pub fn delete(ctx: &Ctx, ns: &str, name: &str) -> Result<Response<Body>, ApiError> {
    let secret = crate::secrets::delete(&ctx.config, ns, name)?;
    Ok(json(200, &object(&secret)?))
}
