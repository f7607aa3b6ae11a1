//! The sysctls the kubelet allows a pod without `--allowed-unsafe-sysctls`:
//! namespaced, and isolated between pods (the kubelet's safe set as of
//! Kubernetes 1.32). The runtime's admission and the CRI adapter's kubelet
//! stand-in both ask here.

pub const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
];

/// Whether a sysctl, written `a.b.c` or `a/b/c`, is on the safe list.
pub fn is_safe(name: &str) -> bool {
    SAFE_SYSCTLS.contains(&name.replace('/', ".").as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_of_a_safe_sysctl_are_safe_and_others_are_not() {
        assert!(is_safe("net.ipv4.ip_local_port_range"));
        assert!(is_safe("net/ipv4/ip_local_port_range"));
        assert!(!is_safe("kernel.msgmax"));
        assert!(!is_safe("net.core.somaxconn"));
    }
}
