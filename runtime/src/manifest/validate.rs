//! Pod validation in the manner of the API server: every problem is
//! collected, each with the path of its field, so one `apply` shows them all.
//!
//! The rules are Kubernetes' where podlab supports the feature, and narrower
//! where it does not (only emptyDir, downwardAPI and hostPath volumes, no extended resources). Fields
//! that [`super::default_pod`] fills in are accepted when empty, so a pod can
//! be validated before or after defaulting.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use k8s_openapi::api::core::v1::{
    Container, HostPathVolumeSource, Pod, PodSpec, ResourceRequirements, Volume,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::Error;
use crate::quantity;

mod dns;
mod downward;
pub(super) mod secret;
mod security;
pub use security::{is_safe_sysctl, SAFE_SYSCTLS};

/// The kinds of field problems, named as the API server prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldErrorKind {
    /// "Required value": the field is missing or empty.
    Required,
    /// "Invalid value": the value breaks a rule.
    Invalid,
    /// "Duplicate value": the value must be unique.
    Duplicate,
    /// "Not found": the value refers to something that does not exist.
    NotFound,
    /// "Unsupported value": the value is not one of a fixed set.
    NotSupported,
    /// "Forbidden": the field may not be set here.
    Forbidden,
}

impl fmt::Display for FieldErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FieldErrorKind::Required => "Required value",
            FieldErrorKind::Invalid => "Invalid value",
            FieldErrorKind::Duplicate => "Duplicate value",
            FieldErrorKind::NotFound => "Not found",
            FieldErrorKind::NotSupported => "Unsupported value",
            FieldErrorKind::Forbidden => "Forbidden",
        })
    }
}

/// One problem with one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// `spec.containers[0].resources.limits.memory`
    pub path: String,
    pub kind: FieldErrorKind,
    /// The offending value as the API server prints it: strings quoted,
    /// numbers bare.
    pub value: Option<String>,
    pub detail: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.kind)?;
        if let Some(value) = &self.value {
            write!(f, ": {value}")?;
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

const LABEL_RULE: &str = "must be a lowercase RFC 1123 label: at most 63 lowercase letters, digits or '-', starting and ending with a letter or digit (e.g. \"web-1\")";
const SUBDOMAIN_RULE: &str = "must be a lowercase RFC 1123 subdomain: at most 253 lowercase letters, digits, '-' or '.', each dot-separated part starting and ending with a letter or digit (e.g. \"web.v1\")";
const CONTAINER_RESOURCES: &[&str] = &["cpu", "ephemeral-storage", "memory"];
/// podlab's own `pids` limit is a pod-level limit only (one pids cgroup per pod).
const POD_LIMITS: &[&str] = &["cpu", "memory", "pids"];
const POD_REQUESTS: &[&str] = &["cpu", "memory"];

/// Checks a pod; returns every problem found as [`Error::Invalid`].
pub fn validate(pod: &Pod) -> Result<(), Error> {
    let mut v = Validator::default();
    v.metadata(pod);
    match &pod.spec {
        Some(spec) => v.spec(spec),
        None => v.push("spec.containers", FieldErrorKind::Required, None, ""),
    }
    if v.problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid {
            kind: "Pod",
            name: pod.metadata.name.clone().unwrap_or_default(),
            problems: v.problems,
        })
    }
}

/// The volume sources podlab mounts.
const VOLUME_SOURCES: &[&str] = &["downwardAPI", "emptyDir", "hostPath"];

fn quote(s: &str) -> Option<String> {
    Some(format!("{s:?}"))
}

fn supported(values: &[&str]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    format!("supported values: {}", quoted.join(", "))
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?` of any length.
fn is_label_chars(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

fn is_label(s: &str) -> bool {
    s.len() <= 63 && is_label_chars(s)
}

/// Dot-separated labels; Kubernetes bounds the whole name, not each part.
fn is_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_label_chars)
}

/// A port name as services refer to it (IANA service name syntax).
fn is_port_name(s: &str) -> bool {
    s.len() <= 15
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && s.bytes().any(|c| c.is_ascii_lowercase())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

#[derive(Default)]
struct Validator {
    problems: Vec<FieldError>,
}

impl Validator {
    fn push(&mut self, path: &str, kind: FieldErrorKind, value: Option<String>, detail: &str) {
        self.problems.push(FieldError {
            path: path.to_string(),
            kind,
            value,
            detail: detail.to_string(),
        });
    }

    fn label(&mut self, path: &str, value: &str) {
        if value.is_empty() {
            self.push(path, FieldErrorKind::Required, None, "");
        } else if !is_label(value) {
            self.push(path, FieldErrorKind::Invalid, quote(value), LABEL_RULE);
        }
    }

    fn one_of(&mut self, path: &str, value: Option<&str>, allowed: &[&str]) {
        // Empty means "not set": defaulting fills these in.
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            if !allowed.contains(&value) {
                self.push(
                    path,
                    FieldErrorKind::NotSupported,
                    quote(value),
                    &supported(allowed),
                );
            }
        }
    }

    fn metadata(&mut self, pod: &Pod) {
        match pod.metadata.name.as_deref().unwrap_or("") {
            "" => self.push(
                "metadata.name",
                FieldErrorKind::Required,
                None,
                "name is required (podlab does not generate names)",
            ),
            name if !is_subdomain(name) => self.push(
                "metadata.name",
                FieldErrorKind::Invalid,
                quote(name),
                SUBDOMAIN_RULE,
            ),
            _ => {}
        }
        if let Some(ns) = pod.metadata.namespace.as_deref().filter(|n| !n.is_empty()) {
            if !is_label(ns) {
                self.push(
                    "metadata.namespace",
                    FieldErrorKind::Invalid,
                    quote(ns),
                    LABEL_RULE,
                );
            }
        }
    }

    fn spec(&mut self, spec: &PodSpec) {
        let volumes = self.volumes(spec.volumes.as_deref().unwrap_or_default());

        // Container names are unique across regular and init containers:
        // both are addressed by name (logs, exec, status).
        let mut names = HashSet::new();
        if spec.containers.is_empty() {
            self.push("spec.containers", FieldErrorKind::Required, None, "");
        }
        for (i, c) in spec.containers.iter().enumerate() {
            self.container(
                &format!("spec.containers[{i}]"),
                c,
                false,
                &volumes,
                &mut names,
            );
        }
        for (i, c) in spec.init_containers.iter().flatten().enumerate() {
            self.container(
                &format!("spec.initContainers[{i}]"),
                c,
                true,
                &volumes,
                &mut names,
            );
        }
        if spec
            .ephemeral_containers
            .as_ref()
            .is_some_and(|e| !e.is_empty())
        {
            self.push(
                "spec.ephemeralContainers",
                FieldErrorKind::Forbidden,
                None,
                "cannot be set on create",
            );
        }

        self.one_of(
            "spec.restartPolicy",
            spec.restart_policy.as_deref(),
            &["Always", "OnFailure", "Never"],
        );
        self.one_of(
            "spec.dnsPolicy",
            spec.dns_policy.as_deref(),
            &["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"],
        );
        if let Some(grace) = spec.termination_grace_period_seconds.filter(|g| *g < 0) {
            self.push(
                "spec.terminationGracePeriodSeconds",
                FieldErrorKind::Invalid,
                Some(grace.to_string()),
                "must be greater than or equal to 0",
            );
        }
        if let Some(deadline) = spec.active_deadline_seconds.filter(|d| *d < 1) {
            self.push(
                "spec.activeDeadlineSeconds",
                FieldErrorKind::Invalid,
                Some(deadline.to_string()),
                "must be greater than or equal to 1",
            );
        }
        // The pod's hostname and subdomain become DNS labels of its FQDN.
        for (path, value) in [
            ("spec.hostname", &spec.hostname),
            ("spec.subdomain", &spec.subdomain),
        ] {
            if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
                if !is_label(value) {
                    self.push(path, FieldErrorKind::Invalid, quote(value), LABEL_RULE);
                }
            }
        }
        if let Some(resources) = &spec.resources {
            self.resources("spec.resources", resources, POD_LIMITS, POD_REQUESTS);
        }
        self.pod_security(spec);
        self.host_aliases(spec);
        self.dns_config(spec);
        self.host_namespaces(spec);
    }

    /// Checks the volumes; returns the names that mounts may refer to.
    fn volumes(&mut self, volumes: &[Volume]) -> HashSet<String> {
        let mut names = HashSet::new();
        for (i, volume) in volumes.iter().enumerate() {
            let path = format!("spec.volumes[{i}]");
            self.label(&format!("{path}.name"), &volume.name);
            if !volume.name.is_empty() && !names.insert(volume.name.clone()) {
                self.push(
                    &format!("{path}.name"),
                    FieldErrorKind::Duplicate,
                    quote(&volume.name),
                    "",
                );
            }
            // The source is whichever field besides the name is set.
            let sources: Vec<String> = serde_json::to_value(volume)
                .ok()
                .and_then(|v| {
                    v.as_object()
                        .map(|o| o.keys().filter(|k| *k != "name").cloned().collect())
                })
                .unwrap_or_default();
            match sources.as_slice() {
                // No source is an emptyDir once defaulted.
                [] => {}
                [one] if VOLUME_SOURCES.contains(&one.as_str()) => {}
                [one] => self.push(
                    &path,
                    FieldErrorKind::NotSupported,
                    quote(one),
                    &supported(VOLUME_SOURCES),
                ),
                _ => self.push(
                    &path,
                    FieldErrorKind::Forbidden,
                    None,
                    "may not specify more than 1 volume type",
                ),
            }
            if let Some(source) = &volume.downward_api {
                self.downward_volume(&format!("{path}.downwardAPI"), source);
            }
            if let Some(host) = &volume.host_path {
                self.host_path(&format!("{path}.hostPath"), host);
            }
            if let Some(empty_dir) = &volume.empty_dir {
                self.one_of(
                    &format!("{path}.emptyDir.medium"),
                    empty_dir.medium.as_deref(),
                    &["", "Memory"],
                );
                if let Some(size) = &empty_dir.size_limit {
                    self.quantity(&format!("{path}.emptyDir.sizeLimit"), size);
                }
            }
        }
        names
    }

    /// A hostPath: a path without `..` steps and a known type.
    fn host_path(&mut self, path: &str, host: &HostPathVolumeSource) {
        let field = format!("{path}.path");
        if host.path.is_empty() {
            self.push(&field, FieldErrorKind::Required, None, "");
        } else if host.path.split('/').any(|part| part == "..") {
            self.push(
                &field,
                FieldErrorKind::Invalid,
                quote(&host.path),
                "must not contain '..'",
            );
        }
        self.one_of(
            &format!("{path}.type"),
            host.type_.as_deref(),
            crate::hostpath::TYPES,
        );
    }

    fn container(
        &mut self,
        path: &str,
        c: &Container,
        init: bool,
        volumes: &HashSet<String>,
        names: &mut HashSet<String>,
    ) {
        self.label(&format!("{path}.name"), &c.name);
        if !c.name.is_empty() && !names.insert(c.name.clone()) {
            self.push(
                &format!("{path}.name"),
                FieldErrorKind::Duplicate,
                quote(&c.name),
                "",
            );
        }
        match c.image.as_deref().unwrap_or("") {
            "" => self.push(&format!("{path}.image"), FieldErrorKind::Required, None, ""),
            image if image.trim() != image => self.push(
                &format!("{path}.image"),
                FieldErrorKind::Invalid,
                quote(image),
                "must not have leading or trailing whitespace",
            ),
            _ => {}
        }
        self.one_of(
            &format!("{path}.imagePullPolicy"),
            c.image_pull_policy.as_deref(),
            &["Always", "IfNotPresent", "Never"],
        );
        self.one_of(
            &format!("{path}.terminationMessagePolicy"),
            c.termination_message_policy.as_deref(),
            &["File", "FallbackToLogsOnError"],
        );
        if let Some(policy) = &c.restart_policy {
            if !init {
                self.push(
                    &format!("{path}.restartPolicy"),
                    FieldErrorKind::Forbidden,
                    None,
                    "may not be set for non-init containers",
                );
            } else if policy != "Always" {
                // An init container with restartPolicy Always is a sidecar;
                // no other value is meaningful.
                self.push(
                    &format!("{path}.restartPolicy"),
                    FieldErrorKind::NotSupported,
                    quote(policy),
                    &supported(&["Always"]),
                );
            }
        }
        self.ports(path, c);
        for (i, env) in c.env.iter().flatten().enumerate() {
            let env_path = format!("{path}.env[{i}]");
            // Names may repeat (the last one wins), as in Kubernetes.
            if env.name.is_empty() {
                self.push(
                    &format!("{env_path}.name"),
                    FieldErrorKind::Required,
                    None,
                    "",
                );
            } else if !env
                .name
                .bytes()
                .all(|b| (b' '..=b'~').contains(&b) && b != b'=')
            {
                self.push(
                    &format!("{env_path}.name"),
                    FieldErrorKind::Invalid,
                    quote(&env.name),
                    "must consist of printable ASCII characters other than '='",
                );
            }
            if env.value_from.is_some() && env.value.as_ref().is_some_and(|v| !v.is_empty()) {
                self.push(
                    &format!("{env_path}.valueFrom"),
                    FieldErrorKind::Invalid,
                    Some("\"\"".to_string()),
                    "may not be specified when `value` is not empty",
                );
            }
            if let Some(from) = &env.value_from {
                self.env_source(&format!("{env_path}.valueFrom"), from);
            }
        }
        self.mounts(path, c, volumes);
        self.container_security(path, c);
        if let Some(resources) = &c.resources {
            self.resources(
                &format!("{path}.resources"),
                resources,
                CONTAINER_RESOURCES,
                CONTAINER_RESOURCES,
            );
        }
    }

    fn ports(&mut self, path: &str, c: &Container) {
        let mut names = HashSet::new();
        for (i, port) in c.ports.iter().flatten().enumerate() {
            let port_path = format!("{path}.ports[{i}]");
            match port.container_port {
                0 => self.push(
                    &format!("{port_path}.containerPort"),
                    FieldErrorKind::Required,
                    None,
                    "",
                ),
                1..=65535 => {}
                n => self.push(
                    &format!("{port_path}.containerPort"),
                    FieldErrorKind::Invalid,
                    Some(n.to_string()),
                    "must be between 1 and 65535, inclusive",
                ),
            }
            if let Some(host) = port.host_port.filter(|p| !(0..=65535).contains(p)) {
                self.push(
                    &format!("{port_path}.hostPort"),
                    FieldErrorKind::Invalid,
                    Some(host.to_string()),
                    "must be between 1 and 65535, inclusive",
                );
            }
            self.one_of(
                &format!("{port_path}.protocol"),
                port.protocol.as_deref(),
                &["SCTP", "TCP", "UDP"],
            );
            if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
                if !is_port_name(name) {
                    self.push(
                        &format!("{port_path}.name"),
                        FieldErrorKind::Invalid,
                        quote(name),
                        "must be at most 15 lowercase letters, digits or '-', with at least one letter, no '--' and no '-' at either end",
                    );
                } else if !names.insert(name) {
                    self.push(
                        &format!("{port_path}.name"),
                        FieldErrorKind::Duplicate,
                        quote(name),
                        "",
                    );
                }
            }
        }
    }

    fn mounts(&mut self, path: &str, c: &Container, volumes: &HashSet<String>) {
        let privileged = c
            .security_context
            .as_ref()
            .and_then(|sc| sc.privileged)
            .unwrap_or(false);
        let mut targets = HashSet::new();
        for (i, mount) in c.volume_mounts.iter().flatten().enumerate() {
            let mount_path = format!("{path}.volumeMounts[{i}]");
            if mount.name.is_empty() {
                self.push(
                    &format!("{mount_path}.name"),
                    FieldErrorKind::Required,
                    None,
                    "",
                );
            } else if !volumes.contains(&mount.name) {
                self.push(
                    &format!("{mount_path}.name"),
                    FieldErrorKind::NotFound,
                    quote(&mount.name),
                    "",
                );
            }
            if mount.mount_path.is_empty() {
                self.push(
                    &format!("{mount_path}.mountPath"),
                    FieldErrorKind::Required,
                    None,
                    "",
                );
            } else if !mount.mount_path.starts_with('/') {
                // podlab mounts inside the container's root; a relative
                // target has no meaning there (kubelet refuses it too).
                self.push(
                    &format!("{mount_path}.mountPath"),
                    FieldErrorKind::Invalid,
                    quote(&mount.mount_path),
                    "must be an absolute path",
                );
            } else if !targets.insert(mount.mount_path.as_str()) {
                self.push(
                    &format!("{mount_path}.mountPath"),
                    FieldErrorKind::Invalid,
                    quote(&mount.mount_path),
                    "must be unique",
                );
            }
            self.propagation(&mount_path, mount, privileged);
            // A subPath must stay inside its volume.
            if let Some(sub) = mount.sub_path.as_deref().filter(|s| !s.is_empty()) {
                let sub_path = format!("{mount_path}.subPath");
                if sub.starts_with('/') {
                    self.push(
                        &sub_path,
                        FieldErrorKind::Invalid,
                        quote(sub),
                        "must be a relative path",
                    );
                } else if sub.split('/').any(|part| part == "..") {
                    self.push(
                        &sub_path,
                        FieldErrorKind::Invalid,
                        quote(sub),
                        "must not contain '..'",
                    );
                }
            }
        }
    }

    /// mountPropagation and recursiveReadOnly as the API server checks
    /// them: Bidirectional only for a privileged container, and
    /// a recursive read-only mount only of a readOnly mount that
    /// propagates nothing.
    fn propagation(
        &mut self,
        mount_path: &str,
        mount: &k8s_openapi::api::core::v1::VolumeMount,
        privileged: bool,
    ) {
        let field = format!("{mount_path}.mountPropagation");
        let propagation = mount.mount_propagation.as_deref().filter(|p| !p.is_empty());
        self.one_of(
            &field,
            propagation,
            &["None", "HostToContainer", "Bidirectional"],
        );
        if propagation == Some("Bidirectional") && !privileged {
            self.push(
                &field,
                FieldErrorKind::Forbidden,
                None,
                "Bidirectional mount propagation is available only to privileged containers",
            );
        }
        let field = format!("{mount_path}.recursiveReadOnly");
        let rro = mount
            .recursive_read_only
            .as_deref()
            .filter(|p| !p.is_empty());
        self.one_of(&field, rro, &["Disabled", "IfPossible", "Enabled"]);
        if matches!(rro, Some("IfPossible" | "Enabled")) {
            if mount.read_only != Some(true) {
                self.push(
                    &field,
                    FieldErrorKind::Forbidden,
                    None,
                    "may only be specified when readOnly is true",
                );
            }
            if propagation.is_some_and(|p| p != "None") {
                self.push(
                    &field,
                    FieldErrorKind::Forbidden,
                    None,
                    "may only be specified when mountPropagation is None or not specified",
                );
            }
        }
    }

    fn resources(
        &mut self,
        path: &str,
        r: &ResourceRequirements,
        limits_ok: &[&str],
        requests_ok: &[&str],
    ) {
        let empty = BTreeMap::new();
        let limits = self.resource_list(
            &format!("{path}.limits"),
            r.limits.as_ref().unwrap_or(&empty),
            limits_ok,
        );
        let requests = self.resource_list(
            &format!("{path}.requests"),
            r.requests.as_ref().unwrap_or(&empty),
            requests_ok,
        );
        for (name, (text, request)) in &requests {
            if let Some((limit_text, limit)) = limits.get(name) {
                if request > limit {
                    self.push(
                        &format!("{path}.requests.{name}"),
                        FieldErrorKind::Invalid,
                        quote(text),
                        &format!("must be less than or equal to {name} limit of {limit_text}"),
                    );
                }
            }
        }
    }

    /// Checks one `limits` or `requests` map; returns the valid entries.
    fn resource_list<'a>(
        &mut self,
        path: &str,
        list: &'a BTreeMap<String, Quantity>,
        allowed: &[&str],
    ) -> BTreeMap<&'a str, (&'a str, quantity::Quantity)> {
        let mut valid = BTreeMap::new();
        for (name, q) in list {
            let entry = format!("{path}.{name}");
            if !allowed.contains(&name.as_str()) {
                self.push(
                    &entry,
                    FieldErrorKind::NotSupported,
                    quote(name),
                    &supported(allowed),
                );
                continue;
            }
            let Some(parsed) = self.quantity(&entry, q) else {
                continue;
            };
            if name == "pids" {
                if !parsed.is_whole() {
                    self.push(
                        &entry,
                        FieldErrorKind::Invalid,
                        quote(&q.0),
                        "must be a whole number",
                    );
                    continue;
                }
                if parsed.value() < 1 {
                    self.push(
                        &entry,
                        FieldErrorKind::Invalid,
                        quote(&q.0),
                        "must be greater than or equal to 1",
                    );
                    continue;
                }
            }
            valid.insert(name.as_str(), (q.0.as_str(), parsed));
        }
        valid
    }

    /// A non-negative quantity; `None` (with the problem recorded) otherwise.
    fn quantity(&mut self, path: &str, q: &Quantity) -> Option<quantity::Quantity> {
        match quantity::parse(&q.0) {
            Err(e) => {
                self.push(
                    path,
                    FieldErrorKind::Invalid,
                    quote(&q.0),
                    &format!(
                        "must be a quantity such as 500m, 64Mi or 2; this one {}",
                        e.reason()
                    ),
                );
                None
            }
            Ok(parsed) if parsed.is_negative() => {
                self.push(
                    path,
                    FieldErrorKind::Invalid,
                    quote(&q.0),
                    "must be greater than or equal to 0",
                );
                None
            }
            Ok(parsed) => Some(parsed),
        }
    }
}
