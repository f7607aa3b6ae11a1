//! Errors as the API server gives them: `Status` objects with a reason and
//! an HTTP code, and the mapping from the API layer's errors.

use serde_json::{json, Value};

use crate::api;
use crate::manifest::{self, FieldErrorKind};
use crate::store;

/// An error answer: its code, reason, message and details.
#[derive(Debug)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    pub fn not_found(resource: &str, name: &str) -> ApiError {
        ApiError {
            details: Some(json!({"name": name, "kind": resource})),
            ..ApiError::new(404, "NotFound", format!("{resource} \"{name}\" not found"))
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }

    pub fn method_not_allowed() -> ApiError {
        ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(401, "Unauthorized", "Unauthorized")
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(500, "InternalError", message)
    }

    /// The `Status` object of the answer.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

/// The `reason` of a field cause, as the API server names it.
fn cause_reason(kind: FieldErrorKind) -> &'static str {
    match kind {
        FieldErrorKind::Required => "FieldValueRequired",
        FieldErrorKind::Invalid => "FieldValueInvalid",
        FieldErrorKind::Duplicate => "FieldValueDuplicate",
        FieldErrorKind::NotFound => "FieldValueNotFound",
        FieldErrorKind::NotSupported => "FieldValueNotSupported",
        FieldErrorKind::Forbidden => "FieldValueForbidden",
    }
}

/// Without the CLI's "error: " prefix, which kubectl adds itself.
fn plain(message: String) -> String {
    message
        .strip_prefix("error: ")
        .map(str::to_string)
        .unwrap_or(message)
}

impl From<api::Error> for ApiError {
    fn from(e: api::Error) -> ApiError {
        use api::Error as A;
        match e {
            A::Store(store::Error::NotFound { name, .. }) => ApiError::not_found("pods", &name),
            A::Manifest(manifest::Error::Invalid {
                kind,
                name,
                problems,
            }) => {
                let causes: Vec<Value> = problems
                    .iter()
                    .map(|p| {
                        let mut message = p.kind.to_string();
                        if let Some(v) = &p.value {
                            message.push_str(&format!(": {v}"));
                        }
                        if !p.detail.is_empty() {
                            message.push_str(&format!(": {}", p.detail));
                        }
                        json!({"reason": cause_reason(p.kind), "message": message, "field": p.path})
                    })
                    .collect();
                let message = manifest::Error::Invalid {
                    kind,
                    name: name.clone(),
                    problems,
                }
                .to_string();
                ApiError {
                    details: Some(json!({"name": name, "kind": kind, "causes": causes})),
                    ..ApiError::new(422, "Invalid", message)
                }
            }
            A::Manifest(e @ manifest::Error::TooLarge { .. }) => {
                ApiError::new(413, "RequestEntityTooLarge", plain(crate::error::chain(&e)))
            }
            A::Manifest(e) => ApiError::bad_request(plain(crate::error::chain(&e))),
            e @ A::Conflict { .. } => {
                let name = match &e {
                    A::Conflict { name } => name.clone(),
                    _ => String::new(),
                };
                ApiError {
                    details: Some(json!({"name": name, "kind": "pods"})),
                    ..ApiError::new(409, "Conflict", crate::error::chain(&e))
                }
            }
            A::Store(store::Error::AlreadyExists { name, .. }) => ApiError {
                details: Some(json!({"name": name, "kind": "pods"})),
                ..ApiError::new(
                    409,
                    "AlreadyExists",
                    format!("pods \"{name}\" already exists"),
                )
            },
            e @ (A::NoLog(_) | A::NoSuchContainer { .. } | A::NotRunning { .. }) => {
                ApiError::bad_request(plain(crate::error::chain(&e)))
            }
            A::NoObjects => ApiError::bad_request("the request has no object"),
            e => ApiError::internal(crate::error::chain(&e)),
        }
    }
}

impl From<crate::kube_namespaces::Error> for ApiError {
    fn from(e: crate::kube_namespaces::Error) -> ApiError {
        use crate::kube_namespaces::Error as N;
        let detail = |name: &str| Some(json!({"name": name, "kind": "namespaces"}));
        match e {
            N::Api(e) => e.into(),
            N::NotFound(name) => ApiError::not_found("namespaces", &name),
            e @ N::AlreadyExists(_) => {
                let name = match &e {
                    N::AlreadyExists(n) => n.clone(),
                    _ => String::new(),
                };
                ApiError {
                    details: detail(&name),
                    ..ApiError::new(409, "AlreadyExists", crate::error::chain(&e))
                }
            }
            e @ N::Undeletable(_) => ApiError::new(403, "Forbidden", crate::error::chain(&e)),
            e @ N::Invalid(_) => ApiError::new(422, "Invalid", crate::error::chain(&e)),
            e => ApiError::internal(crate::error::chain(&e)),
        }
    }
}

impl From<crate::secrets::Error> for ApiError {
    fn from(e: crate::secrets::Error) -> ApiError {
        use crate::secrets::Error as S;
        match e {
            S::Manifest(e) => api::Error::Manifest(*e).into(),
            S::NotFound { name, .. } => ApiError::not_found("secrets", &name),
            e @ S::AlreadyExists { .. } => {
                let name = match &e {
                    S::AlreadyExists { name, .. } => name.clone(),
                    _ => String::new(),
                };
                ApiError {
                    details: Some(json!({"name": name, "kind": "secrets"})),
                    ..ApiError::new(409, "AlreadyExists", crate::error::chain(&e))
                }
            }
            e => ApiError::internal(crate::error::chain(&e)),
        }
    }
}
