//! What the adapter learns from the runtime before its first pod, as a
//! kubelet does at start: where the runtime listens, which cgroup driver
//! it uses (the pod's cgroup parent must be in that driver's form: a
//! systemd runtime refuses a cgroupfs path and the reverse), and a name
//! for the run that tells two CRI runtimes apart in the reports.
//!
//! Pure functions over the runtime's replies, so each choice is unit-tested
//! against recorded replies of runtimes this machine does not run.

use std::path::PathBuf;

use k8s_cri::v1 as cri;

/// A CRI endpoint as kubelet's `--container-runtime-endpoint` and crictl
/// take it: `unix:///run/containerd/containerd.sock` or a plain path.
pub fn endpoint(address: &str) -> Result<PathBuf, String> {
    let path = match address.split_once("://") {
        None => address,
        Some(("unix", path)) => path,
        Some((scheme, _)) => {
            return Err(format!(
                "CRI endpoint {address:?}: only unix sockets are supported (unix:///path or a path), not {scheme}://"
            ))
        }
    };
    if !path.starts_with('/') {
        return Err(format!(
            "CRI endpoint {address:?}: the socket path must be absolute"
        ));
    }
    Ok(PathBuf::from(path))
}

/// The cgroup driver the runtime manages its containers' cgroups with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CgroupDriver {
    /// Paths under each hierarchy, `/parent/child`.
    Cgroupfs,
    /// systemd slices, `parent-child.slice`, whose dashes nest.
    Systemd,
}

/// The driver from the RuntimeConfig reply. Runtimes older than that call
/// (containerd 1.6 answers Unimplemented: `None` here) leave the choice to
/// the kubelet's own configuration, whose default is cgroupfs.
pub fn cgroup_driver(reply: Option<&cri::RuntimeConfigResponse>) -> CgroupDriver {
    match reply.and_then(|r| r.linux.as_ref()) {
        Some(linux) if linux.cgroup_driver == cri::CgroupDriver::Systemd as i32 => {
            CgroupDriver::Systemd
        }
        Some(_) => CgroupDriver::Cgroupfs,
        None => CgroupDriver::Cgroupfs,
    }
}

/// Where the adapter's pods go: one parent for all of them (`root`), one
/// child per pod. `root` is a plain name such as "podlab-cri".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupLayout {
    pub driver: CgroupDriver,
    pub root: String,
}

impl CgroupLayout {
    /// The sandbox's `cgroup_parent`, in the driver's form.
    pub fn pod_parent(&self, uid: &str) -> String {
        match self.driver {
            CgroupDriver::Cgroupfs => format!("/{}/pod{uid}", self.root),
            // As the kubelet names pod slices: a dash nests, so the UID's
            // dashes become underscores.
            CgroupDriver::Systemd => {
                format!("{}-pod{}.slice", self.slice_prefix(), uid.replace('-', "_"))
            }
        }
    }

    fn slice_prefix(&self) -> String {
        self.root.replace('-', "_")
    }

    /// The directory of the common parent in one hierarchy, relative to
    /// the hierarchy's root.
    pub fn root_dir(&self) -> String {
        match self.driver {
            CgroupDriver::Cgroupfs => self.root.clone(),
            CgroupDriver::Systemd => format!("{}.slice", self.slice_prefix()),
        }
    }

    /// The pod's directory under [`root_dir`](Self::root_dir).
    pub fn pod_dir(&self, uid: &str) -> String {
        match self.driver {
            CgroupDriver::Cgroupfs => format!("pod{uid}"),
            CgroupDriver::Systemd => self.pod_parent(uid),
        }
    }
}

/// The handler the runtime runs pods with when RunPodSandbox names none:
/// containerd says it in the verbose Status (`info.config` →
/// `containerd.defaultRuntimeName`); other runtimes may not.
pub fn default_handler(status: Option<&cri::StatusResponse>) -> Option<String> {
    let config = status?.info.get("config")?;
    let config: serde_json::Value = serde_json::from_str(config).ok()?;
    config["containerd"]["defaultRuntimeName"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(String::from)
}

/// The run's name in reports and the name of its expectations file:
/// `cri-<runtime>-<handler>`, e.g. `cri-containerd-runc`, so two CRI
/// runtimes, or one with two handlers, never share either.
pub fn run_name(version: &cri::VersionResponse, handler: Option<&str>) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect::<String>()
            .trim_matches('-')
            .to_string()
    };
    let runtime = clean(&version.runtime_name);
    let runtime = if runtime.is_empty() {
        "unknown".into()
    } else {
        runtime
    };
    match handler.map(clean).filter(|h| !h.is_empty()) {
        Some(h) => format!("cri-{runtime}-{h}"),
        None => format!("cri-{runtime}-default"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_as_crictl_and_kubelet_write_them() {
        assert_eq!(
            endpoint("unix:///run/containerd/containerd.sock").unwrap(),
            PathBuf::from("/run/containerd/containerd.sock")
        );
        assert_eq!(
            endpoint("/var/run/crio/crio.sock").unwrap(),
            PathBuf::from("/var/run/crio/crio.sock")
        );
        let e = endpoint("tcp://127.0.0.1:1234").unwrap_err();
        assert!(
            e.contains("only unix sockets") && e.contains("tcp://"),
            "{e}"
        );
        assert!(endpoint("unix://relative.sock")
            .unwrap_err()
            .contains("absolute"));
    }

    /// Replies as runtimes send them: CRI-O and containerd 2 with
    /// `SystemdCgroup = true` say SYSTEMD (0, the proto default, so an
    /// empty `linux` means systemd too); containerd 1.6 has no such call.
    #[test]
    fn the_driver_follows_the_runtime_config_reply() {
        let reply = |driver: cri::CgroupDriver| cri::RuntimeConfigResponse {
            linux: Some(cri::LinuxRuntimeConfiguration {
                cgroup_driver: driver as i32,
            }),
        };
        assert_eq!(
            cgroup_driver(Some(&reply(cri::CgroupDriver::Systemd))),
            CgroupDriver::Systemd
        );
        assert_eq!(
            cgroup_driver(Some(&reply(cri::CgroupDriver::Cgroupfs))),
            CgroupDriver::Cgroupfs
        );
        let empty_linux = cri::RuntimeConfigResponse {
            linux: Some(cri::LinuxRuntimeConfiguration::default()),
        };
        assert_eq!(cgroup_driver(Some(&empty_linux)), CgroupDriver::Systemd);
        let no_linux = cri::RuntimeConfigResponse { linux: None };
        assert_eq!(cgroup_driver(Some(&no_linux)), CgroupDriver::Cgroupfs);
        assert_eq!(cgroup_driver(None), CgroupDriver::Cgroupfs);
    }

    #[test]
    fn each_driver_gets_the_parent_in_its_own_form() {
        let uid = "5f1c2b9e-0d4a-4c3e-9f61-2a7b8c9d0e1f";
        let fs = CgroupLayout {
            driver: CgroupDriver::Cgroupfs,
            root: "podlab-cri".into(),
        };
        assert_eq!(fs.pod_parent(uid), format!("/podlab-cri/pod{uid}"));
        assert_eq!(fs.root_dir(), "podlab-cri");
        assert_eq!(fs.pod_dir(uid), format!("pod{uid}"));
        let sd = CgroupLayout {
            driver: CgroupDriver::Systemd,
            root: "podlab-cri".into(),
        };
        let parent = sd.pod_parent(uid);
        assert_eq!(
            parent,
            "podlab_cri-pod5f1c2b9e_0d4a_4c3e_9f61_2a7b8c9d0e1f.slice"
        );
        // systemd nests by dashes: exactly one, between root and pod.
        assert_eq!(parent.matches('-').count(), 1, "{parent}");
        assert_eq!(sd.root_dir(), "podlab_cri.slice");
        assert_eq!(sd.pod_dir(uid), parent);
    }

    #[test]
    fn the_run_is_named_after_the_runtime_and_its_handler() {
        let version = cri::VersionResponse {
            version: "0.1.0".into(),
            runtime_name: "containerd".into(),
            runtime_version: "1.6.20~ds1".into(),
            runtime_api_version: "v1".into(),
        };
        assert_eq!(run_name(&version, Some("runc")), "cri-containerd-runc");
        assert_eq!(run_name(&version, Some("youki")), "cri-containerd-youki");
        assert_eq!(run_name(&version, None), "cri-containerd-default");
        let crio = cri::VersionResponse {
            runtime_name: "cri-o".into(),
            ..version
        };
        assert_eq!(run_name(&crio, Some("crun")), "cri-cri-o-crun");
    }

    /// containerd 1.6's verbose Status carries its CRI config as JSON.
    #[test]
    fn containerd_names_its_default_handler_in_the_verbose_status() {
        let mut status = cri::StatusResponse::default();
        status.info.insert(
            "config".into(),
            r#"{"containerd":{"snapshotter":"overlayfs","defaultRuntimeName":"runc","runtimes":{"runc":{"runtimeType":"io.containerd.runc.v2"}}}}"#.into(),
        );
        assert_eq!(default_handler(Some(&status)).as_deref(), Some("runc"));
        assert_eq!(default_handler(Some(&cri::StatusResponse::default())), None);
        assert_eq!(default_handler(None), None);
    }
}
