//! Network configuration lists (`.conflist`), as CNI spec 1.0.0 defines
//! them: a named network and the chain of plugins attached in order.

use std::fs;
use std::net::IpAddr;
use std::path::Path;

use serde_json::{json, Map, Value};

use super::Error;

/// One network: a name, the spec version its plugins speak, and the plugin
/// chain. Plugin configs stay raw JSON because every plugin owns its own
/// schema; the runtime only reads `type` and injects `name`, `cniVersion`
/// and `prevResult`.
#[derive(Debug, Clone, PartialEq)]
pub struct Network {
    pub name: String,
    pub cni_version: String,
    pub plugins: Vec<Value>,
    /// Where the config came from (a path, or "generated"), for messages.
    pub origin: String,
}

impl Network {
    /// Parses a `.conflist` document.
    pub fn from_conflist(bytes: &[u8], origin: &str) -> Result<Network, Error> {
        let doc = parse_object(bytes, origin)?;
        let name = network_name(&doc, origin)?;
        let cni_version = cni_version(&doc, origin)?;
        let plugins = match doc.get("plugins") {
            Some(Value::Array(list)) if !list.is_empty() => list.clone(),
            Some(Value::Array(_)) => return Err(config(origin, "\"plugins\" is empty")),
            Some(_) => return Err(config(origin, "\"plugins\" must be an array")),
            None => return Err(config(origin, "missing \"plugins\"")),
        };
        for (i, plugin) in plugins.iter().enumerate() {
            plugin_type(plugin)
                .map_err(|reason| config(origin, &format!("plugin {i}: {reason}")))?;
        }
        Ok(Network {
            name,
            cni_version,
            plugins,
            origin: origin.to_string(),
        })
    }

    /// Parses a single-plugin `.conf` and wraps it into a one-element list,
    /// the way libcni turns an old-style config into a list.
    pub fn from_conf(bytes: &[u8], origin: &str) -> Result<Network, Error> {
        let doc = parse_object(bytes, origin)?;
        let name = network_name(&doc, origin)?;
        let cni_version = cni_version(&doc, origin)?;
        let plugin = Value::Object(doc);
        plugin_type(&plugin).map_err(|reason| config(origin, &reason))?;
        Ok(Network {
            name,
            cni_version,
            plugins: vec![plugin],
            origin: origin.to_string(),
        })
    }

    /// Loads a config file by its extension: `.conflist` is a list,
    /// `.conf` and `.json` are single plugins (libcni's convention).
    pub fn load(path: &Path) -> Result<Network, Error> {
        let origin = path.display().to_string();
        let bytes = fs::read(path).map_err(|source| Error::Io {
            op: "read",
            path: path.to_path_buf(),
            source,
        })?;
        match path.extension().and_then(|e| e.to_str()) {
            Some("conflist") => Network::from_conflist(&bytes, &origin),
            Some("conf") | Some("json") => Network::from_conf(&bytes, &origin),
            _ => Err(config(&origin, "not a .conflist, .conf or .json file")),
        }
    }

    /// A bridge network: every attachment gets a veth whose host end joins
    /// `bridge`; the bridge holds the gateway address, so the node reaches
    /// pods directly. No masquerade: pods see each other's real addresses.
    /// host-local hands out leases from `subnet` and keeps them in
    /// `ipam_dir/<name>/`.
    pub fn bridge(
        name: &str,
        bridge: &str,
        subnet: &str,
        ipam_dir: &Path,
    ) -> Result<Network, Error> {
        let origin = "generated";
        validate_network_name(name).map_err(|r| config(origin, &r))?;
        validate_ifname(bridge).map_err(|r| config(origin, &format!("bridge: {r}")))?;
        if let Err(reason) = parse_subnet(subnet) {
            return Err(config(origin, &format!("subnet {subnet:?}: {reason}")));
        }
        let ipam_dir = ipam_dir
            .to_str()
            .ok_or_else(|| config(origin, "the IPAM directory is not valid UTF-8"))?;
        let conflist = json!({
            "cniVersion": super::CNI_VERSION,
            "name": name,
            "plugins": [{
                "type": "bridge",
                "bridge": bridge,
                "isGateway": true,
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{ "subnet": subnet }]],
                    // No default route: pods reach each other and the node
                    // (the bridge is their gateway on-link), and nothing else,
                    // so no pod traffic is ever routed off this machine.
                    "dataDir": ipam_dir,
                },
            }, {
                // hostPort: DNAT from the node's own addresses to the pod,
                // given the pod's mappings in runtimeConfig (as libcni does).
                "type": "portmap",
                "capabilities": { "portMappings": true },
                "snat": true,
            }],
        });
        Network::from_conflist(conflist.to_string().as_bytes(), origin)
    }

    /// The `.conflist` document for this network.
    pub fn to_conflist(&self) -> Value {
        json!({
            "cniVersion": self.cni_version,
            "name": self.name,
            "plugins": self.plugins,
        })
    }

    /// The plugin types of the chain, in ADD order.
    pub fn plugin_types(&self) -> Vec<&str> {
        self.plugins
            .iter()
            .filter_map(|p| plugin_type(p).ok())
            .collect()
    }

    /// What plugin `index` reads on stdin: its own config with the list's
    /// `name` and `cniVersion` injected, plus `prevResult` when there is one.
    pub(crate) fn plugin_config(&self, index: usize, prev_result: Option<&Value>) -> Value {
        let mut conf = match self.plugins.get(index) {
            Some(Value::Object(map)) => map.clone(),
            _ => Map::new(),
        };
        conf.insert("name".into(), Value::String(self.name.clone()));
        conf.insert("cniVersion".into(), Value::String(self.cni_version.clone()));
        match prev_result {
            Some(prev) => conf.insert("prevResult".into(), prev.clone()),
            None => conf.remove("prevResult"),
        };
        Value::Object(conf)
    }

    /// [`Network::plugin_config`] plus `runtimeConfig`: only the keys of
    /// `runtime` the plugin declares in its `capabilities`, as libcni
    /// passes them (portmap gets `portMappings`, bridge nothing).
    pub(crate) fn plugin_config_with(
        &self,
        index: usize,
        prev_result: Option<&Value>,
        runtime: Option<&Value>,
    ) -> Value {
        let mut conf = self.plugin_config(index, prev_result);
        let wanted: Map<String, Value> = runtime
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter(|(k, _)| conf["capabilities"][k.as_str()] == Value::Bool(true))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let (Some(obj), false) = (conf.as_object_mut(), wanted.is_empty()) {
            obj.insert("runtimeConfig".into(), Value::Object(wanted));
        }
        conf
    }
}

/// The `type` of a plugin config: the executable's file name, so it must not
/// be able to name a path outside the plugin directories.
pub(crate) fn plugin_type(plugin: &Value) -> Result<&str, String> {
    let Some(obj) = plugin.as_object() else {
        return Err("a plugin config must be a JSON object".into());
    };
    match obj.get("type") {
        Some(Value::String(t)) if t.is_empty() => Err("\"type\" is empty".into()),
        Some(Value::String(t)) if t.contains('/') || t == "." || t == ".." => {
            Err(format!("\"type\" {t:?} is not a plain file name"))
        }
        Some(Value::String(t)) => Ok(t),
        Some(_) => Err("\"type\" must be a string".into()),
        None => Err("missing \"type\"".into()),
    }
}

/// CNI spec: network names match `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`.
pub(crate) fn validate_network_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) {
        Ok(())
    } else {
        Err(format!(
            "network name {name:?} must start with a letter or digit and hold only letters, digits, '_', '.', '-'"
        ))
    }
}

/// CNI spec: container ids are non-empty and hold letters, digits, '_', '.', '-'.
pub(crate) fn validate_container_id(id: &str) -> Result<(), String> {
    if !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    {
        Ok(())
    } else {
        Err(format!(
            "container id {id:?} must be non-empty and hold only letters, digits, '_', '.', '-'"
        ))
    }
}

/// CNI spec (Linux interface names): 1 to 15 bytes, not "." or "..", no '/',
/// ':' or whitespace.
pub(crate) fn validate_ifname(name: &str) -> Result<(), String> {
    let bad_char = name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace());
    if name.is_empty() || name.len() > 15 || name == "." || name == ".." || bad_char {
        Err(format!(
            "interface name {name:?} must be 1 to 15 bytes without '/', ':' or whitespace"
        ))
    } else {
        Ok(())
    }
}

/// Parses "address/prefix"; returns the address so callers know the family.
/// IPv4 needs a prefix of at most 30: room for a gateway and one pod.
fn parse_subnet(subnet: &str) -> Result<IpAddr, String> {
    let (addr, prefix) = subnet
        .split_once('/')
        .ok_or("expected address/prefix, like 10.89.0.0/16")?;
    let addr: IpAddr = addr.parse().map_err(|_| "invalid address".to_string())?;
    let prefix: u8 = prefix
        .parse()
        .map_err(|_| "invalid prefix length".to_string())?;
    let max = if addr.is_ipv4() { 30 } else { 126 };
    if prefix > max {
        return Err(format!(
            "prefix /{prefix} leaves no room for pods (at most /{max})"
        ));
    }
    Ok(addr)
}

fn parse_object(bytes: &[u8], origin: &str) -> Result<Map<String, Value>, Error> {
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(config(origin, "expected a JSON object")),
        Err(e) => Err(config(origin, &format!("invalid JSON: {e}"))),
    }
}

fn network_name(doc: &Map<String, Value>, origin: &str) -> Result<String, Error> {
    match doc.get("name") {
        Some(Value::String(name)) => {
            validate_network_name(name).map_err(|r| config(origin, &r))?;
            Ok(name.clone())
        }
        Some(_) => Err(config(origin, "\"name\" must be a string")),
        None => Err(config(origin, "missing \"name\"")),
    }
}

/// A missing `cniVersion` means 0.1.0, the version before the field existed
/// (what the plugins' own decoder assumes).
fn cni_version(doc: &Map<String, Value>, origin: &str) -> Result<String, Error> {
    match doc.get("cniVersion") {
        Some(Value::String(v)) if !v.is_empty() => Ok(v.clone()),
        Some(Value::String(_)) | None => Ok("0.1.0".into()),
        Some(_) => Err(config(origin, "\"cniVersion\" must be a string")),
    }
}

pub(crate) fn config(origin: &str, reason: &str) -> Error {
    Error::Config {
        origin: origin.to_string(),
        reason: reason.to_string(),
    }
}
