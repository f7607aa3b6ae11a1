//! The pod network through real CNI plugins (issue 4): pod IPs, pod-to-pod
//! without NAT, node-to-pod, no IP handed out twice, nothing leaked. Traffic
//! goes only to pod addresses in network namespaces podlab created.

mod common;

use std::io::Read;
use std::time::Duration;

use common::*;

fn pod_ip(p: &Podlab, name: &str) -> String {
    p.pod_json(name)["status"]["podIP"]
        .as_str()
        .expect("status.podIP")
        .to_string()
}

fn listener(name: &str, proto: &str, port: u16, token: &str) -> String {
    let port = port.to_string();
    manifest(
        name,
        &[(
            "server",
            PROBE,
            &[
                "probe",
                "listen",
                "--proto",
                proto,
                "--addr",
                "0.0.0.0",
                "--port",
                &port,
                "--token",
                token,
                "--count",
                "100",
                "--timeout-ms",
                "600000",
            ],
            None,
        )],
    )
}

/// Veth interfaces and IPAM leases on the host that name this pod's uid.
fn network_leftovers(uid: &str, ip: &str) -> Vec<String> {
    let mut left = Vec::new();
    for entry in std::fs::read_dir("/run/podlab-cni/ipam")
        .into_iter()
        .flatten()
        .flatten()
    {
        let lease = entry.path().join(ip);
        if lease.exists() {
            left.push(format!("lease {}", lease.display()));
        }
    }
    let cache = std::fs::read_dir("/run/podlab-cni/cache")
        .into_iter()
        .flatten()
        .flatten();
    for e in cache {
        if e.file_name().to_string_lossy().contains(uid) {
            left.push(format!("cni cache {}", e.path().display()));
        }
    }
    left
}

#[test]
fn pods_reach_each_other_by_pod_ip_without_nat_and_the_node_reaches_them() {
    require_root!();
    let p = Podlab::new();
    let a = unique("net-a");
    let b = unique("net-b");
    let _ga = p.pod(
        &a,
        &manifest(&a, &[("client", PROBE, &["sleep", "3600"], None)]),
    );
    let _gb = p.pod(&b, &listener(&b, "tcp", 7171, "tok-b"));
    let (ip_a, ip_b) = (pod_ip(&p, &a), pod_ip(&p, &b));
    assert_ne!(ip_a, ip_b);
    assert!(
        ip_a.starts_with("10.89.") && ip_b.starts_with("10.89."),
        "{ip_a} {ip_b}"
    );

    // The address a pod sees for itself is the one others see.
    let ifaces = p.probe(&a, "client", &["ifaces"]).to_string();
    assert!(
        ifaces.contains(&format!("\"{ip_a}/")),
        "{ip_a} not on {a}'s interfaces: {ifaces}"
    );

    let got = eventually(Duration::from_secs(20), || {
        let r = p.probe(
            &a,
            "client",
            &[
                "connect", "--proto", "tcp", "--addr", &ip_b, "--port", "7171",
            ],
        );
        (r["ok"] == true).then_some(r)
    })
    .expect("pod A never reached pod B by its pod IP");
    assert_eq!(got["data"], "tok-b");
    // No NAT: the connection came from A's pod IP.
    let local = got["local"].as_str().unwrap_or("");
    assert!(
        local.starts_with(&format!("{ip_a}:")),
        "A connected from {local}, not {ip_a}"
    );

    // The node reaches the pod: the bridge is the pods' gateway.
    let mut s = std::net::TcpStream::connect_timeout(
        &format!("{ip_b}:7171").parse().unwrap(),
        Duration::from_secs(5),
    )
    .expect("the node cannot reach the pod IP");
    let mut token = String::new();
    s.read_to_string(&mut token).unwrap();
    assert_eq!(token, "tok-b");

    let hosts = p.exec_ok(&b, "server", &["cat", "/etc/hosts"]);
    assert!(hosts.contains(&format!("{ip_b}\t{b}")), "{hosts}");
}

#[test]
fn udp_between_pods_keeps_the_source_address() {
    require_root!();
    let p = Podlab::new();
    let a = unique("udp-a");
    let b = unique("udp-b");
    let _ga = p.pod(
        &a,
        &manifest(&a, &[("client", PROBE, &["sleep", "3600"], None)]),
    );
    let _gb = p.pod(&b, &listener(&b, "udp", 7272, "udp-tok"));
    let (ip_a, ip_b) = (pod_ip(&p, &a), pod_ip(&p, &b));
    let got = eventually(Duration::from_secs(20), || {
        let r = p.probe(
            &a,
            "client",
            &[
                "connect",
                "--proto",
                "udp",
                "--addr",
                &ip_b,
                "--port",
                "7272",
                "--timeout-ms",
                "1000",
            ],
        );
        (r["ok"] == true).then_some(r)
    })
    .expect("no UDP reply from pod B");
    assert_eq!(got["data"], "udp-tok");
    assert!(
        got["local"]
            .as_str()
            .unwrap_or("")
            .starts_with(&format!("{ip_a}:")),
        "{got}"
    );
}

#[test]
fn twenty_pods_get_twenty_ips_and_leave_nothing() {
    require_root!();
    let p = Podlab::new();
    let names: Vec<String> = (0..20).map(|i| format!("{}-{i}", unique("ip"))).collect();
    std::thread::scope(|s| {
        for n in &names {
            let p = &p;
            s.spawn(move || {
                let out = p.apply(&manifest(n, &[("one", BUSYBOX, &["sleep", "3600"], None)]));
                assert!(out.status.success(), "{n}: {out:?}");
            });
        }
    });
    let mut seen: Vec<(String, String, std::path::PathBuf)> = names
        .iter()
        .map(|n| (pod_ip(&p, n), p.uid(n), p.pod_dir(n)))
        .collect();
    let mut ips: Vec<&str> = seen.iter().map(|s| s.0.as_str()).collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 20, "an IP was handed out twice");
    std::thread::scope(|s| {
        for n in &names {
            let p = &p;
            s.spawn(move || {
                assert!(p
                    .run(&["delete", "pod", n, "--grace-period", "0"])
                    .status
                    .success())
            });
        }
    });
    for (ip, uid, dir) in seen.drain(..) {
        assert_eq!(leftovers(&uid, &dir), Vec::<String>::new());
        assert_eq!(network_leftovers(&uid, &ip), Vec::<String>::new());
    }
    let veths = std::process::Command::new("ip")
        .args(["-o", "link", "show", "master", "podlab0"])
        .output()
        .unwrap();
    let attached = String::from_utf8_lossy(&veths.stdout).lines().count();
    // Other tests' pods may be on the bridge right now; ours must be gone.
    assert!(
        attached < 20,
        "veths left on podlab0:\n{}",
        String::from_utf8_lossy(&veths.stdout)
    );
}

#[test]
fn host_network_pods_use_the_node_network() {
    require_root!();
    let p = Podlab::new();
    let a = unique("hostnet");
    let m = manifest(&a, &[("one", PROBE, &["sleep", "3600"], None)])
        .replace("spec:\n", "spec:\n  hostNetwork: true\n");
    let _g = p.pod(&a, &m);
    let ns = p.probe(&a, "one", &["ns"]);
    let host_net = std::fs::read_link("/proc/self/ns/net")
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert_eq!(ns["net"], host_net.as_str());
    let pod = p.pod_json(&a);
    assert_eq!(pod["status"]["podIP"], pod["status"]["hostIP"]);
    let host = nix::unistd::gethostname().unwrap().into_string().unwrap();
    assert_eq!(p.exec_ok(&a, "one", &["hostname"]).trim(), host);
}

/// The node's NAT rules that name this pod's uid (CNI portmap tags them).
fn nat_rules_of(uid: &str) -> Vec<String> {
    let out = std::process::Command::new("iptables")
        .args(["-w", "-t", "nat", "-S"])
        .output()
        .expect("iptables");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(uid))
        .map(String::from)
        .collect()
}

#[test]
fn host_port_reaches_the_pod_from_localhost_and_its_rules_go_with_it() {
    require_root!();
    let p = Podlab::new();
    let a = unique("hostport");
    // Apart from other runs on this machine: the port follows our pid.
    let host_port = 40_000 + (std::process::id() % 10_000) as u16;
    let m = listener(&a, "tcp", 7272, "tok-hp").replace(
        "    command:",
        &format!("    ports: [{{containerPort: 7272, hostPort: {host_port}}}]\n    command:"),
    );
    let uid;
    {
        let _g = p.pod(&a, &m);
        uid = p.uid(&a);
        assert!(!nat_rules_of(&uid).is_empty(), "no portmap rule for {uid}");
        let token = eventually(Duration::from_secs(20), || {
            let addr = format!("127.0.0.1:{host_port}").parse().ok()?;
            let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
            let mut t = String::new();
            s.read_to_string(&mut t).ok()?;
            (!t.is_empty()).then_some(t)
        })
        .expect("127.0.0.1:hostPort never reached the pod");
        assert_eq!(token, "tok-hp");
    }
    assert_eq!(nat_rules_of(&uid), Vec::<String>::new());
}
