//! A runtime that claims every capability and delivers none of them must
//! fail the tests of each claim, never skip them (a skip would let a green
//! run hide that the property was never checked).

use std::time::Duration;

use serde_json::json;

use crate::adapters::cli::parse_capabilities;
use crate::fake::FakeRuntime;
use crate::runtime::{Error, ExecOutput};
use crate::suite::{Ctx, Outcome, Timeouts};

/// Declares everything; runs every pod at once with no podIP and no
/// hostIP; its containers see no cgroup and may not set the hostname.
fn liar(caps: &str) -> FakeRuntime {
    FakeRuntime::new()
        .claiming(parse_capabilities(caps).unwrap())
        .on_exec(|argv| {
            let stdout = match argv {
                ["probe", "cgroup", ..] => json!({"ok": true, "visible": false}),
                ["probe", "sethostname", ..] => {
                    json!({"ok": false, "errno": 1, "error": "EPERM"})
                }
                _ => return Err(Error::Other(format!("liar: no {argv:?}"))),
            };
            Ok(ExecOutput {
                stdout: format!("{stdout}\n"),
                ..ExecOutput::default()
            })
        })
}

/// Runs each test in `ids` against a liar claiming `caps`: every one must fail.
fn each_fails(caps: &str, ids: &[&str]) {
    let rt = liar(caps);
    let ctx = Ctx::new(
        &rt,
        Timeouts {
            start: Duration::from_secs(2),
            exec: Duration::from_secs(2),
            settle: Duration::from_millis(100),
        },
    );
    let all = crate::tests::all();
    for id in ids {
        let case = all.iter().find(|c| c.id == *id).unwrap();
        match (case.run)(&rt, &ctx) {
            Outcome::Failed(why) => eprintln!("{id} failed as it must: {why}"),
            other => panic!("{id} against a runtime that claims and lacks: {other:?}"),
        }
    }
}

#[test]
fn a_claimed_capability_that_is_missing_fails() {
    // pod-ip, hostIP, cgroup-visible, privileged and exec-timeout, each
    // claimed and missing.
    each_fails(
        "all,container-pids=64",
        &[
            "NET-004", "NET-011", "NET-012", "NET-014", "NET-016", "CGR-001", "CGR-002", "CGR-003",
            "UTS-005", "PORT-001", "EXEC-004",
        ],
    );
}

#[test]
fn a_claimed_registry_that_is_not_there_fails() {
    // Port 1 on loopback: nothing listens, so no tag can be made or pulled.
    each_fails(
        "all,registry=127.0.0.1:1",
        &["IMAGE-003", "IMAGE-004", "IMAGE-005", "IMAGE-006"],
    );
}
