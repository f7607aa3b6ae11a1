//! What plugins print: the ADD result (the shape changed across spec
//! versions) and the error object of a failed call.

use std::net::IpAddr;

use serde_json::Value;

/// The pod's side of an attachment, taken from the final result of the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The interface inside the pod's netns (the `ifname` given to ADD).
    pub interface: String,
    /// Addresses without prefix ("10.89.0.5"), in result order: the first
    /// one is the pod's primary IP (`status.podIP`).
    pub ips: Vec<String>,
    /// The same addresses with their prefix ("10.89.0.5/16").
    pub cidrs: Vec<String>,
    pub gateway: Option<String>,
    pub mac: Option<String>,
}

struct Ip {
    cidr: String,
    gateway: Option<String>,
}

/// Reads the pod's addresses from a result. Results of 0.3.0 and later
/// (including 0.4.0's `"version": "4"` and 1.0.0) list `interfaces` and
/// `ips` whose `interface` field indexes into them; 0.1.0/0.2.0 have
/// `ip4`/`ip6` objects instead. Only addresses on `ifname` inside the
/// sandbox count: a bridge result also lists the bridge and the host veth.
pub fn attachment_from_result(result: &Value, ifname: &str) -> Result<Attachment, String> {
    let (ips, mac) = if result.get("ips").is_some() || result.get("interfaces").is_some() {
        current_shape(result, ifname)?
    } else {
        (legacy_shape(result)?, None)
    };
    if ips.is_empty() {
        return Err(format!("no IP address for interface {ifname}"));
    }
    let mut addresses = Vec::new();
    for ip in &ips {
        let (addr, prefix) = ip
            .cidr
            .split_once('/')
            .ok_or_else(|| format!("address {:?} has no prefix length", ip.cidr))?;
        let valid = addr.parse::<IpAddr>().is_ok() && prefix.parse::<u8>().is_ok();
        if !valid {
            return Err(format!("invalid address {:?}", ip.cidr));
        }
        addresses.push(addr.to_string());
    }
    Ok(Attachment {
        interface: ifname.to_string(),
        ips: addresses,
        cidrs: ips.iter().map(|ip| ip.cidr.clone()).collect(),
        gateway: ips.iter().find_map(|ip| ip.gateway.clone()),
        mac,
    })
}

fn current_shape(result: &Value, ifname: &str) -> Result<(Vec<Ip>, Option<String>), String> {
    let empty = Vec::new();
    let interfaces = match result.get("interfaces") {
        None | Some(Value::Null) => &empty,
        Some(Value::Array(list)) => list,
        Some(_) => return Err("\"interfaces\" must be an array".into()),
    };
    // The container-side interface is the one with our name and a sandbox.
    let ours = interfaces.iter().position(|i| {
        i.get("name").and_then(Value::as_str) == Some(ifname)
            && i.get("sandbox")
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty())
    });
    let mac = ours
        .and_then(|idx| interfaces[idx].get("mac"))
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .map(str::to_string);
    let ips = match result.get("ips") {
        None | Some(Value::Null) => &empty,
        Some(Value::Array(list)) => list,
        Some(_) => return Err("\"ips\" must be an array".into()),
    };
    let mut out = Vec::new();
    for ip in ips {
        let cidr = ip
            .get("address")
            .and_then(Value::as_str)
            .ok_or("an entry of \"ips\" has no \"address\"")?;
        // An IP without an interface index belongs to the attachment as a
        // whole; one with an index counts only if it points at our interface.
        let belongs = match ip.get("interface").and_then(Value::as_u64) {
            None => true,
            Some(idx) => ours.is_some_and(|o| o as u64 == idx),
        };
        if belongs {
            out.push(Ip {
                cidr: cidr.to_string(),
                gateway: string_field(ip, "gateway"),
            });
        }
    }
    Ok((out, mac))
}

fn legacy_shape(result: &Value) -> Result<Vec<Ip>, String> {
    let mut out = Vec::new();
    for key in ["ip4", "ip6"] {
        let Some(block) = result.get(key).filter(|v| !v.is_null()) else {
            continue;
        };
        let cidr = block
            .get("ip")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("\"{key}\" has no \"ip\""))?;
        out.push(Ip {
            cidr: cidr.to_string(),
            gateway: string_field(block, "gateway"),
        });
    }
    Ok(out)
}

fn string_field(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// The error object a failing plugin prints on stdout:
/// `{"cniVersion", "code", "msg", "details"}`.
#[derive(Debug, PartialEq, Eq)]
pub struct PluginError {
    pub code: Option<u32>,
    pub msg: String,
    pub details: String,
}

/// Reads a failed plugin's output. Plugins that die before printing their
/// error object (a crash, a missing library) leave only stderr, which is
/// then the message.
pub fn plugin_error(stdout: &[u8], stderr: &[u8]) -> PluginError {
    if let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(stdout) {
        let msg = obj.get("msg").and_then(Value::as_str).unwrap_or_default();
        let code = obj
            .get("code")
            .and_then(Value::as_u64)
            .and_then(|c| u32::try_from(c).ok());
        if code.is_some() || !msg.is_empty() {
            return PluginError {
                code,
                msg: msg.to_string(),
                details: obj
                    .get("details")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            };
        }
    }
    let text = [stdout, stderr]
        .iter()
        .map(|b| String::from_utf8_lossy(b).trim().to_string())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    PluginError {
        code: None,
        msg: if text.is_empty() {
            "no error message".into()
        } else {
            text
        },
        details: String::new(),
    }
}
