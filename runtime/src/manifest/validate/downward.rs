//! The downward API: `env[*].valueFrom` and `downwardAPI` volumes. A field
//! path or resource the kubelet cannot value is refused here, with the
//! list of those it can, as the API server refuses it.

use k8s_openapi::api::core::v1::{
    DownwardAPIVolumeSource, EnvVarSource, ObjectFieldSelector, ResourceFieldSelector,
};

use super::{quote, supported, FieldErrorKind, Validator};
use crate::downward;

impl Validator {
    pub(super) fn env_source(&mut self, path: &str, from: &EnvVarSource) {
        let set = [
            from.field_ref.is_some(),
            from.resource_field_ref.is_some(),
            from.config_map_key_ref.is_some(),
            from.secret_key_ref.is_some(),
        ]
        .iter()
        .filter(|s| **s)
        .count();
        match set {
            0 => self.push(
                path,
                FieldErrorKind::Invalid,
                Some("\"\"".into()),
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
            ),
            1 => {}
            _ => self.push(
                path,
                FieldErrorKind::Invalid,
                None,
                "may not have more than one field specified at a time",
            ),
        }
        if let Some(f) = &from.field_ref {
            self.field_ref(&format!("{path}.fieldRef"), f, true);
        }
        if let Some(r) = &from.resource_field_ref {
            self.resource_ref(&format!("{path}.resourceFieldRef"), r, false);
        }
    }

    fn field_ref(&mut self, path: &str, sel: &ObjectFieldSelector, env: bool) {
        self.one_of(
            &format!("{path}.apiVersion"),
            sel.api_version.as_deref(),
            &["v1"],
        );
        let field = sel.field_path.as_str();
        let at = format!("{path}.fieldPath");
        if field.is_empty() {
            self.push(&at, FieldErrorKind::Required, None, "");
        } else if !downward::field_allowed(field, env) {
            let allowed = if env {
                downward::ENV_FIELDS
            } else {
                downward::VOLUME_FIELDS
            };
            self.push(
                &at,
                FieldErrorKind::NotSupported,
                quote(field),
                &supported(allowed),
            );
        }
    }

    fn resource_ref(&mut self, path: &str, sel: &ResourceFieldSelector, volume: bool) {
        if volume && sel.container_name.as_deref().unwrap_or("").is_empty() {
            self.push(
                &format!("{path}.containerName"),
                FieldErrorKind::Required,
                None,
                "",
            );
        }
        let resource = sel.resource.as_str();
        let at = format!("{path}.resource");
        if resource.is_empty() {
            self.push(&at, FieldErrorKind::Required, None, "");
            return;
        }
        if !downward::RESOURCES.contains(&resource) {
            self.push(
                &at,
                FieldErrorKind::NotSupported,
                quote(resource),
                &supported(downward::RESOURCES),
            );
            return;
        }
        let Some(divisor) = sel.divisor.as_ref().filter(|d| !d.0.is_empty()) else {
            return;
        };
        let (allowed, kind) = if resource.ends_with(".cpu") {
            (downward::CPU_DIVISORS, "cpu")
        } else {
            (downward::BYTE_DIVISORS, "memory and storage")
        };
        if !allowed.contains(&divisor.0.as_str()) {
            self.push(
                &format!("{path}.divisor"),
                FieldErrorKind::Invalid,
                quote(&divisor.0),
                &format!(
                    "a divisor of a {kind} resource must be one of {}",
                    allowed.join(", ")
                ),
            );
        }
    }

    pub(super) fn downward_volume(&mut self, path: &str, source: &DownwardAPIVolumeSource) {
        let mode = |v: &mut Validator, at: String, m: Option<i32>| {
            if let Some(m) = m.filter(|m| !(0..=0o777).contains(m)) {
                v.push(
                    &at,
                    FieldErrorKind::Invalid,
                    Some(m.to_string()),
                    "must be a number between 0 and 0777 (octal), both inclusive",
                );
            }
        };
        mode(self, format!("{path}.defaultMode"), source.default_mode);
        let mut paths = std::collections::HashSet::new();
        for (i, item) in source.items.iter().flatten().enumerate() {
            let at = format!("{path}.items[{i}]");
            let file = item.path.as_str();
            if file.is_empty() {
                self.push(&format!("{at}.path"), FieldErrorKind::Required, None, "");
            } else if file.starts_with('/') {
                self.push(
                    &format!("{at}.path"),
                    FieldErrorKind::Invalid,
                    quote(file),
                    "must be a relative path",
                );
            } else if file.split('/').any(|c| c == "..") {
                self.push(
                    &format!("{at}.path"),
                    FieldErrorKind::Invalid,
                    quote(file),
                    "must not contain '..'",
                );
            } else if !paths.insert(file) {
                self.push(
                    &format!("{at}.path"),
                    FieldErrorKind::Duplicate,
                    quote(file),
                    "",
                );
            }
            mode(self, format!("{at}.mode"), item.mode);
            match (&item.field_ref, &item.resource_field_ref) {
                (Some(f), None) => self.field_ref(&format!("{at}.fieldRef"), f, false),
                (None, Some(r)) => self.resource_ref(&format!("{at}.resourceFieldRef"), r, true),
                (Some(_), Some(_)) => self.push(
                    &at,
                    FieldErrorKind::Invalid,
                    None,
                    "fieldRef and resourceFieldRef can not be specified simultaneously",
                ),
                (None, None) => self.push(
                    &at,
                    FieldErrorKind::Required,
                    None,
                    "one of fieldRef and resourceFieldRef is required",
                ),
            }
        }
    }
}
