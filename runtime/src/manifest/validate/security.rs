//! The pod's and the containers' securityContext. A field that takes power
//! away and that podlab does not implement (AppArmor, SELinux) is refused
//! here: running the pod without it would give it more than it asked for.

use k8s_openapi::api::core::v1::{
    AppArmorProfile, Container, PodSpec, SELinuxOptions, SeccompProfile,
};

use super::{quote, supported, FieldErrorKind, Validator};

const NOT_IMPLEMENTED: &str =
    "podlab does not implement this, and a pod that asks for less power must not run with more";

/// Sysctls that belong to the pod's own network or IPC namespace, the
/// only ones a pod may set (Kubernetes' namespaced sysctls).
pub fn is_namespaced_sysctl(name: &str) -> bool {
    let name = name.replace('/', ".");
    ["kernel.shm", "kernel.msg", "fs.mqueue.", "net."]
        .iter()
        .any(|p| name.starts_with(p))
        || name == "kernel.sem"
}

pub use podlab_kube::sysctl::SAFE_SYSCTLS;

/// Whether a sysctl (`a.b.c` or `a/b/c`) is on the kubelet's safe list.
pub fn is_safe_sysctl(name: &str) -> bool {
    podlab_kube::sysctl::is_safe(name)
}

/// `a.b_c.d-e` or `a/b/c`: lowercase segments of letters, digits, `_` and `-`.
fn is_sysctl_name(name: &str) -> bool {
    let sep = if name.contains('/') { '/' } else { '.' };
    name.len() <= 253
        && name.split(sep).all(|seg| {
            !seg.is_empty()
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
                && seg.as_bytes()[0].is_ascii_alphanumeric()
                && seg.as_bytes()[seg.len() - 1].is_ascii_alphanumeric()
        })
}

impl Validator {
    fn id(&mut self, path: &str, value: Option<i64>) {
        if let Some(v) = value.filter(|v| !(0..=2_147_483_647).contains(v)) {
            self.push(
                path,
                FieldErrorKind::Invalid,
                Some(v.to_string()),
                "must be between 0 and 2147483647, inclusive",
            );
        }
    }

    fn seccomp(&mut self, path: &str, sp: Option<&SeccompProfile>) {
        let Some(sp) = sp else { return };
        let types = ["RuntimeDefault", "Unconfined", "Localhost"];
        if !types.contains(&sp.type_.as_str()) {
            self.push(
                &format!("{path}.type"),
                FieldErrorKind::NotSupported,
                quote(&sp.type_),
                &supported(&types),
            );
            return;
        }
        let profile = sp.localhost_profile.as_deref().filter(|p| !p.is_empty());
        match (sp.type_.as_str(), profile) {
            ("Localhost", None) => self.push(
                &format!("{path}.localhostProfile"),
                FieldErrorKind::Required,
                None,
                "must be set when seccomp type is Localhost",
            ),
            ("Localhost", Some(p)) if p.starts_with('/') || p.split('/').any(|c| c == "..") => self
                .push(
                    &format!("{path}.localhostProfile"),
                    FieldErrorKind::Invalid,
                    quote(p),
                    "must be a relative path without \"..\"",
                ),
            ("Localhost", Some(_)) | (_, None) => {}
            (_, Some(_)) => self.push(
                &format!("{path}.localhostProfile"),
                FieldErrorKind::Invalid,
                quote(profile.unwrap_or_default()),
                "can only be set when seccomp type is Localhost",
            ),
        }
    }

    fn app_armor(&mut self, path: &str, p: Option<&AppArmorProfile>) {
        if let Some(p) = p.filter(|p| p.type_ != "Unconfined") {
            self.push(
                &format!("{path}.type"),
                FieldErrorKind::Forbidden,
                quote(&p.type_),
                &format!("AppArmor: {NOT_IMPLEMENTED}"),
            );
        }
    }

    fn se_linux(&mut self, path: &str, o: Option<&SELinuxOptions>) {
        if o.is_some_and(|o| o != &SELinuxOptions::default()) {
            self.push(
                path,
                FieldErrorKind::Forbidden,
                None,
                &format!("SELinux: {NOT_IMPLEMENTED}"),
            );
        }
    }

    pub(super) fn pod_security(&mut self, spec: &PodSpec) {
        let Some(sc) = &spec.security_context else {
            return;
        };
        let path = "spec.securityContext";
        self.id(&format!("{path}.runAsUser"), sc.run_as_user);
        self.id(&format!("{path}.runAsGroup"), sc.run_as_group);
        self.id(&format!("{path}.fsGroup"), sc.fs_group);
        for (i, g) in sc.supplemental_groups.iter().flatten().enumerate() {
            self.id(&format!("{path}.supplementalGroups[{i}]"), Some(*g));
        }
        self.one_of(
            &format!("{path}.fsGroupChangePolicy"),
            sc.fs_group_change_policy.as_deref(),
            &["OnRootMismatch", "Always"],
        );
        self.one_of(
            &format!("{path}.supplementalGroupsPolicy"),
            sc.supplemental_groups_policy.as_deref(),
            &["Merge", "Strict"],
        );
        self.seccomp(
            &format!("{path}.seccompProfile"),
            sc.seccomp_profile.as_ref(),
        );
        self.app_armor(
            &format!("{path}.appArmorProfile"),
            sc.app_armor_profile.as_ref(),
        );
        self.se_linux(
            &format!("{path}.seLinuxOptions"),
            sc.se_linux_options.as_ref(),
        );
        let host_network = spec.host_network.unwrap_or(false);
        let mut seen = std::collections::HashSet::new();
        for (i, s) in sc.sysctls.iter().flatten().enumerate() {
            let name_path = format!("{path}.sysctls[{i}].name");
            let normal = s.name.replace('/', ".");
            if !is_sysctl_name(&s.name) {
                self.push(
                    &name_path,
                    FieldErrorKind::Invalid,
                    quote(&s.name),
                    "must be a sysctl name: lowercase segments of letters, digits, '_' or '-' separated by '.' or '/'",
                );
            } else if !is_namespaced_sysctl(&s.name) {
                self.push(
                    &name_path,
                    FieldErrorKind::Forbidden,
                    quote(&s.name),
                    "not a namespaced sysctl: a pod may set only kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.* and net.*, which stay inside its own namespaces",
                );
            } else if host_network && normal.starts_with("net.") {
                self.push(
                    &name_path,
                    FieldErrorKind::Forbidden,
                    quote(&s.name),
                    "a pod with hostNetwork shares the node's network namespace: its net.* sysctls would change the node's",
                );
            } else if !seen.insert(normal) {
                self.push(&name_path, FieldErrorKind::Duplicate, quote(&s.name), "");
            }
            if s.value.contains('\n') || s.value.contains('\0') {
                self.push(
                    &format!("{path}.sysctls[{i}].value"),
                    FieldErrorKind::Invalid,
                    quote(&s.value),
                    "must be one line",
                );
            }
        }
    }

    pub(super) fn container_security(&mut self, container_path: &str, c: &Container) {
        let Some(sc) = &c.security_context else {
            return;
        };
        let path = format!("{container_path}.securityContext");
        self.id(&format!("{path}.runAsUser"), sc.run_as_user);
        self.id(&format!("{path}.runAsGroup"), sc.run_as_group);
        self.seccomp(
            &format!("{path}.seccompProfile"),
            sc.seccomp_profile.as_ref(),
        );
        self.app_armor(
            &format!("{path}.appArmorProfile"),
            sc.app_armor_profile.as_ref(),
        );
        self.se_linux(
            &format!("{path}.seLinuxOptions"),
            sc.se_linux_options.as_ref(),
        );
        if let Some(pm) = sc.proc_mount.as_deref().filter(|p| *p != "Default") {
            self.push(
                &format!("{path}.procMount"),
                FieldErrorKind::NotSupported,
                quote(pm),
                &supported(&["Default"]),
            );
        }
        if sc.privileged == Some(true) && sc.allow_privilege_escalation == Some(false) {
            self.push(
                &path,
                FieldErrorKind::Invalid,
                None,
                "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
            );
        }
    }
}
