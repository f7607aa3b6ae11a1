//! Unit tests: config generation and selection, result and error parsing,
//! plugin lookup, and the exec protocol against fake plugins (shell scripts
//! that record what they were given), so no root is needed.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use super::result::{attachment_from_result, plugin_error};
use super::*;

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

// ---- config generation ----------------------------------------------------

#[test]
fn default_network_writes_the_podlab_conflist_once() {
    let root = tmp();
    let ipam = root.path().join("ipam");
    let cni = Cni::default_network(root.path(), &ipam, "10.89.0.0/16").unwrap();

    let path = root.path().join("cni/net.d/podlab.conflist");
    let written: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    let expected = json!({
        "cniVersion": "1.0.0",
        "name": "podlab",
        "plugins": [{
            "type": "bridge",
            "bridge": "podlab0",
            "isGateway": true,
            "ipMasq": false,
            "hairpinMode": true,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": "10.89.0.0/16"}]],
                "dataDir": ipam.to_str().unwrap(),
            },
        }, {
            "type": "portmap",
            "capabilities": {"portMappings": true},
            "snat": true,
        }],
    });
    assert_eq!(written, expected);
    assert_eq!(cni.network.to_conflist(), expected);
    assert_eq!(cni.network.origin, path.display().to_string());
    assert_eq!(cni.cache_dir, root.path().join("cni/cache"));
    assert_eq!(
        cni.plugin_dirs,
        vec![PathBuf::from("/usr/lib/cni"), PathBuf::from("/opt/cni/bin")]
    );

    // A file from before hostPort (the bridge alone) gets portmap added.
    let mut old = expected.clone();
    old["plugins"].as_array_mut().unwrap().truncate(1);
    fs::write(&path, old.to_string()).unwrap();
    let upgraded = Cni::default_network(root.path(), &ipam, "10.89.0.0/16").unwrap();
    assert_eq!(upgraded.network.to_conflist(), expected);
    let rewritten: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    assert_eq!(rewritten, expected);

    // An existing file wins over the arguments: an operator may edit it.
    let mut edited = expected.clone();
    edited["plugins"][0]["bridge"] = json!("edited0");
    fs::write(&path, edited.to_string()).unwrap();
    let again = Cni::default_network(root.path(), &ipam, "10.99.0.0/16").unwrap();
    assert_eq!(again.network.to_conflist(), edited);
}

#[test]
fn bridge_network_follows_the_subnet_family_and_rejects_bad_subnets() {
    let dir = Path::new("/run/podlab-cni/ipam");
    let v6 = Network::bridge("podlab", "podlab0", "fd00:89::/64", dir).unwrap();
    assert!(
        v6.plugins[0]["ipam"].get("routes").is_none(),
        "no default route off the node"
    );
    assert_eq!(
        v6.plugins[0]["ipam"]["ranges"],
        json!([[{"subnet": "fd00:89::/64"}]])
    );

    for bad in [
        "10.89.0.0",
        "banana/16",
        "10.89.0.0/x",
        "10.89.0.0/31",
        "10.89.0.0/33",
    ] {
        let err = Network::bridge("podlab", "podlab0", bad, dir).unwrap_err();
        assert!(
            matches!(&err, Error::Config { reason, .. } if reason.contains(bad)),
            "{bad}: {err}"
        );
    }
    let err = Network::bridge("pod lab", "podlab0", "10.89.0.0/16", dir).unwrap_err();
    assert!(err.to_string().contains("network name"), "{err}");
    let err = Network::bridge("podlab", "a-bridge-name-too-long", "10.89.0.0/16", dir).unwrap_err();
    assert!(err.to_string().contains("bridge"), "{err}");
}

#[test]
fn conflist_validation_names_what_is_wrong() {
    let cases = [
        (
            r#"{"cniVersion":"1.0.0","plugins":[{"type":"bridge"}]}"#,
            "missing \"name\"",
        ),
        (r#"{"name":"n","plugins":[]}"#, "\"plugins\" is empty"),
        (r#"{"name":"n"}"#, "missing \"plugins\""),
        (r#"{"name":"n","plugins":{}}"#, "must be an array"),
        (
            r#"{"name":"n","plugins":[{"bridge":"x"}]}"#,
            "plugin 0: missing \"type\"",
        ),
        (
            r#"{"name":"n","plugins":[{"type":"../../bin/sh"}]}"#,
            "not a plain file name",
        ),
        (
            r#"{"name":"-n","plugins":[{"type":"bridge"}]}"#,
            "network name",
        ),
        (
            r#"{"name":"n","plugins":[{"type":"bridge"}],"cniVersion":1}"#,
            "cniVersion",
        ),
        ("[1,2]", "expected a JSON object"),
        ("{", "invalid JSON"),
    ];
    for (doc, want) in cases {
        let err = Network::from_conflist(doc.as_bytes(), "test.conflist").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("CNI config test.conflist: "), "{text}");
        assert!(text.contains(want), "{doc}: {text}");
    }
    // A missing cniVersion means 0.1.0, as the plugins' own decoder assumes.
    let n = Network::from_conflist(br#"{"name":"n","plugins":[{"type":"bridge"}]}"#, "x").unwrap();
    assert_eq!(n.cni_version, "0.1.0");
}

#[test]
fn runtime_config_goes_only_to_plugins_with_the_capability() {
    let conflist = json!({"cniVersion": "1.0.0", "name": "n", "plugins": [
        {"type": "bridge"},
        {"type": "portmap", "capabilities": {"portMappings": true}},
    ]});
    let n = Network::from_conflist(conflist.to_string().as_bytes(), "t").unwrap();
    let rc = json!({"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}], "bandwidth": {}});
    assert!(n
        .plugin_config_with(0, None, Some(&rc))
        .get("runtimeConfig")
        .is_none());
    assert_eq!(
        n.plugin_config_with(1, None, Some(&rc))["runtimeConfig"],
        json!({"portMappings": rc["portMappings"]})
    );
    assert!(n
        .plugin_config_with(1, None, None)
        .get("runtimeConfig")
        .is_none());
}

#[test]
fn plugin_config_injects_name_version_and_prev_result() {
    let n = Network::from_conflist(
        br#"{"cniVersion":"1.0.0","name":"net","plugins":[
            {"type":"a","name":"stale","cniVersion":"0.3.1","prevResult":{"old":1},"x":1},
            {"type":"b"}]}"#,
        "x",
    )
    .unwrap();
    assert_eq!(
        n.plugin_config(0, None),
        json!({"type":"a","name":"net","cniVersion":"1.0.0","x":1})
    );
    let prev = json!({"cniVersion":"1.0.0","ips":[]});
    assert_eq!(
        n.plugin_config(1, Some(&prev)),
        json!({"type":"b","name":"net","cniVersion":"1.0.0","prevResult":prev})
    );
    assert_eq!(n.plugin_types(), vec!["a", "b"]);
}

// ---- conf-dir selection ---------------------------------------------------

#[test]
fn conf_dir_takes_the_first_parsable_file_in_lexical_order() {
    let dir = tmp();
    let d = dir.path();
    fs::write(d.join("00-notes.txt"), "not a config").unwrap();
    fs::write(d.join("05-broken.conflist"), "{ nope").unwrap();
    fs::write(
        d.join("10-single.conf"),
        r#"{"cniVersion":"0.4.0","name":"single","type":"bridge","bridge":"br9"}"#,
    )
    .unwrap();
    fs::write(
        d.join("20-list.conflist"),
        r#"{"cniVersion":"1.0.0","name":"listed","plugins":[{"type":"bridge"},{"type":"portmap"}]}"#,
    )
    .unwrap();
    fs::create_dir(d.join("15-a-directory.conflist")).unwrap();

    let cni = Cni::from_conf_dir(d).unwrap();
    assert_eq!(cni.network.name, "single");
    assert_eq!(cni.network.cni_version, "0.4.0");
    // The .conf is wrapped into a one-plugin list, its content unchanged.
    assert_eq!(
        cni.network.plugins,
        vec![json!({"cniVersion":"0.4.0","name":"single","type":"bridge","bridge":"br9"})]
    );
    assert_eq!(
        cni.network.origin,
        d.join("10-single.conf").display().to_string()
    );

    fs::remove_file(d.join("10-single.conf")).unwrap();
    let cni = Cni::from_conf_dir(d).unwrap();
    assert_eq!(cni.network.name, "listed");
    assert_eq!(cni.network.plugin_types(), vec!["bridge", "portmap"]);

    // Only unusable files left: the error says why each was skipped.
    fs::remove_file(d.join("20-list.conflist")).unwrap();
    let err = Cni::from_conf_dir(d).unwrap_err().to_string();
    assert!(
        err.contains("05-broken.conflist") && err.contains("invalid JSON"),
        "{err}"
    );

    let empty = tmp();
    let err = Cni::from_conf_dir(empty.path()).unwrap_err().to_string();
    assert!(
        err.contains("no *.conflist, *.conf or *.json file"),
        "{err}"
    );

    let err = Cni::from_conf_dir(&d.join("missing")).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Io {
                op: "read directory",
                ..
            }
        ),
        "{err}"
    );
}

// ---- results --------------------------------------------------------------

#[test]
fn parses_a_1_0_0_bridge_result() {
    let result = json!({
        "cniVersion": "1.0.0",
        "interfaces": [
            {"name": "podlab0", "mac": "aa:aa:aa:aa:aa:aa"},
            {"name": "veth1234", "mac": "bb:bb:bb:bb:bb:bb"},
            {"name": "eth0", "mac": "ce:5e:01:02:03:04", "sandbox": "/run/netns/p"}
        ],
        "ips": [
            {"address": "10.89.0.5/16", "gateway": "10.89.0.1", "interface": 2},
            {"address": "10.77.0.9/16", "gateway": "10.77.0.1", "interface": 1}
        ],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dns": {}
    });
    let a = attachment_from_result(&result, "eth0").unwrap();
    assert_eq!(
        a,
        Attachment {
            interface: "eth0".into(),
            ips: vec!["10.89.0.5".into()],
            cidrs: vec!["10.89.0.5/16".into()],
            gateway: Some("10.89.0.1".into()),
            mac: Some("ce:5e:01:02:03:04".into()),
        }
    );
    // Asking for another interface finds none of these addresses.
    let err = attachment_from_result(&result, "net1").unwrap_err();
    assert!(err.contains("no IP address for interface net1"), "{err}");
}

#[test]
fn parses_a_0_4_0_dual_stack_result_and_unindexed_ips() {
    let result = json!({
        "cniVersion": "0.4.0",
        "interfaces": [{"name": "eth0", "mac": "02:00:00:00:00:07", "sandbox": "/proc/1/ns/net"}],
        "ips": [
            {"version": "4", "address": "10.1.2.3/24", "gateway": "10.1.2.1", "interface": 0},
            {"version": "6", "address": "fd00::3/64", "interface": 0},
            {"version": "4", "address": "192.168.7.7/32"}
        ]
    });
    let a = attachment_from_result(&result, "eth0").unwrap();
    assert_eq!(a.ips, vec!["10.1.2.3", "fd00::3", "192.168.7.7"]);
    assert_eq!(a.cidrs, vec!["10.1.2.3/24", "fd00::3/64", "192.168.7.7/32"]);
    assert_eq!(a.gateway.as_deref(), Some("10.1.2.1"));
    assert_eq!(a.mac.as_deref(), Some("02:00:00:00:00:07"));
}

#[test]
fn parses_a_0_2_0_result() {
    let result = json!({
        "cniVersion": "0.2.0",
        "ip4": {"ip": "10.5.0.4/16", "gateway": "10.5.0.1", "routes": [{"dst": "0.0.0.0/0"}]},
        "ip6": {"ip": "fd05::4/64"},
        "dns": {}
    });
    let a = attachment_from_result(&result, "eth0").unwrap();
    assert_eq!(a.ips, vec!["10.5.0.4", "fd05::4"]);
    assert_eq!(a.gateway.as_deref(), Some("10.5.0.1"));
    assert_eq!(a.mac, None);
}

#[test]
fn rejects_results_without_usable_addresses() {
    let cases = [
        (
            json!({"cniVersion": "1.0.0", "interfaces": [], "ips": []}),
            "no IP address",
        ),
        (json!({"cniVersion": "1.0.0"}), "no IP address"),
        (
            json!({"ips": [{"address": "10.0.0.1"}]}),
            "no prefix length",
        ),
        (json!({"ips": [{"address": "ten/8"}]}), "invalid address"),
        (json!({"ips": [{"gateway": "10.0.0.1"}]}), "no \"address\""),
        (json!({"ips": {}}), "must be an array"),
        (
            json!({"ip4": {"gateway": "10.0.0.1"}}),
            "\"ip4\" has no \"ip\"",
        ),
    ];
    for (result, want) in cases {
        let err = attachment_from_result(&result, "eth0").unwrap_err();
        assert!(err.contains(want), "{result}: {err}");
    }
}

#[test]
fn reads_plugin_error_objects_and_falls_back_to_stderr() {
    let e = plugin_error(
        br#"{"cniVersion":"1.0.0","code":11,"msg":"try again later","details":"lease file locked"}"#,
        b"",
    );
    assert_eq!(e.code, Some(11));
    assert_eq!(e.msg, "try again later");
    assert_eq!(e.details, "lease file locked");

    let e = plugin_error(b"", b"panic: runtime error\n");
    assert_eq!(e.code, None);
    assert_eq!(e.msg, "panic: runtime error");

    let e = plugin_error(b"", b"");
    assert_eq!(e.msg, "no error message");
}

// ---- plugin lookup --------------------------------------------------------

#[test]
fn missing_plugin_error_names_plugin_dirs_and_package() {
    let dir = tmp();
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    fs::create_dir_all(&a).unwrap();
    fs::create_dir_all(&b).unwrap();
    // Present but not executable: does not count.
    fs::write(a.join("bridge"), "#!/bin/sh\n").unwrap();
    let mut cni = fake_cni(dir.path(), &[a.clone(), b.clone()], &["bridge"]);

    let err = cni.find_plugin("bridge").unwrap_err();
    assert!(
        matches!(&err, Error::PluginNotFound { plugin, searched } if plugin == "bridge" && searched == &vec![a.clone(), b.clone()])
    );
    assert_eq!(
        err.to_string(),
        format!(
            "CNI plugin \"bridge\" not found in {}, {}: install the Debian package containernetworking-plugins",
            a.display(),
            b.display()
        )
    );
    // add() looks every plugin up before anything runs or is recorded.
    let err = cni
        .add("c1", Path::new("/nonexistent"), "eth0")
        .unwrap_err();
    assert!(matches!(err, Error::PluginNotFound { .. }), "{err}");
    assert!(!cni.cache_dir.exists());

    write_exec(&b.join("bridge"), "#!/bin/sh\n");
    assert_eq!(cni.find_plugin("bridge").unwrap(), b.join("bridge"));
    assert!(cni.find_plugin("../b/bridge").is_err());

    cni.plugin_dirs.clear();
    let err = cni.find_plugin("bridge").unwrap_err().to_string();
    assert!(err.contains("(no plugin directories configured)"), "{err}");
}

// ---- the exec protocol against fake plugins --------------------------------

fn write_exec(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// A fake plugin: appends "COMMAND name ifname" to `log`, saves its stdin
/// and environment, and on ADD runs `add_body` (which prints its result).
fn fake_plugin(dir: &Path, name: &str, add_body: &str) {
    let script = format!(
        "#!/bin/sh\n\
         d='{log}'\n\
         echo \"$CNI_COMMAND {name} $CNI_IFNAME\" >> \"$d/log\"\n\
         cat > \"$d/{name}.$CNI_COMMAND.stdin\"\n\
         env > \"$d/{name}.$CNI_COMMAND.env\"\n\
         [ \"$CNI_COMMAND\" = ADD ] || exit 0\n\
         {add_body}\n",
        log = dir.join("..").join("log").display(),
    );
    write_exec(&dir.join(name), &script);
}

fn result_json(ip: &str) -> String {
    json!({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "eth0", "mac": "02:00:00:00:00:01", "sandbox": "/x"}],
        "ips": [{"address": ip, "gateway": "10.0.0.1", "interface": 0}]
    })
    .to_string()
}

/// A Cni over fake plugins in `root/plugins`, with the chain `types`.
fn fake_cni(root: &Path, dirs: &[PathBuf], types: &[&str]) -> Cni {
    let plugins: Vec<Value> = types.iter().map(|t| json!({"type": t, "k": t})).collect();
    let conflist = json!({"cniVersion": "1.0.0", "name": "fake", "plugins": plugins});
    let network = Network::from_conflist(conflist.to_string().as_bytes(), "fake.conflist").unwrap();
    Cni {
        plugin_dirs: dirs.to_vec(),
        network,
        cache_dir: root.join("cache"),
        timeout: Duration::from_secs(20),
        runtime_config: None,
    }
}

struct Fake {
    _dir: tempfile::TempDir,
    root: PathBuf,
    plugins: PathBuf,
}

impl Fake {
    fn new() -> Fake {
        let dir = tmp();
        let root = dir.path().to_path_buf();
        let plugins = root.join("plugins");
        fs::create_dir_all(root.join("log")).unwrap();
        fs::create_dir_all(&plugins).unwrap();
        let lo = json!({"cniVersion":"1.0.0","interfaces":[{"name":"lo","sandbox":"/x"}],
                        "ips":[{"address":"127.0.0.1/8","interface":0}]});
        fake_plugin(&plugins, "loopback", &format!("echo '{lo}'"));
        fake_plugin(
            &plugins,
            "first",
            &format!("echo '{}'", result_json("10.0.0.5/24")),
        );
        fake_plugin(
            &plugins,
            "second",
            &format!("echo '{}'", result_json("10.0.0.6/24")),
        );
        fake_plugin(
            &plugins,
            "failing",
            r#"echo '{"cniVersion":"1.0.0","code":7,"msg":"no luck","details":"the dice said no"}'; exit 1"#,
        );
        fake_plugin(&plugins, "garbage", "echo 'this is not json'");
        fake_plugin(
            &plugins,
            "noips",
            r#"echo '{"cniVersion":"1.0.0","ips":[]}'"#,
        );
        fake_plugin(&plugins, "slow", "sleep 5");
        Fake {
            _dir: dir,
            root,
            plugins,
        }
    }

    fn cni(&self, types: &[&str]) -> Cni {
        let mut cni = fake_cni(&self.root, std::slice::from_ref(&self.plugins), types);
        // Put an absent directory first: lookup must go on to the next one.
        cni.plugin_dirs.insert(0, self.root.join("absent"));
        cni
    }

    fn log(&self) -> Vec<String> {
        match fs::read_to_string(self.root.join("log/log")) {
            Ok(text) => text.lines().map(str::to_string).collect(),
            Err(_) => Vec::new(),
        }
    }

    fn stdin(&self, plugin: &str, command: &str) -> Value {
        let path = self.root.join(format!("log/{plugin}.{command}.stdin"));
        serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
    }

    fn env(&self, plugin: &str, command: &str) -> Vec<String> {
        let path = self.root.join(format!("log/{plugin}.{command}.env"));
        let text = fs::read_to_string(path).unwrap();
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        lines.sort();
        lines
    }
}

fn env_value<'a>(env: &'a [String], key: &str) -> Option<&'a str> {
    env.iter()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

#[test]
fn add_runs_loopback_then_the_chain_with_prev_results_and_a_clean_env() {
    let f = Fake::new();
    let cni = f.cni(&["first", "second"]);
    let netns = Path::new("/run/netns/podlab-fake");
    let a = cni.add("pod-1", netns, "eth0").unwrap();

    assert_eq!(
        f.log(),
        vec!["ADD loopback lo", "ADD first eth0", "ADD second eth0"]
    );
    // The final result is the last plugin's.
    assert_eq!(a.ips, vec!["10.0.0.6"]);
    assert_eq!(a.interface, "eth0");

    assert_eq!(
        f.stdin("first", "ADD"),
        json!({"type":"first","k":"first","name":"fake","cniVersion":"1.0.0"})
    );
    let second = f.stdin("second", "ADD");
    assert_eq!(
        second["prevResult"],
        serde_json::from_str::<Value>(&result_json("10.0.0.5/24")).unwrap()
    );
    assert_eq!(second["name"], "fake");
    assert_eq!(
        f.stdin("loopback", "ADD"),
        json!({"cniVersion":"1.0.0","name":"cni-loopback","type":"loopback"})
    );

    let env = f.env("first", "ADD");
    assert_eq!(env_value(&env, "CNI_COMMAND"), Some("ADD"));
    assert_eq!(env_value(&env, "CNI_CONTAINERID"), Some("pod-1"));
    assert_eq!(env_value(&env, "CNI_NETNS"), Some("/run/netns/podlab-fake"));
    assert_eq!(env_value(&env, "CNI_IFNAME"), Some("eth0"));
    let cni_path = format!(
        "{}:{}",
        f.root.join("absent").display(),
        f.plugins.display()
    );
    assert_eq!(env_value(&env, "CNI_PATH"), Some(cni_path.as_str()));
    assert!(env_value(&env, "PATH").is_some());
    // cargo's test environment (CARGO_*, HOME, ...) must not leak through.
    let allowed = [
        "PATH",
        "CNI_COMMAND",
        "CNI_CONTAINERID",
        "CNI_NETNS",
        "CNI_IFNAME",
        "CNI_PATH",
        "PWD",
        "SHLVL",
        "_",
    ];
    for line in &env {
        let key = line.split('=').next().unwrap_or_default();
        assert!(allowed.contains(&key), "leaked into the plugin env: {line}");
    }
    assert_eq!(
        env_value(&f.env("loopback", "ADD"), "CNI_IFNAME"),
        Some("lo")
    );

    // The result is cached for DEL.
    let cached = cni.cached().unwrap();
    assert_eq!(
        cached,
        vec![CachedAttachment {
            container_id: "pod-1".into(),
            ifname: "eth0".into(),
            netns: netns.to_path_buf(),
            complete: true,
        }]
    );
}

#[test]
fn del_runs_the_chain_in_reverse_with_the_cached_result_and_is_idempotent() {
    let f = Fake::new();
    let cni = f.cni(&["first", "second"]);
    // /proc/self/ns/net is a live netns handle, so it is passed through.
    let netns = Path::new("/proc/self/ns/net");
    cni.add("pod-2", netns, "eth0").unwrap();
    cni.del("pod-2", netns, "eth0").unwrap();

    assert_eq!(
        f.log()[3..],
        ["DEL second eth0", "DEL first eth0", "DEL loopback lo"]
    );
    let final_result: Value = serde_json::from_str(&result_json("10.0.0.6/24")).unwrap();
    assert_eq!(f.stdin("first", "DEL")["prevResult"], final_result);
    assert_eq!(f.stdin("second", "DEL")["prevResult"], final_result);
    assert_eq!(
        env_value(&f.env("first", "DEL"), "CNI_NETNS"),
        Some("/proc/self/ns/net")
    );
    assert!(cni.cached().unwrap().is_empty());

    // Again, and with a netns that is gone: no prevResult, empty CNI_NETNS,
    // no loopback call (there is no lo to take down), and no error.
    cni.del("pod-2", Path::new("/run/netns/podlab-gone"), "eth0")
        .unwrap();
    assert_eq!(f.log()[6..], ["DEL second eth0", "DEL first eth0"]);
    assert!(f.stdin("first", "DEL").get("prevResult").is_none());
    assert_eq!(env_value(&f.env("first", "DEL"), "CNI_NETNS"), Some(""));
}

#[test]
fn failing_add_undoes_what_ran_and_reports_the_plugin_error() {
    let f = Fake::new();
    let cni = f.cni(&["first", "failing", "second"]);
    let err = cni.add("pod-3", Path::new("/x"), "eth0").unwrap_err();
    assert!(
        matches!(&err, Error::Plugin { plugin, command: "ADD", code: Some(7), msg, details }
            if plugin == "failing" && msg == "no luck" && details == "the dice said no"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "CNI plugin failing ADD failed (code 7): no luck (the dice said no)"
    );
    // The failing plugin and the one before it get DEL, newest first; the
    // plugin after it never ran. DEL sees the last good result.
    assert_eq!(
        f.log(),
        vec![
            "ADD loopback lo",
            "ADD first eth0",
            "ADD failing eth0",
            "DEL failing eth0",
            "DEL first eth0"
        ]
    );
    let good: Value = serde_json::from_str(&result_json("10.0.0.5/24")).unwrap();
    assert_eq!(f.stdin("first", "DEL")["prevResult"], good);
    // Fully undone: no record left for gc.
    assert!(cni.cached().unwrap().is_empty());
}

#[test]
fn unusable_results_count_as_failures_and_are_undone() {
    let f = Fake::new();
    let err = f
        .cni(&["garbage"])
        .add("pod-4", Path::new("/x"), "eth0")
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidResult { plugin, reason, .. } if plugin == "garbage" && reason.contains("this is not json")),
        "{err}"
    );
    let err = f
        .cni(&["first", "noips"])
        .add("pod-5", Path::new("/x"), "eth0")
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidResult { plugin, reason, .. } if plugin == "noips" && reason.contains("no IP address for interface eth0")),
        "{err}"
    );
    let log = f.log();
    assert!(log.contains(&"DEL garbage eth0".to_string()), "{log:?}");
    assert_eq!(log[log.len() - 2..], ["DEL noips eth0", "DEL first eth0"]);
}

#[test]
fn a_hung_plugin_is_killed_after_the_timeout_and_undone() {
    let f = Fake::new();
    let mut cni = f.cni(&["slow"]);
    cni.timeout = Duration::from_millis(300);
    let started = std::time::Instant::now();
    let err = cni.add("pod-6", Path::new("/x"), "eth0").unwrap_err();
    let took = started.elapsed();
    // ADD waits 300 ms, DEL of the rollback exits at once: far below 5 s.
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert!(
        matches!(&err, Error::Plugin { plugin, code: None, msg, .. } if plugin == "slow" && msg.contains("killed")),
        "{err}"
    );
    assert_eq!(f.log()[2..], ["DEL slow eth0"]);
}

#[test]
fn a_failing_rollback_keeps_the_record_for_gc() {
    let f = Fake::new();
    // "stuck" fails ADD and DEL alike.
    write_exec(
        &f.plugins.join("stuck"),
        "#!/bin/sh\necho '{\"code\":100,\"msg\":\"device busy\"}'; exit 1\n",
    );
    let cni = f.cni(&["first", "stuck"]);
    let err = cni.add("pod-7", Path::new("/x"), "eth0").unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Rollback { .. }), "{text}");
    assert!(
        text.starts_with("CNI plugin stuck ADD failed (code 100): device busy; undoing")
            && text.ends_with("CNI plugin stuck DEL failed (code 100): device busy"),
        "{text}"
    );
    // Both were still tried.
    assert_eq!(f.log()[2..], ["DEL first eth0"]);
    let cached = cni.cached().unwrap();
    assert_eq!(cached.len(), 1);
    assert!(!cached[0].complete);

    // A DEL that fails keeps the record too.
    let err = cni.del("pod-7", Path::new("/x"), "eth0").unwrap_err();
    assert!(matches!(err, Error::Plugin { command: "DEL", .. }), "{err}");
    assert_eq!(cni.cached().unwrap().len(), 1);
}

#[test]
fn ids_and_interface_names_are_validated_before_anything_runs() {
    let f = Fake::new();
    let cni = f.cni(&["first"]);
    for (id, ifname) in [
        ("", "eth0"),
        ("a/b", "eth0"),
        ("a:b", "eth0"),
        ("ok", ""),
        ("ok", "a-very-long-ifname"),
        ("ok", "e:0"),
    ] {
        let err = cni.add(id, Path::new("/x"), ifname).unwrap_err();
        assert!(
            matches!(err, Error::Config { .. }),
            "{id:?} {ifname:?}: {err}"
        );
        let err = cni.del(id, Path::new("/x"), ifname).unwrap_err();
        assert!(
            matches!(err, Error::Config { .. }),
            "{id:?} {ifname:?}: {err}"
        );
    }
    let mut empty = f.cni(&["first"]);
    empty.network.plugins.clear();
    let err = empty.add("ok", Path::new("/x"), "eth0").unwrap_err();
    assert!(
        err.to_string().contains("the network has no plugins"),
        "{err}"
    );
    assert!(f.log().is_empty());
}
