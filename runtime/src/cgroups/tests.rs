//! Fixture trees (v2 and v1) in tempdirs, and the real v1 cgroupfs when
//! run as root on a v1 host.

use super::*;
use rstest::rstest;
use tempfile::TempDir;

const MI: i64 = 1 << 20;

/// No process can have this pid (it is above the kernel's PID_MAX_LIMIT).
/// Fixtures never signal anything; this is a second safety belt.
const FAKE_PID: i32 = 2_000_000_001;

fn read(p: &Path) -> String {
    fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_owned()
}

fn words(p: &Path) -> BTreeSet<String> {
    read(p).split_whitespace().map(str::to_owned).collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn fixture(mode: Mode) -> (TempDir, Manager) {
    let dir = tempfile::tempdir().unwrap();
    seed_fixture_root(mode, dir.path()).unwrap();
    let m = Manager::with_root(mode, dir.path().to_path_buf());
    (dir, m)
}

/// 250m CPU, 64Mi, 64 pids: the container of the brief.
fn app_limits() -> Limits {
    Limits::from_millis(Some(250), Some(250), Some(64 * MI), Some(64))
}

fn pod_limits() -> Limits {
    Limits::from_millis(Some(500), Some(500), Some(128 * MI), Some(128))
}

mod v2_fixture {
    use super::*;

    #[test]
    fn a_plain_directory_gets_the_fixture_backend() {
        let (_t, m) = fixture(Mode::V2);
        assert!(format!("{:?}", m.inner.backend).starts_with("Fixture"));
        assert_eq!(m.mode(), Mode::V2);
    }

    #[test]
    fn create_pod_enables_controllers_down_to_the_pod_and_writes_its_limits() {
        let (t, m) = fixture(Mode::V2);
        let pod = m.create_pod("u1", &pod_limits()).unwrap();
        let root = t.path();
        let podlab = root.join("podlab");
        let pod_dir = podlab.join("pod-u1");
        assert_eq!(pod.paths(), vec![pod_dir.clone()]);
        assert_eq!(pod.relative_path(), "podlab/pod-u1");

        let ours = set(&["cpu", "memory", "pids"]);
        assert_eq!(words(&root.join("cgroup.subtree_control")), ours);
        assert_eq!(words(&podlab.join("cgroup.subtree_control")), ours);
        assert_eq!(words(&pod_dir.join("cgroup.subtree_control")), ours);
        // The pod's own controllers came from podlab's subtree_control.
        assert_eq!(words(&pod_dir.join("cgroup.controllers")), ours);

        assert_eq!(read(&pod_dir.join("memory.max")), (128 * MI).to_string());
        assert_eq!(read(&pod_dir.join("memory.swap.max")), "0");
        assert_eq!(read(&pod_dir.join("cpu.max")), "50000 100000");
        assert_eq!(
            read(&pod_dir.join("cpu.weight")),
            weight_from_shares(512).to_string()
        );
        assert_eq!(read(&pod_dir.join("pids.max")), "128");
    }

    #[test]
    fn create_leaf_writes_every_file_and_reads_it_back() {
        let (t, m) = fixture(Mode::V2);
        let pod = m.create_pod("u1", &Limits::default()).unwrap();
        let leaf = pod
            .create_leaf("ctr-app", &app_limits(), Devices::Allowlist)
            .unwrap();
        let dir = t.path().join("podlab/pod-u1/ctr-app");

        assert_eq!(read(&dir.join("memory.max")), "67108864");
        assert_eq!(read(&dir.join("memory.swap.max")), "0");
        assert_eq!(read(&dir.join("cpu.max")), "25000 100000");
        assert_eq!(read(&dir.join("cpu.weight")), "10"); // shares 256
        assert_eq!(read(&dir.join("pids.max")), "64");
        // A leaf delegates nothing: processes go there.
        assert_eq!(read(&dir.join("cgroup.subtree_control")), "");

        let got = leaf.read_limits().unwrap();
        assert_eq!(got.memory_bytes, Some(64 * MI));
        assert_eq!(got.cpu_quota_us, Some(25_000));
        assert_eq!(got.cpu_period_us, Some(100_000));
        assert_eq!(got.pids_max, Some(64));
        // Weight 10 comes back as the smallest shares giving weight 10.
        let shares = got.cpu_shares.unwrap();
        assert_eq!(weight_from_shares(shares), 10);
        assert!(shares <= 256, "{shares}");
    }

    #[test]
    fn a_leaf_without_limits_keeps_the_kernel_defaults() {
        let (t, m) = fixture(Mode::V2);
        let pod = m.create_pod("u1", &Limits::default()).unwrap();
        let pause = pod
            .create_leaf("pause", &Limits::default(), Devices::Allowlist)
            .unwrap();
        let dir = t.path().join("podlab/pod-u1/pause");
        assert_eq!(read(&dir.join("memory.max")), "max");
        assert_eq!(read(&dir.join("memory.swap.max")), "max");
        assert_eq!(read(&dir.join("cpu.max")), "max 100000");
        assert_eq!(read(&dir.join("pids.max")), "max");
        let got = pause.read_limits().unwrap();
        assert_eq!(got.memory_bytes, None);
        assert_eq!(got.cpu_quota_us, None);
        assert_eq!(got.cpu_period_us, None);
        assert_eq!(got.pids_max, None);
        assert_eq!(got.cpu_shares.map(weight_from_shares), Some(100));
    }

    #[test]
    fn unlimited_values_are_written_as_max() {
        let (t, m) = fixture(Mode::V2);
        let pod = m.create_pod("u1", &Limits::default()).unwrap();
        let dir = t.path().join("podlab/pod-u1/ctr-a");
        let limits = Limits {
            memory_bytes: Some(-1),
            cpu_quota_us: Some(-1),
            cpu_period_us: Some(50_000),
            cpu_shares: None,
            pids_max: Some(-1),
        };
        let leaf = pod
            .create_leaf("ctr-a", &limits, Devices::Allowlist)
            .unwrap();
        assert_eq!(read(&dir.join("memory.max")), "max");
        // No memory limit: swap is left alone.
        assert_eq!(read(&dir.join("memory.swap.max")), "max");
        assert_eq!(read(&dir.join("cpu.max")), "max 50000");
        assert_eq!(read(&dir.join("pids.max")), "max");
        assert_eq!(leaf.read_limits().unwrap().pids_max, None);
    }

    #[test]
    fn a_controller_the_host_lacks_fails_before_anything_is_made() {
        let (t, m) = fixture(Mode::V2);
        fs::write(
            t.path().join("cgroup.controllers"),
            "cpuset cpu io memory\n",
        )
        .unwrap();
        let err = m.create_pod("u1", &Limits::default()).unwrap_err();
        assert!(
            matches!(&err, Error::ControllerUnavailable { controller: "pids", dir } if dir == t.path()),
            "{err}"
        );
        assert!(!t.path().join("podlab").exists());
        // Nothing half-enabled either.
        assert_eq!(read(&t.path().join("cgroup.subtree_control")), "");
    }

    #[test]
    fn a_controller_missing_in_the_leaf_is_reported_and_the_leaf_removed() {
        let (t, m) = fixture(Mode::V2);
        let pod = m.create_pod("u1", &Limits::default()).unwrap();
        // Someone disabled pids for the pod's children behind our back.
        let subtree = t.path().join("podlab/pod-u1/cgroup.subtree_control");
        m.inner.backend.write(&subtree, "-pids").unwrap();
        let err = pod
            .create_leaf("ctr-a", &app_limits(), Devices::Allowlist)
            .unwrap_err();
        assert!(
            matches!(
                &err,
                Error::ControllerUnavailable {
                    controller: "pids",
                    ..
                }
            ),
            "{err}"
        );
        assert!(!pod.leaf("ctr-a").exists());
        assert!(pod.exists());
    }

    #[test]
    fn destroy_kills_waits_and_removes_every_directory() {
        let (t, m) = fixture(Mode::V2);
        let pod = m.create_pod("u1", &pod_limits()).unwrap();
        pod.create_leaf("pause", &Limits::default(), Devices::Allowlist)
            .unwrap();
        let app = pod
            .create_leaf("ctr-app", &app_limits(), Devices::Allowlist)
            .unwrap();
        app.add_process(FAKE_PID).unwrap();
        assert_eq!(app.procs().unwrap(), vec![FAKE_PID]);
        assert_eq!(pod.leaves().unwrap(), vec!["ctr-app", "pause"]);

        // The fixture refuses rmdir while cgroup.procs lists a process, so
        // success means the kill step emptied it first.
        pod.destroy().unwrap();
        assert!(
            !t.path().join("podlab").exists(),
            "last pod takes podlab along"
        );
        assert!(!pod.exists());
        assert!(!app.exists());
        assert_eq!(m.list_pods().unwrap(), Vec::<String>::new());
        // Idempotent.
        pod.destroy().unwrap();
        m.pod("never-made").destroy().unwrap();
    }

    #[test]
    fn destroy_removes_cgroups_nested_below_a_leaf() {
        let (_t, m) = fixture(Mode::V2);
        let pod = m.create_pod("u1", &Limits::default()).unwrap();
        let app = pod
            .create_leaf("ctr-app", &Limits::default(), Devices::Allowlist)
            .unwrap();
        let leaf_dir = app.paths()[0].1.clone();
        // A container with its own cgroup namespace may make sub-cgroups.
        m.inner.backend.mkdir(&leaf_dir.join("inner")).unwrap();
        m.inner
            .backend
            .mkdir(&leaf_dir.join("inner/deeper"))
            .unwrap();
        pod.destroy().unwrap();
        assert!(!pod.exists());
    }

    #[test]
    fn destroy_of_one_pod_keeps_the_other_and_podlab() {
        let (t, m) = fixture(Mode::V2);
        let a = m.create_pod("a", &Limits::default()).unwrap();
        let b = m.create_pod("b", &Limits::default()).unwrap();
        b.create_leaf("pause", &Limits::default(), Devices::Allowlist)
            .unwrap();
        // Stray entries under podlab are not pods.
        fs::create_dir(t.path().join("podlab/not-a-pod")).unwrap();
        fs::write(t.path().join("podlab/pod-file"), "").unwrap();
        assert_eq!(m.list_pods().unwrap(), vec!["a", "b"]);

        a.destroy().unwrap();
        assert_eq!(m.list_pods().unwrap(), vec!["b"]);
        assert!(t.path().join("podlab").is_dir());
        assert!(b.leaf("pause").exists());
    }

    #[test]
    fn list_pods_without_podlab_is_empty() {
        let (_t, m) = fixture(Mode::V2);
        assert_eq!(m.list_pods().unwrap(), Vec::<String>::new());
    }

    #[test]
    fn existing_cgroups_are_not_created_twice() {
        let (_t, m) = fixture(Mode::V2);
        let pod = m.create_pod("u1", &Limits::default()).unwrap();
        let err = m.create_pod("u1", &Limits::default()).unwrap_err();
        assert!(
            matches!(&err, Error::AlreadyExists(p) if p == "podlab/pod-u1"),
            "{err}"
        );
        pod.create_leaf("pause", &Limits::default(), Devices::Allowlist)
            .unwrap();
        let err = pod
            .create_leaf("pause", &Limits::default(), Devices::Allowlist)
            .unwrap_err();
        assert!(
            matches!(&err, Error::AlreadyExists(p) if p == "podlab/pod-u1/pause"),
            "{err}"
        );
        // A failed second create must not have destroyed the first.
        assert!(pod.leaf("pause").exists());
    }

    #[test]
    fn leaves_need_their_pod() {
        let (_t, m) = fixture(Mode::V2);
        let err = m
            .pod("ghost")
            .create_leaf("pause", &Limits::default(), Devices::Allowlist)
            .unwrap_err();
        assert!(
            matches!(&err, Error::NotFound(p) if p == "podlab/pod-ghost"),
            "{err}"
        );
        let err = m
            .pod("ghost")
            .leaf("pause")
            .add_process(FAKE_PID)
            .unwrap_err();
        assert!(matches!(err, Error::NotFound(_)), "{err}");
    }

    #[test]
    fn oom_kills_are_read_from_memory_events() {
        let (_t, m) = fixture(Mode::V2);
        let pod = m.create_pod("u1", &Limits::default()).unwrap();
        let app = pod
            .create_leaf("ctr-app", &app_limits(), Devices::Allowlist)
            .unwrap();
        assert_eq!(app.oom_kill_count().unwrap(), 0);
        let events = app.paths()[0].1.join("memory.events");
        fs::write(
            &events,
            "low 0\nhigh 0\nmax 7\noom 2\noom_kill 2\noom_group_kill 0\n",
        )
        .unwrap();
        assert_eq!(app.oom_kill_count().unwrap(), 2);
        fs::write(&events, "low 0\n").unwrap();
        assert!(matches!(app.oom_kill_count(), Err(Error::Parse { .. })));
    }

    #[test]
    fn leaf_paths_name_the_unified_hierarchy() {
        let (t, m) = fixture(Mode::V2);
        let leaf = m.pod("u1").leaf("ctr-app");
        assert_eq!(leaf.relative_path(), "podlab/pod-u1/ctr-app");
        assert_eq!(
            leaf.paths(),
            vec![("unified".to_owned(), t.path().join("podlab/pod-u1/ctr-app"))]
        );
    }

    #[test]
    fn leaves_get_the_device_program_unless_privileged() {
        let (t, m) = fixture(Mode::V2);
        let pod = m.create_pod("u1", &Limits::default()).unwrap();
        pod.create_leaf("pause", &Limits::default(), Devices::Allowlist)
            .unwrap();
        pod.create_leaf("ctr-priv", &Limits::default(), Devices::All)
            .unwrap();
        let pod_dir = t.path().join("podlab/pod-u1");
        let text = read(&pod_dir.join("pause").join(FIXTURE_DEVICE_PROGRAM));
        let attached = devices::parse_program_text(&text).expect("one program");
        assert_eq!(
            attached,
            devices::program(&devices::rules(Devices::Allowlist))
        );
        // No program at all: every device, as on a cgroup without one.
        assert!(!pod_dir
            .join("ctr-priv")
            .join(FIXTURE_DEVICE_PROGRAM)
            .exists());
        assert!(!pod_dir.join(FIXTURE_DEVICE_PROGRAM).exists());
        pod.destroy().unwrap();
        assert!(!pod_dir.exists());
    }
}

mod v1_fixture {
    use super::*;

    /// A v1 root with cpu and cpuacct co-mounted, like many distributions.
    fn comounted() -> (TempDir, Manager) {
        let dir = tempfile::tempdir().unwrap();
        for h in ["memory", "cpu,cpuacct", "pids", "devices"] {
            seed_fixture_v1_hierarchy(dir.path(), h).unwrap();
        }
        let m = Manager::with_root(Mode::V1, dir.path().to_path_buf());
        (dir, m)
    }

    #[test]
    fn separate_hierarchies_get_one_directory_each() {
        let (t, m) = fixture(Mode::V1);
        let pod = m.create_pod("u1", &pod_limits()).unwrap();
        let paths: BTreeSet<PathBuf> = pod.paths().into_iter().collect();
        let expected: BTreeSet<PathBuf> = ["memory", "cpu", "cpuacct", "pids", "devices"]
            .iter()
            .map(|h| {
                t.path()
                    .canonicalize()
                    .unwrap()
                    .join(h)
                    .join("podlab/pod-u1")
            })
            .collect();
        assert_eq!(paths, expected);
        assert!(paths.iter().all(|p| p.is_dir()));
        // No cpuset, freezer or other hierarchy is touched.
        assert_eq!(fs::read_dir(t.path()).unwrap().count(), 5);
    }

    #[test]
    fn leaf_limits_go_to_the_v1_files_including_memsw() {
        let (t, m) = comounted();
        let pod = m.create_pod("u1", &pod_limits()).unwrap();
        let app = pod
            .create_leaf("ctr-app", &app_limits(), Devices::Allowlist)
            .unwrap();
        let root = t.path().canonicalize().unwrap();
        let mem = root.join("memory/podlab/pod-u1/ctr-app");
        let cpu = root.join("cpu,cpuacct/podlab/pod-u1/ctr-app");
        let pids = root.join("pids/podlab/pod-u1/ctr-app");

        assert_eq!(read(&mem.join("memory.limit_in_bytes")), "67108864");
        assert_eq!(read(&mem.join("memory.memsw.limit_in_bytes")), "67108864");
        assert_eq!(read(&cpu.join("cpu.cfs_quota_us")), "25000");
        assert_eq!(read(&cpu.join("cpu.cfs_period_us")), "100000");
        assert_eq!(read(&cpu.join("cpu.shares")), "256");
        assert_eq!(read(&pids.join("pids.max")), "64");
        assert_eq!(app.read_limits().unwrap(), app_limits());

        // Co-mounted controllers share a directory, listed under both names.
        let paths = app.paths();
        let names: Vec<&str> = paths.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["memory", "cpu", "cpuacct", "pids", "devices"]);
        assert_eq!(paths[1].1, cpu);
        assert_eq!(paths[2].1, cpu);
        assert_eq!(pod.paths().len(), 4);

        app.add_process(FAKE_PID).unwrap();
        assert_eq!(app.procs().unwrap(), vec![FAKE_PID]);
        pod.destroy().unwrap();
        for h in ["memory", "cpu,cpuacct", "pids", "devices"] {
            assert!(!root.join(h).join("podlab").exists(), "{h}");
        }
    }

    #[test]
    fn without_swap_accounting_memsw_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        seed_fixture_root(Mode::V1, dir.path()).unwrap();
        fs::remove_file(dir.path().join("memory/memory.memsw.limit_in_bytes")).unwrap();
        let m = Manager::with_root(Mode::V1, dir.path().to_path_buf());
        let pod = m.create_pod("u1", &Limits::default()).unwrap();
        let app = pod
            .create_leaf("ctr-app", &app_limits(), Devices::Allowlist)
            .unwrap();
        let mem = &app.paths()[0].1;
        assert_eq!(read(&mem.join("memory.limit_in_bytes")), "67108864");
        assert!(!mem.join("memory.memsw.limit_in_bytes").exists());
    }

    #[test]
    fn oom_kills_are_read_from_oom_control() {
        let (_t, m) = fixture(Mode::V1);
        let pod = m.create_pod("u1", &Limits::default()).unwrap();
        let app = pod
            .create_leaf("ctr-app", &Limits::default(), Devices::Allowlist)
            .unwrap();
        assert_eq!(app.oom_kill_count().unwrap(), 0);
        let file = app.paths()[0].1.join("memory.oom_control");
        fs::write(&file, "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n").unwrap();
        assert_eq!(app.oom_kill_count().unwrap(), 3);
    }

    #[test]
    fn a_missing_hierarchy_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        seed_fixture_v1_hierarchy(dir.path(), "memory").unwrap();
        seed_fixture_v1_hierarchy(dir.path(), "cpu").unwrap();
        let m = Manager::with_root(Mode::V1, dir.path().to_path_buf());
        let err = m.create_pod("u1", &Limits::default()).unwrap_err();
        assert!(
            matches!(
                err,
                Error::NotMounted {
                    controller: "pids",
                    ..
                }
            ),
            "{err}"
        );
        assert!(!dir.path().join("memory/podlab").exists());
    }

    #[test]
    fn leaves_get_the_allowlist_or_everything_in_devices() {
        let (t, m) = fixture(Mode::V1);
        let pod = m.create_pod("u1", &Limits::default()).unwrap();
        let pause = pod
            .create_leaf("pause", &Limits::default(), Devices::Allowlist)
            .unwrap();
        let app = pod
            .create_leaf("ctr-app", &app_limits(), Devices::Allowlist)
            .unwrap();
        let privileged = pod
            .create_leaf("ctr-priv", &Limits::default(), Devices::All)
            .unwrap();
        let list = pause.device_list().unwrap();
        assert_eq!(list, devices::v1_list(Devices::Allowlist));
        assert!(list.contains(&"c 136:* rwm".to_owned()), "{list:?}");
        assert!(!list.iter().any(|l| l.starts_with("a ")), "{list:?}");
        assert_eq!(app.device_list().unwrap(), list);
        assert_eq!(privileged.device_list().unwrap(), ["a *:* rwm"]);
        // The pod itself keeps its parent's list: a privileged leaf needs it.
        let pod_list = t.path().join("devices/podlab/pod-u1/devices.list");
        assert_eq!(read(&pod_list), "a *:* rwm");
        app.add_process(FAKE_PID).unwrap();
        assert!(app.paths().iter().any(|(n, _)| n == "devices"));
        pod.destroy().unwrap();
        assert!(!t.path().join("devices/podlab").exists());
    }

    #[test]
    fn a_host_without_the_devices_controller_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        for h in ["memory", "cpu", "cpuacct", "pids"] {
            seed_fixture_v1_hierarchy(dir.path(), h).unwrap();
        }
        let m = Manager::with_root(Mode::V1, dir.path().to_path_buf());
        let err = m.create_pod("u1", &Limits::default()).unwrap_err();
        assert!(
            matches!(
                err,
                Error::NotMounted {
                    controller: "devices",
                    ..
                }
            ),
            "{err}"
        );
        assert!(!dir.path().join("memory/podlab").exists());
    }

    #[test]
    fn rules_the_parent_refuses_fail_and_leave_no_leaf() {
        let (t, m) = fixture(Mode::V1);
        let pod = m.create_pod("u1", &Limits::default()).unwrap();
        // A parent without the pts: the kernel refuses to allow them below.
        let pod_list = t.path().join("devices/podlab/pod-u1/devices.list");
        fs::write(&pod_list, "c 1:3 rwm\n").unwrap();
        let err = pod
            .create_leaf("ctr-app", &Limits::default(), Devices::Allowlist)
            .unwrap_err();
        assert!(
            matches!(&err, Error::Io { path, source }
                if path.ends_with("ctr-app/devices.allow")
                    && source.raw_os_error() == Some(libc::EPERM)),
            "{err}"
        );
        assert!(!pod.leaf("ctr-app").exists());
    }
}

mod names {
    use super::*;

    #[rstest]
    #[case("")]
    #[case(".")]
    #[case("..")]
    #[case("a/b")]
    #[case("with space")]
    #[case("line\nbreak")]
    fn bad_pod_uids_are_refused(#[case] uid: &str) {
        let (t, m) = fixture(Mode::V2);
        let err = m.create_pod(uid, &Limits::default()).unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidName {
                    what: "pod uid",
                    ..
                }
            ),
            "{err}"
        );
        assert!(!t.path().join("podlab").exists());
    }

    #[rstest]
    #[case("app")]
    #[case("ctr-")]
    #[case("ctr-a/b")]
    #[case("..")]
    #[case("pause ")]
    fn bad_leaf_names_are_refused(#[case] leaf: &str) {
        let (_t, m) = fixture(Mode::V2);
        let pod = m.create_pod("u1", &Limits::default()).unwrap();
        let err = pod
            .create_leaf(leaf, &Limits::default(), Devices::Allowlist)
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidName { what: "leaf", .. }),
            "{err}"
        );
        assert!(pod.leaves().unwrap().is_empty());
    }

    #[rstest]
    #[case(0)]
    #[case(-1)]
    #[case(i32::MIN)]
    fn pids_that_name_groups_or_the_caller_are_refused(#[case] pid: i32) {
        let (_t, m) = fixture(Mode::V2);
        let pod = m.create_pod("u1", &Limits::default()).unwrap();
        let app = pod
            .create_leaf("ctr-app", &Limits::default(), Devices::Allowlist)
            .unwrap();
        assert!(matches!(app.add_process(pid), Err(Error::InvalidPid(p)) if p == pid));
        assert!(app.procs().unwrap().is_empty());
    }
}

/// What the host tests of both versions share.
mod host {
    use super::*;
    use std::process::{Child, Command};
    use std::time::SystemTime;

    pub fn unique_uid(tag: &str) -> String {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        format!("podlab-test-{tag}-{}-{nanos}", std::process::id())
    }

    /// Destroys the pod even when an assertion fails halfway.
    pub struct Cleanup(pub PodCgroup);

    impl Drop for Cleanup {
        fn drop(&mut self) {
            if let Err(e) = self.0.destroy() {
                eprintln!("cleanup of {}: {e}", self.0.relative_path());
            }
        }
    }

    /// Kills and reaps the child even when an assertion fails halfway.
    pub struct Reap(pub Child);

    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// A shell in `leaf` (moved there before it reads its go line) opens
    /// `devices` read-only, without I/O; whether each opened (shells
    /// differ in the status a failed redirection gives: dash 2, busybox 1).
    pub fn opens_in(leaf: &Leaf, devices: &[&str]) -> Vec<(String, bool)> {
        use std::io::{BufRead, BufReader, Write};
        use std::process::Stdio;
        let script: String = devices
            .iter()
            .map(|d| format!("( exec 3<{d} ) 2>/dev/null; echo \"{d} $?\"; "))
            .collect();
        let mut child = Reap(
            Command::new("sh")
                .arg("-c")
                .arg(format!("read go; {script}"))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        leaf.add_process(i32::try_from(child.0.id()).unwrap())
            .unwrap();
        writeln!(child.0.stdin.take().unwrap(), "go").unwrap();
        BufReader::new(child.0.stdout.take().unwrap())
            .lines()
            .map(|l| {
                let l = l.unwrap();
                let (d, rc) = l.rsplit_once(' ').unwrap();
                (d.to_owned(), rc == "0")
            })
            .collect()
    }
}

/// The real cgroupfs of a v1 host. Skipped (with a message) unless root on v1.
mod host_v1 {
    use super::host::*;
    use super::*;
    use std::os::unix::process::ExitStatusExt;
    use std::process::Command;

    fn host() -> Option<Manager> {
        if !nix::unistd::geteuid().is_root() {
            podlab_testkit::skip::skipped("the host cgroup tests need root");
            return None;
        }
        match detect() {
            Ok(Mode::V1) => Some(Manager::new().unwrap()),
            other => {
                podlab_testkit::skip::skipped(&format!(
                    "the host cgroup tests need a cgroup v1 host; this one is {other:?}"
                ));
                None
            }
        }
    }

    /// Every path under /sys/fs/cgroup/*/podlab whose name contains `uid`.
    fn leftovers(uid: &str) -> Vec<PathBuf> {
        fn walk(dir: &Path, uid: &str, out: &mut Vec<PathBuf>) {
            let Ok(entries) = fs::read_dir(dir) else {
                return;
            };
            for e in entries.flatten() {
                let p = e.path();
                if p.to_string_lossy().contains(uid) {
                    out.push(p.clone());
                }
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(&p, uid, out);
                }
            }
        }
        let mut out = Vec::new();
        for h in fs::read_dir(DEFAULT_ROOT).unwrap().flatten() {
            walk(&h.path().join(TOP), uid, &mut out);
        }
        out
    }

    #[test]
    fn pod_leaf_process_and_destroy_on_the_host() {
        let Some(m) = host() else { return };
        let uid = unique_uid("life");
        let pod = m.create_pod(&uid, &pod_limits()).unwrap();
        let guard = Cleanup(pod.clone());

        let mem_pod = Path::new("/sys/fs/cgroup/memory/podlab").join(format!("pod-{uid}"));
        let cpu_pod = Path::new("/sys/fs/cgroup/cpu/podlab").join(format!("pod-{uid}"));
        let pids_pod = Path::new("/sys/fs/cgroup/pids/podlab").join(format!("pod-{uid}"));
        assert!(pod.paths().contains(&mem_pod), "{:?}", pod.paths());
        assert!(pod.paths().iter().all(|p| p.is_dir()));
        assert_eq!(
            read(&mem_pod.join("memory.limit_in_bytes")),
            (128 * MI).to_string()
        );
        assert_eq!(read(&cpu_pod.join("cpu.cfs_quota_us")), "50000");
        assert_eq!(read(&pids_pod.join("pids.max")), "128");
        // Only the hierarchies podlab needs.
        for skipped in ["cpuset", "freezer", "blkio", "systemd", "unified"] {
            let p = Path::new(DEFAULT_ROOT)
                .join(skipped)
                .join(TOP)
                .join(format!("pod-{uid}"));
            assert!(!p.exists(), "{}", p.display());
        }

        let pause = pod
            .create_leaf("pause", &Limits::default(), Devices::Allowlist)
            .unwrap();
        let app = pod
            .create_leaf("ctr-app", &app_limits(), Devices::Allowlist)
            .unwrap();
        assert_eq!(app.read_limits().unwrap(), app_limits());
        let mem_app = mem_pod.join("ctr-app");
        assert_eq!(read(&mem_app.join("memory.limit_in_bytes")), "67108864");
        if mem_app.join("memory.memsw.limit_in_bytes").exists() {
            assert_eq!(
                read(&mem_app.join("memory.memsw.limit_in_bytes")),
                "67108864"
            );
        }
        assert_eq!(app.oom_kill_count().unwrap(), 0);
        let dev_app = Path::new("/sys/fs/cgroup/devices/podlab")
            .join(format!("pod-{uid}"))
            .join("ctr-app");
        let listed: BTreeSet<String> = read(&dev_app.join("devices.list"))
            .lines()
            .map(str::to_owned)
            .collect();
        let wanted: BTreeSet<String> = devices::v1_list(Devices::Allowlist).into_iter().collect();
        assert_eq!(listed, wanted);
        assert_eq!(
            pause
                .device_list()
                .unwrap()
                .into_iter()
                .collect::<BTreeSet<_>>(),
            wanted
        );
        assert_eq!(
            app.paths()
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>(),
            ["memory", "cpu", "cpuacct", "pids", "devices"]
        );

        let child = Reap(Command::new("sleep").arg("30").spawn().unwrap());
        let pid = i32::try_from(child.0.id()).unwrap();
        app.add_process(pid).unwrap();
        assert_eq!(app.procs().unwrap(), vec![pid]);
        assert!(pause.procs().unwrap().is_empty());

        let cgroup = read(Path::new(&format!("/proc/{pid}/cgroup")));
        let want = format!("/{}", app.relative_path());
        for controller in ["memory", "cpu", "cpuacct", "pids", "devices"] {
            let line = cgroup
                .lines()
                .find(|l| {
                    l.split(':')
                        .nth(1)
                        .is_some_and(|c| c.split(',').any(|x| x == controller))
                })
                .unwrap_or_else(|| panic!("no {controller} line in {cgroup}"));
            assert_eq!(line.splitn(3, ':').nth(2), Some(want.as_str()), "{line}");
        }
        assert!(m.list_pods().unwrap().contains(&uid));

        pod.destroy().unwrap();
        let mut child = child;
        let deadline = Instant::now() + Duration::from_secs(5);
        let status = loop {
            if let Some(s) = child.0.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "sleep survived destroy");
            thread::sleep(POLL);
        };
        assert_eq!(status.signal(), Some(libc::SIGKILL));

        assert_eq!(leftovers(&uid), Vec::<PathBuf>::new());
        assert!(!pod.exists());
        assert!(!m.list_pods().unwrap().contains(&uid));
        pod.destroy().unwrap(); // idempotent
        drop(guard);
    }

    #[test]
    fn a_process_in_a_leaf_opens_only_the_allowed_devices() {
        let Some(m) = host() else { return };
        let wanted = [
            "/dev/null",
            "/dev/zero",
            "/dev/urandom",
            "/dev/tty1",
            "/dev/loop0",
        ];
        if let Some(d) = wanted.iter().find(|d| !Path::new(d).exists()) {
            eprintln!("skipping: this host has no {d}");
            return;
        }
        let uid = unique_uid("dev");
        let pod = m.create_pod(&uid, &Limits::default()).unwrap();
        let _guard = Cleanup(pod.clone());
        let app = pod
            .create_leaf("ctr-app", &Limits::default(), Devices::Allowlist)
            .unwrap();
        let privileged = pod
            .create_leaf("ctr-priv", &Limits::default(), Devices::All)
            .unwrap();
        let got = opens_in(&app, &wanted);
        let want: Vec<(String, bool)> = wanted
            .iter()
            .map(|d| {
                let harmless = ["null", "zero", "urandom"].iter().any(|h| d.contains(h));
                (d.to_string(), harmless)
            })
            .collect();
        assert_eq!(got, want, "true = opened");
        let got = opens_in(&privileged, &wanted);
        assert!(got.iter().all(|(_, opened)| *opened), "privileged: {got:?}");
    }

    #[test]
    fn refused_and_clamped_values_fail_and_leave_no_leaf() {
        let Some(m) = host() else { return };
        let uid = unique_uid("refuse");
        let pod = m.create_pod(&uid, &Limits::default()).unwrap();
        let _guard = Cleanup(pod.clone());

        // Below the kernel's 1 ms minimum: the write itself fails.
        let too_small = Limits {
            cpu_quota_us: Some(500),
            cpu_period_us: Some(100_000),
            ..Limits::default()
        };
        let err = pod
            .create_leaf("ctr-small", &too_small, Devices::Allowlist)
            .unwrap_err();
        assert!(matches!(err, Error::Cgroups { .. }), "{err}");
        assert!(!pod.leaf("ctr-small").exists());

        // The kernel silently raises shares below 2 to 2: only the read-back notices.
        let clamped = Limits {
            cpu_shares: Some(1),
            ..Limits::default()
        };
        let err = pod
            .create_leaf("ctr-clamped", &clamped, Devices::Allowlist)
            .unwrap_err();
        assert!(
            matches!(&err, Error::NotApplied { wanted, got, .. } if wanted == "1" && got == "2"),
            "{err}"
        );
        assert!(!pod.leaf("ctr-clamped").exists());

        pod.destroy().unwrap();
        assert_eq!(leftovers(&uid), Vec::<PathBuf>::new());
    }

    #[test]
    fn page_unaligned_memory_limits_are_accepted() {
        let Some(m) = host() else { return };
        let uid = unique_uid("pages");
        let pod = m.create_pod(&uid, &Limits::default()).unwrap();
        let _guard = Cleanup(pod.clone());
        // "100M" in a manifest is 100000000 bytes, not a whole number of pages.
        let limits = Limits {
            memory_bytes: Some(100_000_000),
            ..Limits::default()
        };
        let app = pod
            .create_leaf("ctr-app", &limits, Devices::Allowlist)
            .unwrap();
        let got = app.read_limits().unwrap().memory_bytes.unwrap();
        assert!(got <= 100_000_000 && 100_000_000 - got < 65_536, "{got}");
        pod.destroy().unwrap();
        assert_eq!(leftovers(&uid), Vec::<PathBuf>::new());
    }
}

/// The real cgroupfs of a pure v2 host. This host is a v1 hybrid, so these
/// run in `cargo xtask vm`, which boots a v2 kernel and runs them with
/// `--include-ignored`; there they must hold, not skip.
mod host_v2 {
    use super::host::*;
    use super::*;
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Stdio};

    const V2: &str = "needs root on a cgroup v2 host: run by `cargo xtask vm`";

    fn host() -> Manager {
        assert!(nix::unistd::geteuid().is_root(), "{V2}");
        assert_eq!(detect().unwrap(), Mode::V2, "{V2}");
        Manager::new().unwrap()
    }

    fn dir(relative: &str) -> PathBuf {
        Path::new(DEFAULT_ROOT).join(relative)
    }

    /// Waits for `child` to end, within `within`.
    fn ended(child: &mut Reap, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(s) = child.0.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "the process did not end");
            thread::sleep(POLL);
        }
    }

    #[test]
    #[ignore = "needs root on a cgroup v2 host: run by `cargo xtask vm`"]
    fn delegation_limits_processes_and_teardown() {
        let m = host();
        let uid = unique_uid("v2life");
        let pod = m.create_pod(&uid, &pod_limits()).unwrap();
        let guard = Cleanup(pod.clone());
        let pod_dir = dir(&pod.relative_path());
        // Controllers are enabled top-down: the root, podlab, the pod.
        let ours = set(&["cpu", "memory", "pids"]);
        for d in [Path::new(DEFAULT_ROOT), &dir(TOP), &pod_dir] {
            let enabled = words(&d.join("cgroup.subtree_control"));
            assert!(enabled.is_superset(&ours), "{}: {enabled:?}", d.display());
        }
        assert_eq!(read(&pod_dir.join("memory.max")), (128 * MI).to_string());
        assert_eq!(read(&pod_dir.join("cpu.max")), "50000 100000");
        assert_eq!(
            read(&pod_dir.join("cpu.weight")),
            weight_from_shares(512).to_string()
        );
        assert_eq!(read(&pod_dir.join("pids.max")), "128");

        let pause = pod
            .create_leaf("pause", &Limits::default(), Devices::Allowlist)
            .unwrap();
        let app = pod
            .create_leaf("ctr-app", &app_limits(), Devices::Allowlist)
            .unwrap();
        let app_dir = dir(&app.relative_path());
        assert_eq!(read(&app_dir.join("memory.max")), "67108864");
        assert_eq!(read(&app_dir.join("cpu.max")), "25000 100000");
        assert_eq!(read(&app_dir.join("cpu.weight")), "10");
        assert_eq!(read(&app_dir.join("pids.max")), "64");
        assert_eq!(app.read_limits().unwrap().memory_bytes, Some(64 * MI));

        let mut child = Reap(Command::new("sleep").arg("30").spawn().unwrap());
        let pid = i32::try_from(child.0.id()).unwrap();
        app.add_process(pid).unwrap();
        assert_eq!(app.procs().unwrap(), vec![pid]);
        assert!(pause.procs().unwrap().is_empty());
        // No process in an inner node: the kernel refuses it once the
        // pod delegates controllers, and podlab never tries.
        assert_eq!(read(&pod_dir.join("cgroup.procs")), "");
        assert_eq!(
            read(Path::new(&format!("/proc/{pid}/cgroup"))),
            format!("0::/{}", app.relative_path())
        );
        assert!(m.list_pods().unwrap().contains(&uid));

        pod.destroy().unwrap();
        assert_eq!(
            ended(&mut child, Duration::from_secs(5)).signal(),
            Some(libc::SIGKILL)
        );
        assert!(!pod_dir.exists(), "{} survived destroy", pod_dir.display());
        assert!(!m.list_pods().unwrap().contains(&uid));
        pod.destroy().unwrap(); // idempotent
        drop(guard);
    }

    /// The OOM killer's kill of any process of a leaf is counted, not only
    /// of its first: here the shell's child, as in LIFE-009.
    #[test]
    #[ignore = "needs root on a cgroup v2 host: run by `cargo xtask vm`"]
    fn an_oom_kill_of_a_child_is_counted_from_memory_events() {
        use std::io::Write;
        let m = host();
        let uid = unique_uid("v2oom");
        let pod = m.create_pod(&uid, &Limits::default()).unwrap();
        let _guard = Cleanup(pod.clone());
        let limits = Limits {
            memory_bytes: Some(32 * MI),
            ..Limits::default()
        };
        let app = pod
            .create_leaf("ctr-app", &limits, Devices::Allowlist)
            .unwrap();
        assert_eq!(app.oom_kill_count().unwrap(), 0);
        // `tail` keeps every byte of a file without newlines.
        let mut child = Reap(
            Command::new("sh")
                .arg("-c")
                .arg("read go; head -c 150000000 /dev/zero | tail > /dev/null; echo shell-lived")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        app.add_process(i32::try_from(child.0.id()).unwrap())
            .unwrap();
        writeln!(child.0.stdin.take().unwrap(), "go").unwrap();
        ended(&mut child, Duration::from_secs(60));
        assert!(
            app.oom_kill_count().unwrap() >= 1,
            "no oom_kill in memory.events"
        );
        let mut out = String::new();
        std::io::Read::read_to_string(&mut child.0.stdout.take().unwrap(), &mut out).unwrap();
        assert_eq!(
            out.trim(),
            "shell-lived",
            "the shell itself was not the one killed"
        );
        pod.destroy().unwrap();
    }

    #[test]
    #[ignore = "needs root on a cgroup v2 host: run by `cargo xtask vm`"]
    fn a_process_in_a_leaf_opens_only_the_allowed_devices() {
        let m = host();
        let uid = unique_uid("v2dev");
        let pod = m.create_pod(&uid, &Limits::default()).unwrap();
        let _guard = Cleanup(pod.clone());
        let app = pod
            .create_leaf("ctr-app", &Limits::default(), Devices::Allowlist)
            .unwrap();
        let privileged = pod
            .create_leaf("ctr-priv", &Limits::default(), Devices::All)
            .unwrap();
        // /dev/mem and /dev/tty1 exist on every kernel with a console.
        let wanted = [
            "/dev/null",
            "/dev/zero",
            "/dev/urandom",
            "/dev/tty1",
            "/dev/mem",
        ];
        let got = opens_in(&app, &wanted);
        let want: Vec<(String, bool)> = wanted
            .iter()
            .map(|d| (d.to_string(), !d.contains("tty1") && !d.contains("mem")))
            .collect();
        assert_eq!(got, want, "true = opened");
        let got = opens_in(&privileged, &wanted);
        assert!(got.iter().all(|(_, opened)| *opened), "privileged: {got:?}");
        pod.destroy().unwrap();
    }

    #[test]
    #[ignore = "needs root on a cgroup v2 host: run by `cargo xtask vm`"]
    fn a_quota_below_the_kernel_minimum_fails_and_leaves_no_leaf() {
        let m = host();
        let uid = unique_uid("v2refuse");
        let pod = m.create_pod(&uid, &Limits::default()).unwrap();
        let _guard = Cleanup(pod.clone());
        let too_small = Limits {
            cpu_quota_us: Some(500),
            cpu_period_us: Some(100_000),
            ..Limits::default()
        };
        let err = pod
            .create_leaf("ctr-small", &too_small, Devices::Allowlist)
            .unwrap_err();
        assert!(matches!(err, Error::Cgroups { .. }), "{err}");
        assert!(!pod.leaf("ctr-small").exists());
        pod.destroy().unwrap();
        assert!(!dir(&pod.relative_path()).exists());
    }
}

/// `top` reads the same numbers the kubelet does, from either version's files.
#[rstest]
#[case::v1(Mode::V1)]
#[case::v2(Mode::V2)]
fn usage_is_cpu_time_and_working_set(#[case] mode: Mode) {
    let (_dir, m) = fixture(mode);
    let pod = m.create_pod("u1", &Limits::default()).unwrap();
    let leaf = pod
        .create_leaf("ctr-app", &app_limits(), Devices::Allowlist)
        .unwrap();
    // What the kernel would report; a fixture tree holds plain files.
    let write = |ctl: &str, file: &str, text: &str| {
        let dir = match mode {
            Mode::V2 => m.root().join(leaf.relative_path()),
            Mode::V1 => m.root().join(ctl).join(leaf.relative_path()),
        };
        fs::write(dir.join(file), text).unwrap();
    };
    match mode {
        Mode::V1 => {
            write("cpuacct", "cpuacct.usage", "1500000000\n");
            write("memory", "memory.usage_in_bytes", &format!("{}\n", 10 * MI));
            write(
                "memory",
                "memory.stat",
                &format!("cache 1\ntotal_inactive_file {}\n", 2 * MI),
            );
        }
        Mode::V2 => {
            write("", "cpu.stat", "usage_usec 1500000\nuser_usec 1000000\n");
            write("", "memory.current", &format!("{}\n", 10 * MI));
            write(
                "",
                "memory.stat",
                &format!("anon 5\ninactive_file {}\n", 2 * MI),
            );
        }
    }
    assert_eq!(
        leaf.usage().unwrap(),
        Usage {
            cpu_ns: 1_500_000_000,
            working_set_bytes: 8 * MI as u64
        }
    );
    write(
        if mode == Mode::V1 { "memory" } else { "" },
        "memory.stat",
        "nothing 0\n",
    );
    assert!(matches!(leaf.usage(), Err(Error::Parse { .. })));
}
