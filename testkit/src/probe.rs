//! The probe's output (fixtures/probe): one JSON object on the first
//! non-empty stdout line, with `ok` and, on failure, the errno name.

use std::time::Duration;

use serde_json::Value;

/// The first non-empty stdout line of a probe run as a JSON object; why
/// not otherwise ("did not run", "printed nothing", "printed no JSON object").
pub fn parse(exit_code: i32, stdout: &str) -> Result<Value, String> {
    if exit_code != 0 {
        return Err("did not run".into());
    }
    let line = stdout
        .lines()
        .find(|l| !l.trim().is_empty())
        .ok_or("printed nothing")?;
    match serde_json::from_str::<Value>(line) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err("printed no JSON object".into()),
    }
}

/// Whether a probe operation succeeded (`"ok": true`).
pub fn ok(v: &Value) -> bool {
    v.get("ok").and_then(Value::as_bool) == Some(true)
}

/// The errno name of a failed probe operation ("ECONNREFUSED"), or "".
pub fn error_name(v: &Value) -> &str {
    v.get("error").and_then(Value::as_str).unwrap_or("")
}

/// The argv that has the probe listen on `addr:port` over `proto` ("tcp" or
/// "udp"), answer `token` to `count` clients, and give up after `timeout`.
pub fn listen_argv(
    proto: &str,
    addr: &str,
    port: u16,
    token: &str,
    count: u32,
    timeout: Duration,
) -> Vec<String> {
    let port = port.to_string();
    let count = count.to_string();
    let timeout = timeout.as_millis().to_string();
    [
        "probe",
        "listen",
        "--proto",
        proto,
        "--addr",
        addr,
        "--port",
        &port,
        "--token",
        token,
        "--count",
        &count,
        "--timeout-ms",
        &timeout,
    ]
    .map(String::from)
    .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_argv_names_every_option() {
        let argv = listen_argv("udp", "0.0.0.0", 8080, "tok", 3, Duration::from_secs(2));
        assert_eq!(
            argv.join(" "),
            "probe listen --proto udp --addr 0.0.0.0 --port 8080 --token tok --count 3 --timeout-ms 2000"
        );
    }

    #[test]
    fn the_first_json_line_counts() {
        let v = parse(0, "\n{\"ok\":true,\"port\":5}\n{\"served\":1}\n").unwrap();
        assert!(ok(&v));
        assert_eq!(v["port"], 5);
        assert_eq!(parse(2, "{}").unwrap_err(), "did not run");
        assert_eq!(parse(0, "").unwrap_err(), "printed nothing");
        assert_eq!(parse(0, "[1]").unwrap_err(), "printed no JSON object");
        let refused = parse(0, r#"{"ok":false,"error":"ECONNREFUSED"}"#).unwrap();
        assert!(!ok(&refused));
        assert_eq!(error_name(&refused), "ECONNREFUSED");
    }
}
