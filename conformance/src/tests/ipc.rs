//! IPC namespace and /dev/shm: shared by a pod's containers, private to the pod.

use serde_json::Value;

use super::util::same_namespace;
use crate::pods::{error_name, ok, PodGuard, PodManifest};
use crate::runtime::Runtime;
use crate::suite::{fail, skip, Check, Ctx, Outcome, TestCase};

pub const CASES: &[TestCase] = &[
    case!("IPC-001", shared_ipc_namespace,
        must: "All containers of a pod MUST be in the same IPC namespace.",
        method: "Compares the IPC namespace link (/proc/self/ns/ipc) in containers app and sidecar."),
    case!("IPC-002", shm_between_containers,
        must: "A SysV shared-memory segment created in one container of a pod MUST be attachable by its key in the pod's other containers, with its contents.",
        method: "Container app creates a segment under a random key and writes a random token into it; container sidecar attaches the segment by key and must read the token."),
    case!("IPC-003", msg_between_containers,
        must: "A message sent on a SysV message queue in one container of a pod MUST be received from that queue by key in the pod's other containers.",
        method: "Container app sends a random token on a queue with a random key; container sidecar receives from the queue with that key and must get the token."),
    case!("IPC-004", dev_shm_between_containers,
        must: "A file written to /dev/shm in one container of a pod MUST be readable in the pod's other containers.",
        method: "Container app writes a random token to a file in /dev/shm; container sidecar must read the token from the same path."),
    case!("IPC-005", shm_not_across_pods,
        must: "A SysV shared-memory segment created in one pod MUST NOT be visible in another pod.",
        method: "A container of one pod creates a segment under a random key; a container of a second pod looks the key up and must get ENOENT."),
    case!("IPC-006", msg_not_across_pods,
        must: "A SysV message queue created in one pod MUST NOT be visible in another pod.",
        method: "A container of one pod sends a message on a queue with a random key; a container of a second pod looks the queue up and must get ENOENT."),
    case!("IPC-007", dev_shm_not_across_pods,
        must: "A file written to /dev/shm in one pod MUST NOT be visible in another pod.",
        method: "A container of one pod writes a file in /dev/shm; a container of a second pod reads the same path and must get ENOENT."),
    case!("IPC-008", host_ipc_invisible,
        must: "SysV IPC objects created on the host MUST NOT be visible in a pod.",
        method: "The suite creates a shared-memory segment and a message queue on the host under random keys (removed afterwards), then a container looks both keys up and must get ENOENT. Skipped when pods do not run on the suite's kernel."),
];

/// One way for processes to share data through the IPC namespace or /dev/shm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mechanism {
    Shm,
    Msg,
    DevShm,
}

impl Mechanism {
    pub fn describe(self) -> &'static str {
        match self {
            Mechanism::Shm => "SysV shared-memory segment",
            Mechanism::Msg => "SysV message queue",
            Mechanism::DevShm => "/dev/shm file",
        }
    }

    fn path(key: i32) -> String {
        format!("/dev/shm/podlab-conformance-{key}")
    }

    /// How a diagnosis names the object: its key, or its path.
    pub fn object(self, key: i32) -> String {
        match self {
            Mechanism::DevShm => Self::path(key),
            _ => format!("key {key}"),
        }
    }

    /// Probe arguments that put `token` somewhere identified by `key`.
    pub fn create(self, key: i32, token: &str) -> Vec<String> {
        let k = key.to_string();
        let argv: Vec<&str> = match self {
            Mechanism::Shm => vec!["shm-create", "--key", &k, "--token", token],
            Mechanism::Msg => vec!["msg-send", "--key", &k, "--token", token],
            Mechanism::DevShm => return vec!["write-file".into(), Self::path(key), token.into()],
        };
        argv.into_iter().map(String::from).collect()
    }

    /// Probe arguments that read it back (`data` in the answer).
    pub fn read(self, key: i32) -> Vec<String> {
        let k = key.to_string();
        match self {
            Mechanism::Shm => vec!["shm-read".into(), "--key".into(), k],
            Mechanism::Msg => vec!["msg-recv".into(), "--key".into(), k],
            Mechanism::DevShm => vec!["read-file".into(), Self::path(key)],
        }
    }

    /// Probe arguments that remove it; None when the pod's end removes it.
    pub fn remove(self, key: i32) -> Option<Vec<String>> {
        let k = key.to_string();
        match self {
            Mechanism::Shm => Some(vec!["shm-rm".into(), "--key".into(), k]),
            Mechanism::Msg => Some(vec!["msg-rm".into(), "--key".into(), k]),
            Mechanism::DevShm => None,
        }
    }
}

fn probe(pod: &PodGuard, container: &str, argv: &[String]) -> Result<Value, Outcome> {
    let args: Vec<&str> = argv.iter().map(String::as_str).collect();
    pod.probe(container, &args)
}

/// Removes an IPC object when the test ends, even on failure: a runtime
/// that wrongly shares the host's IPC namespace would otherwise leak it.
struct Removal<'a, 'rt> {
    pod: &'a PodGuard<'rt>,
    container: &'static str,
    argv: Option<Vec<String>>,
}

impl Drop for Removal<'_, '_> {
    fn drop(&mut self) {
        if let Some(argv) = &self.argv {
            let _ = probe(self.pod, self.container, argv);
        }
    }
}

/// Creates the object in `container`, failing with the probe's answer.
fn create<'a, 'rt>(
    pod: &'a PodGuard<'rt>,
    container: &'static str,
    m: Mechanism,
    key: i32,
    token: &str,
) -> Result<Removal<'a, 'rt>, Outcome> {
    let v = probe(pod, container, &m.create(key, token))?;
    let removal = Removal {
        pod,
        container,
        argv: m.remove(key),
    };
    if !ok(&v) {
        return Err(fail(format!(
            "creating a {} ({}) in container {container} of pod {} failed: {v}",
            m.describe(),
            m.object(key),
            pod.name
        )));
    }
    Ok(removal)
}

fn shared_between_containers(rt: &dyn Runtime, ctx: &Ctx, m: Mechanism, prefix: &str) -> Check {
    let pod = PodGuard::start(
        rt,
        ctx,
        &PodManifest::sleepers(ctx, prefix, &["app", "sidecar"]),
    )?;
    let (key, token) = (ctx.ipc_key(), ctx.token());
    let _removal = create(&pod, "app", m, key, &token)?;
    let v = probe(&pod, "sidecar", &m.read(key))?;
    if !ok(&v) {
        return Err(fail(format!(
            "container sidecar of pod {} cannot find the {} ({}) container app created: {}; \
             the containers of a pod must share {}",
            pod.name,
            m.describe(),
            m.object(key),
            error_name(&v),
            if m == Mechanism::DevShm {
                "one /dev/shm"
            } else {
                "one IPC namespace"
            }
        )));
    }
    let data = v.get("data").and_then(Value::as_str).unwrap_or("");
    if data != token {
        return Err(fail(format!(
            "container sidecar of pod {} read {data:?} from the {} ({}) instead of the token {token:?} container app wrote",
            pod.name,
            m.describe(),
            m.object(key)
        )));
    }
    Ok(())
}

fn isolated_between_pods(rt: &dyn Runtime, ctx: &Ctx, m: Mechanism, prefix: &str) -> Check {
    let a = PodManifest::sleepers(ctx, prefix, &["app"]);
    let b = PodManifest::sleepers(ctx, &format!("{prefix}-other"), &["app"]);
    let pods = PodGuard::start_all(rt, ctx, &[&a, &b])?;
    let (key, token) = (ctx.ipc_key(), ctx.token());
    let _removal = create(&pods[0], "app", m, key, &token)?;
    let v = probe(&pods[1], "app", &m.read(key))?;
    if ok(&v) {
        return Err(fail(format!(
            "pod {} sees the {} ({}) created in pod {} (read {:?}): each pod needs its own {}",
            pods[1].name,
            m.describe(),
            m.object(key),
            pods[0].name,
            v.get("data").and_then(Value::as_str).unwrap_or(""),
            if m == Mechanism::DevShm {
                "/dev/shm"
            } else {
                "IPC namespace"
            }
        )));
    }
    if error_name(&v) != "ENOENT" {
        return Err(fail(format!(
            "looking up the {} ({}) of pod {} from pod {} gave {} instead of ENOENT ({v})",
            m.describe(),
            m.object(key),
            pods[0].name,
            pods[1].name,
            error_name(&v)
        )));
    }
    Ok(())
}

fn shared_ipc_namespace(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let pod = PodGuard::start(
        rt,
        ctx,
        &PodManifest::sleepers(ctx, "ipc-shared", &["app", "sidecar"]),
    )?;
    same_namespace(&pod, &["app", "sidecar"], "ipc", "IPC")
}

fn shm_between_containers(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    shared_between_containers(rt, ctx, Mechanism::Shm, "ipc-shm")
}

fn msg_between_containers(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    shared_between_containers(rt, ctx, Mechanism::Msg, "ipc-msg")
}

fn dev_shm_between_containers(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    shared_between_containers(rt, ctx, Mechanism::DevShm, "ipc-devshm")
}

fn shm_not_across_pods(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    isolated_between_pods(rt, ctx, Mechanism::Shm, "ipc-shm-iso")
}

fn msg_not_across_pods(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    isolated_between_pods(rt, ctx, Mechanism::Msg, "ipc-msg-iso")
}

fn dev_shm_not_across_pods(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    isolated_between_pods(rt, ctx, Mechanism::DevShm, "ipc-devshm-iso")
}

/// A SysV object this process created on the host; removed on drop.
pub(super) struct HostObject {
    kind: Mechanism,
    id: libc::c_int,
}

impl HostObject {
    /// Creates a fresh object under `key`; fails if the key is taken.
    fn create(kind: Mechanism, key: i32) -> std::io::Result<HostObject> {
        let flags = libc::IPC_CREAT | libc::IPC_EXCL | 0o600;
        // SAFETY: shmget/msgget take plain integers and touch no memory of ours.
        let id = unsafe {
            match kind {
                Mechanism::Shm => libc::shmget(key, 4096, flags),
                _ => libc::msgget(key, flags),
            }
        };
        if id < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(HostObject { kind, id })
    }
}

impl Drop for HostObject {
    fn drop(&mut self) {
        // SAFETY: IPC_RMID ignores the buffer argument, so null is allowed.
        unsafe {
            match self.kind {
                Mechanism::Shm => libc::shmctl(self.id, libc::IPC_RMID, std::ptr::null_mut()),
                _ => libc::msgctl(self.id, libc::IPC_RMID, std::ptr::null_mut()),
            };
        }
    }
}

/// Creates a host object under a random key not in use yet.
pub(super) fn host_object(ctx: &Ctx, kind: Mechanism) -> Result<(HostObject, i32), Outcome> {
    let mut last = None;
    for _ in 0..16 {
        let key = ctx.ipc_key();
        match HostObject::create(kind, key) {
            Ok(o) => return Ok((o, key)),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => last = Some(e),
            Err(e) => {
                return Err(skip(format!(
                    "cannot create a {} on the host: {e}",
                    kind.describe()
                )))
            }
        }
    }
    Err(skip(format!(
        "no free key for a {} on the host: {last:?}",
        kind.describe()
    )))
}

fn host_ipc_invisible(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    if !ctx.caps.same_kernel {
        return Err(skip(
            "the runtime's pods do not run on this suite's kernel, so it cannot create host IPC objects for them",
        ));
    }
    // Host objects first: they are removed after the pod (drop order).
    let (_shm, shm_key) = host_object(ctx, Mechanism::Shm)?;
    let (_msg, msg_key) = host_object(ctx, Mechanism::Msg)?;
    let pod = PodGuard::start(rt, ctx, &PodManifest::sleepers(ctx, "ipc-host", &["app"]))?;
    for (m, key) in [(Mechanism::Shm, shm_key), (Mechanism::Msg, msg_key)] {
        let v = probe(&pod, "app", &m.read(key))?;
        if ok(&v) || error_name(&v) != "ENOENT" {
            return Err(fail(format!(
                "container app of pod {} found the host's {} (key {key}): {v}; the pod must have its own IPC namespace",
                pod.name,
                m.describe()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(Mechanism::Shm, "shm-create", "shm-read", true)]
    #[case(Mechanism::Msg, "msg-send", "msg-recv", true)]
    #[case(Mechanism::DevShm, "write-file", "read-file", false)]
    fn each_mechanism_has_its_probe_commands(
        #[case] m: Mechanism,
        #[case] create: &str,
        #[case] read: &str,
        #[case] removable: bool,
    ) {
        let c = m.create(77, "tok");
        assert_eq!(c[0], create);
        assert!(c.contains(&"tok".to_string()));
        assert_eq!(m.read(77)[0], read);
        assert_eq!(m.remove(77).is_some(), removable);
        // Create and read name the same object.
        let key_or_path = |argv: &[String]| argv.iter().any(|a| a == "77" || a.ends_with("-77"));
        assert!(key_or_path(&c) && key_or_path(&m.read(77)));
    }

    #[rstest]
    #[case(Mechanism::Shm)]
    #[case(Mechanism::Msg)]
    fn host_objects_are_created_and_removed(#[case] kind: Mechanism) {
        let key = 0x5d0c_0000 + std::process::id() as i32 % 0xffff;
        let id = {
            let o = HostObject::create(kind, key).unwrap();
            assert!(HostObject::create(kind, key).is_err(), "IPC_EXCL");
            o.id
        };
        // SAFETY: looking the key up without IPC_CREAT only queries.
        let again = unsafe {
            match kind {
                Mechanism::Shm => libc::shmget(key, 0, 0),
                _ => libc::msgget(key, 0),
            }
        };
        assert_eq!(again, -1, "object {id} still exists after drop");
    }
}
