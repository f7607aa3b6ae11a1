//! The CNI client: attaches a pod's network namespace to a network by
//! executing CNI plugins (spec 1.0.0) the way kubelet/containerd do.
//!
//! ADD runs the `loopback` plugin on `lo` (containerd's first network), then
//! the network's plugin chain in order, each fed the previous plugin's
//! result; DEL runs the chain in reverse with the result cached at ADD.
//! Every call is a separate process with a cleared environment (PATH and the
//! `CNI_*` variables only) and the plugin's config on stdin.
//!
//! The cache (`cache_dir/<network>:<container>:<ifname>.json`) is written
//! *before* ADD starts and removed only after a clean DEL, so a shim that
//! dies mid-ADD still leaves `podlab gc` a record of what to DEL.

mod config;
mod exec;
mod result;

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub use config::Network;
pub use result::Attachment;

use config::{plugin_type, validate_container_id, validate_ifname};

/// The spec version podlab writes into the configs it generates.
pub const CNI_VERSION: &str = "1.0.0";
/// Where Debian's containernetworking-plugins installs, then the upstream
/// tarball's conventional directory.
pub const DEFAULT_PLUGIN_DIRS: [&str; 2] = ["/usr/lib/cni", "/opt/cni/bin"];
pub const DEFAULT_NETWORK_NAME: &str = "podlab";
pub const DEFAULT_BRIDGE: &str = "podlab0";
pub const DEFAULT_SUBNET: &str = "10.89.0.0/16";
/// One lease directory for the whole host: every podlab state root attaches
/// to the same bridge and subnet, so they must draw from one lease pool.
/// Under /run because leases die with the veths and netns at reboot.
pub const HOST_IPAM_DIR: &str = "/run/podlab-cni/ipam";
/// Result cache of a network loaded with [`Cni::from_conf_dir`], until the
/// caller points `cache_dir` into its state root.
pub const DEFAULT_CACHE_DIR: &str = "/run/podlab-cni/cache";
/// kubelet's default runtime request timeout is 2 minutes; a plugin call is
/// a small part of a sandbox start.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

const PACKAGE_HINT: &str = "install the Debian package containernetworking-plugins";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "CNI plugin {plugin:?} not found in {}: {PACKAGE_HINT}",
        display_dirs(.searched)
    )]
    PluginNotFound {
        plugin: String,
        searched: Vec<PathBuf>,
    },
    #[error(
        "CNI plugin {plugin} {command} failed{}: {msg}{}",
        .code.map(|c| format!(" (code {c})")).unwrap_or_default(),
        if .details.is_empty() { String::new() } else { format!(" ({})", .details) }
    )]
    Plugin {
        plugin: String,
        command: &'static str,
        code: Option<u32>,
        msg: String,
        details: String,
    },
    #[error("CNI plugin {plugin} {command} printed an unusable result: {reason}")]
    InvalidResult {
        plugin: String,
        command: &'static str,
        reason: String,
    },
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("CNI config {origin}: {reason}")]
    Config { origin: String, reason: String },
    /// ADD failed and undoing it failed too: something may remain attached;
    /// the cache record stays so a later DEL (gc) can finish the job.
    #[error(
        "{}; undoing the partial attachment failed too: {}",
        crate::error::chain(add),
        crate::error::chain(del)
    )]
    Rollback { add: Box<Error>, del: Box<Error> },
}

fn display_dirs(dirs: &[PathBuf]) -> String {
    let list: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    if list.is_empty() {
        "(no plugin directories configured)".into()
    } else {
        list.join(", ")
    }
}

/// A network and how to reach its plugins.
#[derive(Debug, Clone)]
pub struct Cni {
    /// Searched in order for each plugin `type` (also passed as CNI_PATH).
    pub plugin_dirs: Vec<PathBuf>,
    pub network: Network,
    /// Where the ADD results are kept for DEL (like libcni's /var/lib/cni).
    pub cache_dir: PathBuf,
    /// Per plugin call; a plugin still running then is killed.
    pub timeout: Duration,
    /// What ADD passes as `runtimeConfig` (`portMappings`) to the plugins
    /// that declare the capability; kept in the cache record for DEL.
    pub runtime_config: Option<Value>,
}

/// A cache record: what was attached, found by `podlab gc` when the shim
/// that attached it is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedAttachment {
    pub container_id: String,
    pub ifname: String,
    pub netns: PathBuf,
    /// False while ADD runs, or when a failed ADD could not be undone.
    pub complete: bool,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CacheRecord {
    kind: String,
    network_name: String,
    container_id: String,
    if_name: String,
    netns: PathBuf,
    /// The final result of the chain; None until ADD completed.
    result: Option<Value>,
    /// The runtimeConfig of the ADD: portmap needs it again to DEL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    runtime_config: Option<Value>,
}

const CACHE_KIND: &str = "podlabCniCacheV1";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Command {
    Add,
    Del,
}

impl Command {
    fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
        }
    }
}

/// The per-call environment of one attachment.
struct Call<'a> {
    container_id: &'a str,
    netns: &'a OsStr,
    ifname: &'a str,
}

impl Cni {
    /// A client for `network`, with the default plugin directories and timeout.
    pub fn new(network: Network, cache_dir: PathBuf) -> Cni {
        Cni {
            plugin_dirs: DEFAULT_PLUGIN_DIRS.iter().map(PathBuf::from).collect(),
            network,
            cache_dir,
            timeout: DEFAULT_TIMEOUT,
            runtime_config: None,
        }
    }

    /// podlab's default network. The conflist is written on first use to
    /// `<state_root>/cni/net.d/podlab.conflist`; an existing file is used as
    /// it is (an operator may have edited it). Results are cached in
    /// `<state_root>/cni/cache`.
    pub fn default_network(state_root: &Path, ipam_dir: &Path, subnet: &str) -> Result<Cni, Error> {
        let path = state_root.join("cni/net.d/podlab.conflist");
        let network = match fs::read(&path) {
            Ok(bytes) => {
                let found = Network::from_conflist(&bytes, &path.display().to_string())?;
                // A file written by a podlab before hostPort (bridge alone, as
                // generated) gets the portmap plugin; an edited one stays.
                let fresh =
                    Network::bridge(DEFAULT_NETWORK_NAME, DEFAULT_BRIDGE, subnet, ipam_dir)?;
                if found.name == fresh.name
                    && found.plugins.len() == 1
                    && found.plugins.first() == fresh.plugins.first()
                {
                    let text = serde_json::to_string_pretty(&fresh.to_conflist())
                        .map_err(|e| config::config("generated", &crate::error::chain(&e)))?;
                    write_atomic(&path, text.as_bytes())?;
                    Network {
                        origin: path.display().to_string(),
                        ..fresh
                    }
                } else {
                    found
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let network =
                    Network::bridge(DEFAULT_NETWORK_NAME, DEFAULT_BRIDGE, subnet, ipam_dir)?;
                let text = serde_json::to_string_pretty(&network.to_conflist())
                    .map_err(|e| config::config("generated", &crate::error::chain(&e)))?;
                write_atomic(&path, text.as_bytes())?;
                Network {
                    origin: path.display().to_string(),
                    ..network
                }
            }
            Err(source) => {
                return Err(Error::Io {
                    op: "read",
                    path,
                    source,
                })
            }
        };
        Ok(Cni::new(network, state_root.join("cni/cache")))
    }

    /// A user's own network, chosen like kubelet/libcni: the first file in
    /// lexical order among `*.conflist`, `*.conf` and `*.json` in `conf_dir`
    /// that parses (`.conf`/`.json` are wrapped into a one-plugin list);
    /// files that do not parse are skipped. The cache defaults to
    /// `/run/podlab-cni/cache`: a caller with a state root should point
    /// `cache_dir` into it.
    pub fn from_conf_dir(conf_dir: &Path) -> Result<Cni, Error> {
        let entries = fs::read_dir(conf_dir).map_err(|source| Error::Io {
            op: "read directory",
            path: conf_dir.to_path_buf(),
            source,
        })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("conflist" | "conf" | "json")
                ) && p.is_file()
            })
            .collect();
        files.sort();
        let mut skipped = Vec::new();
        for file in &files {
            match Network::load(file) {
                Ok(network) => return Ok(Cni::new(network, PathBuf::from(DEFAULT_CACHE_DIR))),
                Err(e) => skipped.push(crate::error::chain(&e)),
            }
        }
        let reason = if skipped.is_empty() {
            "no *.conflist, *.conf or *.json file".to_string()
        } else {
            format!("no usable network config: {}", skipped.join("; "))
        };
        Err(Error::Config {
            origin: conf_dir.display().to_string(),
            reason,
        })
    }

    /// The executable for plugin `plugin`: the first regular, executable
    /// file of that name in `plugin_dirs`.
    pub fn find_plugin(&self, plugin: &str) -> Result<PathBuf, Error> {
        let plain = !plugin.is_empty() && !plugin.contains('/') && plugin != "." && plugin != "..";
        if plain {
            for dir in &self.plugin_dirs {
                let path = dir.join(plugin);
                let executable = fs::metadata(&path)
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
                if executable {
                    return Ok(path);
                }
            }
        }
        Err(Error::PluginNotFound {
            plugin: plugin.to_string(),
            searched: self.plugin_dirs.clone(),
        })
    }

    /// Attaches `netns` to the network: `lo` up through `loopback`, then
    /// the chain on `ifname`. Every plugin is looked up before anything
    /// runs. If a plugin fails, DEL runs for it and for the ones before it
    /// (in reverse, with the last good result), so nothing stays half
    /// attached; the error names the plugin and carries its code, msg and
    /// details. `lo` stays up then: it is confined to the netns, and the
    /// pause brought it up anyway.
    pub fn add(&self, container_id: &str, netns: &Path, ifname: &str) -> Result<Attachment, Error> {
        self.validate_call(container_id, ifname)?;
        let loopback = self.find_plugin("loopback")?;
        let chain = self.resolve_chain()?;

        let mut record = CacheRecord {
            kind: CACHE_KIND.into(),
            network_name: self.network.name.clone(),
            container_id: container_id.into(),
            if_name: ifname.into(),
            netns: netns.to_path_buf(),
            result: None,
            runtime_config: self.runtime_config.clone(),
        };
        self.write_cache(&record)?;

        let lo = Call {
            container_id,
            netns: netns.as_os_str(),
            ifname: "lo",
        };
        let lo_conf =
            json!({"cniVersion": CNI_VERSION, "name": "cni-loopback", "type": "loopback"});
        let lo_up =
            crate::mutants::Mutant::from_env() != Some(crate::mutants::Mutant::LoopbackDown);
        let added = if lo_up {
            self.exec(&loopback, "loopback", Command::Add, &lo, &lo_conf)
        } else {
            Ok(Vec::new())
        };
        if let Err(e) = added {
            // Nothing but (maybe) lo was touched: no record needed. Should
            // removing it fail, gc finds a harmless pending record.
            let _ = self.remove_cache(container_id, ifname);
            return Err(e);
        }

        let call = Call {
            container_id,
            netns: netns.as_os_str(),
            ifname,
        };
        let mut prev: Option<Value> = None;
        for (i, (plugin, path)) in chain.iter().enumerate() {
            let conf =
                self.network
                    .plugin_config_with(i, prev.as_ref(), self.runtime_config.as_ref());
            let outcome = self
                .exec(path, plugin, Command::Add, &call, &conf)
                .and_then(|stdout| parse_result(plugin, &stdout));
            match outcome {
                Ok(result) => prev = Some(result),
                Err(e) => return Err(self.rollback(&chain, i, prev.as_ref(), &call, e)),
            }
        }
        // The chain is never empty (Network validates it), so there is a result.
        let result = prev.unwrap_or(Value::Null);
        let attachment = match result::attachment_from_result(&result, ifname) {
            Ok(a) => a,
            Err(reason) => {
                let (last, _) = &chain[chain.len() - 1];
                let err = Error::InvalidResult {
                    plugin: last.clone(),
                    command: "ADD",
                    reason,
                };
                return Err(self.rollback(&chain, chain.len() - 1, Some(&result), &call, err));
            }
        };
        record.result = Some(result);
        if let Err(e) = self.write_cache(&record) {
            // Without the result DEL would lack prevResult: undo now instead.
            let last = chain.len() - 1;
            return Err(self.rollback(&chain, last, record.result.as_ref(), &call, e));
        }
        Ok(attachment)
    }

    /// Detaches: the chain in reverse with the cached result as
    /// `prevResult`, then `loopback`. Idempotent, as the spec requires of
    /// DEL: a missing netns is passed as an empty CNI_NETNS (plugins then
    /// skip the in-namespace part), a missing cache just means no
    /// `prevResult`, and plugins tolerate released leases and gone veths.
    /// Every plugin is tried even after one fails; the first error is
    /// returned and the cache record kept for a retry.
    pub fn del(&self, container_id: &str, netns: &Path, ifname: &str) -> Result<(), Error> {
        self.validate_call(container_id, ifname)?;
        // A corrupt record must not block cleanup: DEL without prevResult.
        let record = self.read_cache(container_id, ifname).ok().flatten();
        let runtime = record.as_ref().and_then(|r| r.runtime_config.clone());
        let prev = record.and_then(|r| r.result);
        let live = is_netns(netns);
        let netns_env: &OsStr = if live {
            netns.as_os_str()
        } else {
            OsStr::new("")
        };
        let call = Call {
            container_id,
            netns: netns_env,
            ifname,
        };
        let mut first_err = None;
        for i in (0..self.network.plugins.len()).rev() {
            let plugin = plugin_type(&self.network.plugins[i]).unwrap_or_default();
            let conf = self
                .network
                .plugin_config_with(i, prev.as_ref(), runtime.as_ref());
            let done = self
                .find_plugin(plugin)
                .and_then(|path| self.exec(&path, plugin, Command::Del, &call, &conf));
            if let Err(e) = done {
                first_err.get_or_insert(e);
            }
        }
        // Without a netns there is no lo to take down: skip the process.
        if live {
            let lo = Call {
                container_id,
                netns: netns_env,
                ifname: "lo",
            };
            let lo_conf =
                json!({"cniVersion": CNI_VERSION, "name": "cni-loopback", "type": "loopback"});
            let done = self
                .find_plugin("loopback")
                .and_then(|path| self.exec(&path, "loopback", Command::Del, &lo, &lo_conf));
            if let Err(e) = done {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => self.remove_cache(container_id, ifname),
        }
    }

    /// The final ADD result recorded for an attachment, if it completed.
    pub fn cached_result(&self, container_id: &str, ifname: &str) -> Result<Option<Value>, Error> {
        Ok(self
            .read_cache(container_id, ifname)?
            .and_then(|record| record.result))
    }

    /// The attachments of this network that have a cache record: what a
    /// garbage collector should DEL when their pods are gone.
    pub fn cached(&self) -> Result<Vec<CachedAttachment>, Error> {
        let entries = match fs::read_dir(&self.cache_dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(Error::Io {
                    op: "read directory",
                    path: self.cache_dir.clone(),
                    source,
                })
            }
        };
        let prefix = format!("{}:", self.network.name);
        let mut out = Vec::new();
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if !name.starts_with(&prefix) || !name.ends_with(".json") {
                continue;
            }
            let Ok(bytes) = fs::read(entry.path()) else {
                continue;
            };
            if let Ok(r) = serde_json::from_slice::<CacheRecord>(&bytes) {
                out.push(CachedAttachment {
                    container_id: r.container_id,
                    ifname: r.if_name,
                    netns: r.netns,
                    complete: r.result.is_some(),
                });
            }
        }
        out.sort_by(|a, b| (&a.container_id, &a.ifname).cmp(&(&b.container_id, &b.ifname)));
        Ok(out)
    }

    fn validate_call(&self, container_id: &str, ifname: &str) -> Result<(), Error> {
        validate_container_id(container_id)
            .and_then(|()| validate_ifname(ifname))
            .map_err(|reason| config::config(&self.network.origin, &reason))
    }

    fn resolve_chain(&self) -> Result<Vec<(String, PathBuf)>, Error> {
        // Parsed networks never have an empty chain, but the field is public.
        if self.network.plugins.is_empty() {
            return Err(config::config(
                &self.network.origin,
                "the network has no plugins",
            ));
        }
        self.network
            .plugins
            .iter()
            .map(|p| {
                let plugin =
                    plugin_type(p).map_err(|r| config::config(&self.network.origin, &r))?;
                Ok((plugin.to_string(), self.find_plugin(plugin)?))
            })
            .collect()
    }

    /// Undoes a failed ADD: DEL for plugins `0..=failed` in reverse. The
    /// failing plugin is included because it may have done part of its work
    /// (bridge creates the veth before asking IPAM for an address).
    fn rollback(
        &self,
        chain: &[(String, PathBuf)],
        failed: usize,
        prev: Option<&Value>,
        call: &Call<'_>,
        add_err: Error,
    ) -> Error {
        let mut del_err = None;
        for i in (0..=failed).rev() {
            let (plugin, path) = &chain[i];
            let conf = self
                .network
                .plugin_config_with(i, prev, self.runtime_config.as_ref());
            if let Err(e) = self.exec(path, plugin, Command::Del, call, &conf) {
                del_err.get_or_insert(e);
            }
        }
        match del_err {
            None => match self.remove_cache(call.container_id, call.ifname) {
                Ok(()) => add_err,
                Err(e) => Error::Rollback {
                    add: Box::new(add_err),
                    del: Box::new(e),
                },
            },
            Some(e) => Error::Rollback {
                add: Box::new(add_err),
                del: Box::new(e),
            },
        }
    }

    /// One plugin call; returns its stdout when it exits 0.
    fn exec(
        &self,
        path: &Path,
        plugin: &str,
        command: Command,
        call: &Call<'_>,
        conf: &Value,
    ) -> Result<Vec<u8>, Error> {
        let cni_path = std::env::join_paths(&self.plugin_dirs).map_err(|e| {
            config::config(
                &self.network.origin,
                &format!("plugin directories: {}", crate::error::chain(&e)),
            )
        })?;
        let path_var = std::env::var_os("PATH").unwrap_or_else(|| {
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()
        });
        let env: [(&str, OsString); 6] = [
            ("PATH", path_var),
            ("CNI_COMMAND", command.as_str().into()),
            ("CNI_CONTAINERID", call.container_id.into()),
            ("CNI_NETNS", call.netns.to_os_string()),
            ("CNI_IFNAME", call.ifname.into()),
            ("CNI_PATH", cni_path),
        ];
        let input = conf.to_string();
        let outcome =
            exec::run(path, &env, input.as_bytes(), self.timeout).map_err(|source| Error::Io {
                op: "execute",
                path: path.to_path_buf(),
                source,
            })?;
        let out = match outcome {
            exec::Outcome::Exited(out) => out,
            exec::Outcome::TimedOut => {
                return Err(Error::Plugin {
                    plugin: plugin.to_string(),
                    command: command.as_str(),
                    code: None,
                    msg: format!("no answer within {:?}; killed", self.timeout),
                    details: String::new(),
                })
            }
        };
        if out.status.success() {
            return Ok(out.stdout);
        }
        let err = result::plugin_error(&out.stdout, &out.stderr);
        Err(Error::Plugin {
            plugin: plugin.to_string(),
            command: command.as_str(),
            code: err.code,
            msg: err.msg,
            details: err.details,
        })
    }

    fn cache_path(&self, container_id: &str, ifname: &str) -> PathBuf {
        // ':' appears in none of the three (all validated), so the name is
        // unambiguous.
        self.cache_dir.join(format!(
            "{}:{container_id}:{ifname}.json",
            self.network.name
        ))
    }

    fn write_cache(&self, record: &CacheRecord) -> Result<(), Error> {
        let path = self.cache_path(&record.container_id, &record.if_name);
        let bytes = serde_json::to_vec_pretty(record)
            .map_err(|e| config::config(&self.network.origin, &crate::error::chain(&e)))?;
        write_atomic(&path, &bytes)
    }

    fn read_cache(&self, container_id: &str, ifname: &str) -> Result<Option<CacheRecord>, Error> {
        let path = self.cache_path(container_id, ifname);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| config::config(&path.display().to_string(), &crate::error::chain(&e))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Io {
                op: "read",
                path,
                source,
            }),
        }
    }

    fn remove_cache(&self, container_id: &str, ifname: &str) -> Result<(), Error> {
        let path = self.cache_path(container_id, ifname);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(Error::Io {
                op: "remove",
                path,
                source,
            }),
        }
    }
}

fn parse_result(plugin: &str, stdout: &[u8]) -> Result<Value, Error> {
    let invalid = |reason: String| Error::InvalidResult {
        plugin: plugin.to_string(),
        command: "ADD",
        reason,
    };
    match serde_json::from_slice::<Value>(stdout) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(invalid("not a JSON object".into())),
        Err(e) => Err(invalid(format!(
            "{e}: {:?}",
            String::from_utf8_lossy(&stdout[..stdout.len().min(200)])
        ))),
    }
}

/// True when `path` is a network namespace handle (a bind-mounted nsfs
/// file like /run/netns/NAME, or /proc/PID/ns/net). A leftover empty file
/// whose mount is gone is not: plugins would fail to open it.
fn is_netns(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
}

/// Writes via a temporary file and rename, so concurrent readers (another
/// podlab process of the same root) never see half a file.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let io_err = |op, path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { op, path, source }
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
    }
    crate::atomic_file::write(path, bytes).map_err(io_err("write", path))
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod host_tests;
