//! Real attachments with the host's CNI plugins (root only; otherwise each
//! test prints why it skipped). Everything created is named `podlab-…`,
//! uses its own bridge (never podlab0), subnet and lease directory, and is
//! removed by a Drop guard even when an assertion fails.
//!
//! The test process never enters a namespace itself: traffic inside a netns
//! comes from `ip netns exec … busybox nc`.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::*;

fn skip_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root (creates network namespaces and a bridge)".into());
    }
    let probe = Cni::new(
        Network::bridge("probe", "probe0", "10.0.0.0/24", Path::new("/tmp")).ok()?,
        PathBuf::from("/nonexistent"),
    );
    for plugin in ["bridge", "host-local", "loopback"] {
        if let Err(e) = probe.find_plugin(plugin) {
            return Some(e.to_string());
        }
    }
    for tool in ["ip", "busybox"] {
        let found = Command::new(tool)
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !found {
            return Some(format!("`{tool}` is not installed"));
        }
    }
    None
}

macro_rules! skip_unless_able {
    () => {
        if let Some(reason) = skip_reason() {
            podlab_testkit::skip::skipped(&reason);
            return;
        }
    };
}

/// A random number from std's randomly keyed hasher: names must not collide
/// with a concurrent run of the same tests.
fn random() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish()
}

fn run(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{args:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn in_netns(ns: &str, args: &[&str]) -> String {
    let mut all = vec!["ip", "netns", "exec", ns];
    all.extend_from_slice(args);
    run(&all).unwrap()
}

/// The bridge plugin turns on IPv4 forwarding for a gateway bridge; the
/// guard puts the host's setting back. The host tests hold this lock so two
/// of them never save and restore the sysctl crosswise.
static HOST: Mutex<()> = Mutex::new(());
const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

/// Owns everything a test creates on the host; Drop removes it in the
/// order that cannot fail halfway: processes, attachments, netns, bridge,
/// then the forwarding sysctl.
struct HostGuard {
    _serial: MutexGuard<'static, ()>,
    ip_forward: Option<String>,
    children: Vec<Child>,
    cni: Option<Cni>,
    attachments: Vec<(String, PathBuf)>,
    netns: Vec<String>,
    bridge: String,
}

impl HostGuard {
    fn new(bridge: String) -> HostGuard {
        HostGuard {
            _serial: HOST.lock().unwrap_or_else(|poisoned| poisoned.into_inner()),
            ip_forward: std::fs::read_to_string(IP_FORWARD).ok(),
            children: Vec::new(),
            cni: None,
            attachments: Vec::new(),
            netns: Vec::new(),
            bridge,
        }
    }

    fn add_netns(&mut self, name: &str) -> PathBuf {
        // Registered first, so a half-created netns is still removed.
        self.netns.push(name.to_string());
        run(&["ip", "netns", "add", name]).unwrap();
        Path::new("/run/netns").join(name)
    }

    fn spawn(&mut self, ns: &str, args: &[&str]) -> usize {
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.children.push(child);
        self.children.len() - 1
    }

    /// Closes the child's stdin, waits up to 5 s for it to exit (then kills
    /// it) and returns what it printed.
    fn finish(&mut self, idx: usize) -> String {
        let child = &mut self.children[idx];
        drop(child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
        let mut out = String::new();
        if let Some(mut stdout) = child.stdout.take() {
            let _ = stdout.read_to_string(&mut out);
        }
        out
    }
}

impl Drop for HostGuard {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(cni) = &self.cni {
            for (id, netns) in &self.attachments {
                let _ = cni.del(id, netns, "eth0");
            }
        }
        for ns in &self.netns {
            let _ = run(&["ip", "netns", "del", ns]);
        }
        let _ = run(&["ip", "link", "del", &self.bridge]);
        if let Some(saved) = &self.ip_forward {
            let _ = std::fs::write(IP_FORWARD, saved);
        }
    }
}

/// Waits until something in `ns` listens on TCP `port`.
fn wait_listening(ns: &str, port: u16) {
    let needle = format!(":{port} ");
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if in_netns(ns, &["busybox", "netstat", "-ltn"]).contains(&needle) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nothing listens on port {port} in {ns}");
}

/// busybox nc listens on `::`, so IPv4 peers show as `::ffff:a.b.c.d`.
fn unmapped(addr: &str) -> &str {
    addr.strip_prefix("::ffff:").unwrap_or(addr)
}

/// Waits until `ns` has an established TCP connection local `local` ↔
/// peer `peer_ip`; returns the netstat line (the proof of the peer address).
fn wait_established(ns: &str, local: &str, peer_ip: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = String::new();
    while Instant::now() < deadline {
        last = in_netns(ns, &["busybox", "netstat", "-tn"]);
        let found = last.lines().find(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols.len() >= 6
                && unmapped(cols[3]) == local
                && unmapped(cols[4]).rsplit_once(':').map(|(ip, _)| ip) == Some(peer_ip)
                && cols[5] == "ESTABLISHED"
        });
        if let Some(line) = found {
            return line.to_string();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no connection {local} <- {peer_ip} in {ns}:\n{last}");
}

fn in_subnet(ip: &str, net: Ipv4Addr, prefix: u32) -> bool {
    let ip: Ipv4Addr = ip.parse().unwrap();
    let mask = u32::MAX << (32 - prefix);
    u32::from(ip) & mask == u32::from(net) & mask
}

/// Host links whose veth peer sits in `ns`, or that hang off `bridge`.
fn host_links_of(ns: &[&str], bridge: &str) -> Vec<String> {
    run(&["ip", "-o", "link"])
        .unwrap()
        .lines()
        .filter(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let after = |key: &str| words.windows(2).find(|w| w[0] == key).map(|w| w[1]);
            after("link-netns").is_some_and(|peer| ns.contains(&peer))
                || after("master") == Some(bridge)
        })
        .map(str::to_string)
        .collect()
}

/// Lease files host-local keeps in `<ipam>/<network>/`: one file per IP.
fn leases(ipam: &Path, network: &str) -> Vec<String> {
    match std::fs::read_dir(ipam.join(network)) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn two_pods_reach_each_other_and_the_node_then_del_leaves_nothing() {
    skip_unless_able!();
    let r = random();
    let tag = format!("{:08x}", r as u32);
    let bridge = format!("podlab-t{}", &tag[..4]);
    let octet = 240 + (r >> 32) % 8;
    let subnet_net = Ipv4Addr::new(10, 89, octet as u8, 0);
    let subnet = format!("{subnet_net}/24");
    let name = format!("podlab-test-{tag}");
    let dirs = tempfile::tempdir().unwrap();
    let ipam = dirs.path().join("ipam");

    let mut guard = HostGuard::new(bridge.clone());
    let forward_before = guard.ip_forward.clone().unwrap_or_default();
    let ns_a = format!("podlab-test-cni-{tag}-a");
    let ns_b = format!("podlab-test-cni-{tag}-b");
    let path_a = guard.add_netns(&ns_a);
    let path_b = guard.add_netns(&ns_b);
    let cni = Cni::new(
        Network::bridge(&name, &bridge, &subnet, &ipam).unwrap(),
        dirs.path().join("cache"),
    );
    let (id_a, id_b) = (format!("{name}-a"), format!("{name}-b"));
    guard.cni = Some(cni.clone());
    guard.attachments = vec![
        (id_a.clone(), path_a.clone()),
        (id_b.clone(), path_b.clone()),
    ];

    let t = Instant::now();
    let a = cni.add(&id_a, &path_a, "eth0").unwrap();
    let add_first = t.elapsed();
    let t = Instant::now();
    let b = cni.add(&id_b, &path_b, "eth0").unwrap();
    let add_second = t.elapsed();

    // Distinct addresses from the subnet; the bridge is the gateway.
    let (ip_a, ip_b) = (a.ips[0].clone(), b.ips[0].clone());
    assert_ne!(ip_a, ip_b);
    for att in [&a, &b] {
        assert_eq!(att.ips.len(), 1, "{att:?}");
        assert!(
            in_subnet(&att.ips[0], subnet_net, 24),
            "{att:?} not in {subnet}"
        );
        assert_eq!(att.cidrs[0], format!("{}/24", att.ips[0]));
        assert!(att.mac.is_some(), "{att:?}");
    }
    let gateway = Ipv4Addr::from(u32::from(subnet_net) + 1).to_string();
    assert_eq!(a.gateway.as_deref(), Some(gateway.as_str()));
    // The address the pod sees on its own eth0 is the reported one, and lo is up.
    let addrs = in_netns(&ns_a, &["ip", "-o", "-4", "addr", "show"]);
    assert!(
        addrs.contains(&format!("eth0    inet {}", a.cidrs[0])),
        "{addrs}"
    );
    assert!(addrs.contains("lo    inet 127.0.0.1/8"), "{addrs}");
    assert_eq!(leases(&ipam, &name).len(), 2);

    // Node -> pod B: the host reaches B's IP over the bridge, and B sees
    // the bridge (gateway) address as the peer.
    let port_node = 20000 + (r % 20000) as u16;
    let listener = guard.spawn(
        &ns_b,
        &["busybox", "nc", "-l", "-p", &port_node.to_string()],
    );
    wait_listening(&ns_b, port_node);
    let target: SocketAddr = format!("{ip_b}:{port_node}").parse().unwrap();
    let mut stream = TcpStream::connect_timeout(&target, Duration::from_secs(3)).unwrap();
    stream.write_all(b"hello from the node\n").unwrap();
    wait_established(&ns_b, &format!("{ip_b}:{port_node}"), &gateway);
    drop(stream);
    assert_eq!(guard.finish(listener), "hello from the node\n");

    // Pod A -> pod B by pod IP, and B sees A's pod IP as the peer: no NAT.
    let port_pod = port_node + 1;
    let listener = guard.spawn(&ns_b, &["busybox", "nc", "-l", "-p", &port_pod.to_string()]);
    wait_listening(&ns_b, port_pod);
    let client = guard.spawn(&ns_a, &["busybox", "nc", &ip_b, &port_pod.to_string()]);
    if let Some(stdin) = guard.children[client].stdin.as_mut() {
        stdin.write_all(b"hello from pod a\n").unwrap();
    }
    let line = wait_established(&ns_b, &format!("{ip_b}:{port_pod}"), &ip_a);
    println!("pod B sees: {line}");
    guard.finish(client);
    assert_eq!(guard.finish(listener), "hello from pod a\n");

    // DEL both, then again: idempotent.
    let t = Instant::now();
    cni.del(&id_a, &path_a, "eth0").unwrap();
    let del_first = t.elapsed();
    cni.del(&id_b, &path_b, "eth0").unwrap();
    let t = Instant::now();
    cni.del(&id_a, &path_a, "eth0").unwrap();
    cni.del(&id_b, &path_b, "eth0").unwrap();
    let del_again = t.elapsed() / 2;
    println!(
        "timings: ADD {add_first:?} (creates the bridge), ADD {add_second:?}, DEL {del_first:?}, repeated DEL {del_again:?}"
    );

    assert_eq!(
        host_links_of(&[&ns_a, &ns_b], &bridge),
        Vec::<String>::new()
    );
    assert_eq!(leases(&ipam, &name), Vec::<String>::new());
    assert!(cni.cached().unwrap().is_empty());
    let links = in_netns(&ns_b, &["ip", "-o", "link"]);
    assert!(!links.contains("eth0"), "{links}");

    // The namespaces going away is fine for DEL too.
    run(&["ip", "netns", "del", &ns_a]).unwrap();
    cni.del(&id_a, &path_a, "eth0").unwrap();

    drop(guard);
    // Re-take the lock so the other host test cannot change it meanwhile.
    let _serial = HOST.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let forward = std::fs::read_to_string(IP_FORWARD).unwrap();
    assert_eq!(forward, forward_before, "ip_forward not restored");
    let left = run(&["ip", "-o", "link"]).unwrap();
    assert!(!left.contains(&bridge), "{left}");
    let netns = run(&["ip", "netns", "list"]).unwrap();
    assert!(!netns.contains(&tag), "{netns}");
}

#[test]
fn a_failing_add_leaves_nothing_half_attached() {
    skip_unless_able!();
    let r = random();
    let tag = format!("{:08x}", r as u32);
    let bridge = format!("podlab-t{}", &tag[..4]);
    // A /30 holds the gateway and exactly one pod: the second ADD fails in
    // IPAM, after bridge already created the veth pair.
    let subnet = format!("10.89.{}.0/30", 248 + (r >> 32) % 7);
    let name = format!("podlab-test-{tag}");
    let dirs = tempfile::tempdir().unwrap();
    let ipam = dirs.path().join("ipam");

    let mut guard = HostGuard::new(bridge.clone());
    let ns_1 = format!("podlab-test-cni-{tag}-1");
    let ns_2 = format!("podlab-test-cni-{tag}-2");
    let path_1 = guard.add_netns(&ns_1);
    let path_2 = guard.add_netns(&ns_2);
    let cni = Cni::new(
        Network::bridge(&name, &bridge, &subnet, &ipam).unwrap(),
        dirs.path().join("cache"),
    );
    let (id_1, id_2) = (format!("{name}-1"), format!("{name}-2"));
    guard.cni = Some(cni.clone());
    guard.attachments = vec![
        (id_1.clone(), path_1.clone()),
        (id_2.clone(), path_2.clone()),
    ];

    cni.add(&id_1, &path_1, "eth0").unwrap();
    let err = cni.add(&id_2, &path_2, "eth0").unwrap_err();
    println!("second ADD: {err}");
    assert!(
        matches!(&err, Error::Plugin { plugin, command: "ADD", msg, .. }
            if plugin == "bridge" && msg.contains("no IP addresses available")),
        "{err:?}"
    );
    // Nothing of the failed attachment remains: no veth, no eth0, no lease,
    // no cache record; the first pod is untouched.
    let links = host_links_of(&[&ns_2], &bridge);
    assert_eq!(links.len(), 1, "only pod 1's veth may remain: {links:?}");
    assert!(
        links[0].trim_end().ends_with(&format!("link-netns {ns_1}")),
        "{links:?}"
    );
    let inside = in_netns(&ns_2, &["ip", "-o", "link"]);
    assert!(!inside.contains("eth0"), "{inside}");
    assert_eq!(leases(&ipam, &name).len(), 1);
    let cached = cni.cached().unwrap();
    assert_eq!(cached.len(), 1);
    assert_eq!(cached[0].container_id, id_1);

    cni.del(&id_1, &path_1, "eth0").unwrap();
    assert_eq!(
        host_links_of(&[&ns_1, &ns_2], &bridge),
        Vec::<String>::new()
    );
    assert_eq!(leases(&ipam, &name), Vec::<String>::new());
}

#[test]
fn twenty_concurrent_adds_get_twenty_distinct_ips() {
    skip_unless_able!();
    let r = random();
    let tag = format!("{:08x}", r as u32);
    let bridge = format!("podlab-t{}", &tag[..4]);
    let subnet_net = Ipv4Addr::new(10, 89, 232 + ((r >> 32) % 8) as u8, 0);
    let name = format!("podlab-test-{tag}");
    let dirs = tempfile::tempdir().unwrap();
    let ipam = dirs.path().join("ipam");

    let mut guard = HostGuard::new(bridge.clone());
    let cni = Cni::new(
        Network::bridge(&name, &bridge, &format!("{subnet_net}/24"), &ipam).unwrap(),
        dirs.path().join("cache"),
    );
    guard.cni = Some(cni.clone());
    let mut pods = Vec::new();
    for i in 0..20 {
        let path = guard.add_netns(&format!("podlab-test-cni-{tag}-{i}"));
        let id = format!("{name}-{i}");
        guard.attachments.push((id.clone(), path.clone()));
        pods.push((id, path));
    }

    // Separate processes race on the bridge and the lease directory, as
    // 20 pods applied at once (or several podlab roots) would.
    let t = Instant::now();
    let results: Vec<Result<Attachment, Error>> = std::thread::scope(|s| {
        let handles: Vec<_> = pods
            .iter()
            .map(|(id, path)| s.spawn(|| cni.add(id, path, "eth0")))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let took = t.elapsed();
    let mut ips: Vec<String> = results
        .into_iter()
        .map(|r| r.unwrap().ips[0].clone())
        .collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 20, "{ips:?}");
    assert!(
        ips.iter().all(|ip| in_subnet(ip, subnet_net, 24)),
        "{ips:?}"
    );
    assert_eq!(leases(&ipam, &name).len(), 20);
    println!("20 concurrent ADDs took {took:?}");

    let t = Instant::now();
    std::thread::scope(|s| {
        for (id, path) in &pods {
            let cni = &cni;
            s.spawn(move || cni.del(id, path, "eth0").unwrap());
        }
    });
    println!("20 concurrent DELs took {:?}", t.elapsed());
    let names: Vec<String> = (0..20)
        .map(|i| format!("podlab-test-cni-{tag}-{i}"))
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    assert_eq!(host_links_of(&names, &bridge), Vec::<String>::new());
    assert_eq!(leases(&ipam, &name), Vec::<String>::new());
    assert!(cni.cached().unwrap().is_empty());
}
