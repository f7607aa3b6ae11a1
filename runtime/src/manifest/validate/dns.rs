//! The fields that shape a pod's /etc/hosts and /etc/resolv.conf
//! (hostAliases, dnsPolicy with dnsConfig) and the host namespaces it may
//! share (hostPID, hostIPC), with the limits the API server enforces.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::PodSpec;

use super::{is_subdomain, quote, FieldErrorKind, Validator, SUBDOMAIN_RULE};
use crate::etc_files::{MAX_NAMESERVERS, MAX_SEARCHES};

/// The API server's bound on the characters of all search domains together.
const MAX_SEARCH_CHARS: usize = 2048;

fn is_ip(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok()
}

impl Validator {
    pub(super) fn host_aliases(&mut self, spec: &PodSpec) {
        for (i, a) in spec.host_aliases.iter().flatten().enumerate() {
            let path = format!("spec.hostAliases[{i}]");
            if a.ip.is_empty() {
                self.push(&format!("{path}.ip"), FieldErrorKind::Required, None, "");
            } else if !is_ip(&a.ip) {
                self.push(
                    &format!("{path}.ip"),
                    FieldErrorKind::Invalid,
                    quote(&a.ip),
                    "must be a valid IP address (e.g. 10.9.8.7 or 2001:db8::ffff)",
                );
            }
            for (j, h) in a.hostnames.iter().flatten().enumerate() {
                if !is_subdomain(h) {
                    self.push(
                        &format!("{path}.hostnames[{j}]"),
                        FieldErrorKind::Invalid,
                        quote(h),
                        SUBDOMAIN_RULE,
                    );
                }
            }
        }
    }

    pub(super) fn dns_config(&mut self, spec: &PodSpec) {
        let none = spec.dns_policy.as_deref() == Some("None");
        let Some(cfg) = &spec.dns_config else {
            if none {
                self.push(
                    "spec.dnsConfig",
                    FieldErrorKind::Required,
                    None,
                    "must provide `dnsConfig` when `dnsPolicy` is None",
                );
            }
            return;
        };
        let nameservers = cfg.nameservers.as_deref().unwrap_or_default();
        if none && nameservers.is_empty() {
            self.push(
                "spec.dnsConfig.nameservers",
                FieldErrorKind::Required,
                None,
                "must provide at least one DNS nameserver when `dnsPolicy` is None",
            );
        }
        if nameservers.len() > MAX_NAMESERVERS {
            self.push(
                "spec.dnsConfig.nameservers",
                FieldErrorKind::Invalid,
                Some(format!("{nameservers:?}")),
                &format!("must not have more than {MAX_NAMESERVERS} nameservers"),
            );
        }
        for (i, n) in nameservers.iter().enumerate() {
            if !is_ip(n) {
                self.push(
                    &format!("spec.dnsConfig.nameservers[{i}]"),
                    FieldErrorKind::Invalid,
                    quote(n),
                    "must be a valid IP address",
                );
            }
        }
        let searches = cfg.searches.as_deref().unwrap_or_default();
        if searches.len() > MAX_SEARCHES {
            self.push(
                "spec.dnsConfig.searches",
                FieldErrorKind::Invalid,
                Some(format!("{} domains", searches.len())),
                &format!("must not have more than {MAX_SEARCHES} search paths"),
            );
        }
        let chars =
            searches.iter().map(|s| s.len()).sum::<usize>() + searches.len().saturating_sub(1);
        if chars > MAX_SEARCH_CHARS {
            self.push(
                "spec.dnsConfig.searches",
                FieldErrorKind::Invalid,
                Some(format!("{chars} characters")),
                &format!("must not have more than {MAX_SEARCH_CHARS} characters (including spaces) in the search list"),
            );
        }
        for (i, s) in searches.iter().enumerate() {
            // A trailing dot marks a fully qualified name.
            if !is_subdomain(s.strip_suffix('.').unwrap_or(s)) {
                self.push(
                    &format!("spec.dnsConfig.searches[{i}]"),
                    FieldErrorKind::Invalid,
                    quote(s),
                    SUBDOMAIN_RULE,
                );
            }
        }
        for (i, o) in cfg.options.iter().flatten().enumerate() {
            if o.name.as_deref().unwrap_or("").is_empty() {
                self.push(
                    &format!("spec.dnsConfig.options[{i}].name"),
                    FieldErrorKind::Required,
                    None,
                    "",
                );
            }
        }
    }

    pub(super) fn host_namespaces(&mut self, spec: &PodSpec) {
        if spec.host_pid == Some(true) && spec.share_process_namespace == Some(true) {
            self.push(
                "spec.shareProcessNamespace",
                FieldErrorKind::Invalid,
                Some("true".into()),
                "ShareProcessNamespace and HostPID cannot both be enabled",
            );
        }
        if spec.host_ipc != Some(true) {
            return;
        }
        let sysctls = spec
            .security_context
            .as_ref()
            .and_then(|sc| sc.sysctls.as_ref());
        for (i, s) in sysctls.into_iter().flatten().enumerate() {
            let name = s.name.replace('/', ".");
            if ["kernel.shm", "kernel.msg", "fs.mqueue."]
                .iter()
                .any(|p| name.starts_with(p))
                || name == "kernel.sem"
            {
                self.push(
                    &format!("spec.securityContext.sysctls[{i}].name"),
                    FieldErrorKind::Forbidden,
                    quote(&s.name),
                    "a pod with hostIPC shares the node's IPC namespace: its IPC sysctls would change the node's",
                );
            }
        }
    }
}
