//! The pod network through real CNI plugins (issue 4): podlab's pod
//! subnet, no IP handed out twice, hostNetwork pods, hostPort rules, and
//! nothing leaked (veths, leases, CNI cache, NAT rules). Traffic goes only
//! to loopback or pod addresses in network namespaces podlab created.
//! Pod-to-pod and node-to-pod traffic without NAT are the suite's NET-011
//! to NET-013, which CI runs on podlab.

mod common;

use std::io::Read;
use std::time::Duration;

use common::*;
use podlab_testkit::probe::listen_argv;

fn pod_ip(p: &Podlab, name: &str) -> String {
    p.pod_json(name)["status"]["podIP"]
        .as_str()
        .expect("status.podIP")
        .to_string()
}

/// A container that answers `token` on `port`.
fn server(proto: &str, port: u16, token: &str) -> ContainerSpec {
    let argv = listen_argv(proto, "0.0.0.0", port, token, 100, Duration::from_secs(600));
    ContainerSpec::of("server", PROBE).command(&argv)
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
                let out = p.apply(&sleepers(n, BUSYBOX, &["one"]));
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
    // podlab's default pod network.
    assert!(ips.iter().all(|ip| ip.starts_with("10.89.")), "{ips:?}");
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
        assert_eq!(leases_of(&uid), Vec::<String>::new(), "{ip}");
        assert_eq!(cni_cache_of(&uid), Vec::<String>::new(), "{ip}");
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
    let m = PodManifest::named(&a)
        .container(ContainerSpec::of("one", PROBE))
        .host_network()
        .to_yaml();
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
    podlab_testkit::host::nat_rules_naming(&podlab_testkit::host::nat_rules(), &[uid.to_string()])
}

#[test]
fn host_port_reaches_the_pod_from_localhost_and_its_rules_go_with_it() {
    require_root!();
    let p = Podlab::new();
    let a = unique("hostport");
    // Apart from other runs on this machine: the port follows our pid.
    let host_port = 40_000 + (std::process::id() % 10_000) as u16;
    let m = PodManifest::named(&a)
        .container(server("tcp", 7272, "tok-hp").field(
            "ports",
            serde_json::json!([{"containerPort": 7272, "hostPort": host_port}]),
        ))
        .to_yaml();
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
