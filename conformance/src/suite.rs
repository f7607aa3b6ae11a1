//! What a conformance test is: an ID, one MUST sentence, a method, and a
//! function from a runtime to an [`Outcome`]; and the [`Ctx`] each test
//! gets (unique names, random ports and tokens, time limits).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::runtime::{self, Capabilities, Runtime};

/// How a test ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    /// Not run, and why (the runtime or host lacks something the test needs).
    Skipped(String),
    /// The property does not hold, with a diagnosis a student can act on.
    Failed(String),
}

impl Outcome {
    pub fn status(&self) -> Status {
        match self {
            Outcome::Passed => Status::Passed,
            Outcome::Skipped(_) => Status::Skipped,
            Outcome::Failed(_) => Status::Failed,
        }
    }

    /// The skip reason or failure diagnosis; "" for a pass.
    pub fn reason(&self) -> &str {
        match self {
            Outcome::Passed => "",
            Outcome::Skipped(r) | Outcome::Failed(r) => r,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Passed,
    Failed,
    Skipped,
}

impl Status {
    /// The word printed in the run's output.
    pub fn label(self) -> &'static str {
        match self {
            Status::Passed => "PASS",
            Status::Failed => "FAIL",
            Status::Skipped => "SKIP",
        }
    }
}

/// What a test body returns: `Err` carries a skip or a failure, so bodies
/// can stop at the first problem with `?`.
pub type Check = Result<(), Outcome>;

impl From<Check> for Outcome {
    fn from(check: Check) -> Outcome {
        match check {
            Ok(()) => Outcome::Passed,
            Err(outcome) => outcome,
        }
    }
}

/// A runtime call failing is a test failure: the diagnosis is the error
/// and its causes.
impl From<runtime::Error> for Outcome {
    fn from(e: runtime::Error) -> Outcome {
        Outcome::Failed(podlab_kube::error::chain(&e))
    }
}

pub fn fail(diagnosis: impl Into<String>) -> Outcome {
    Outcome::Failed(diagnosis.into())
}

pub fn skip(reason: impl Into<String>) -> Outcome {
    Outcome::Skipped(reason.into())
}

/// Fails with `diagnosis` unless `condition` holds.
pub fn ensure(condition: bool, diagnosis: impl FnOnce() -> String) -> Check {
    if condition {
        Ok(())
    } else {
        Err(Outcome::Failed(diagnosis()))
    }
}

pub type TestFn = fn(&dyn Runtime, &Ctx) -> Outcome;

/// One registered conformance test.
#[derive(Clone, Copy)]
pub struct TestCase {
    /// Stable identifier, e.g. "NET-005".
    pub id: &'static str,
    /// The property, as one sentence with MUST.
    pub must: &'static str,
    /// How the test observes it, in a few sentences.
    pub method: &'static str,
    /// Runs alone rather than beside other tests (timing measurements).
    pub exclusive: bool,
    pub run: TestFn,
}

impl std::fmt::Debug for TestCase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCase").field("id", &self.id).finish()
    }
}

/// Time limits for one run.
#[derive(Clone, Debug)]
pub struct Timeouts {
    /// From create to every container running.
    pub start: Duration,
    /// One exec.
    pub exec: Duration,
    /// How long a test watches for something that must NOT happen (a pod
    /// that must stay Pending).
    pub settle: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            start: Duration::from_secs(60),
            exec: Duration::from_secs(60),
            settle: Duration::from_secs(3),
        }
    }
}

/// What every test gets besides the runtime.
pub struct Ctx {
    run_id: String,
    counter: AtomicU64,
    rng: Mutex<u64>,
    pub probe_image: String,
    pub caps: Capabilities,
    pub timeouts: Timeouts,
}

impl Ctx {
    pub fn new(rt: &dyn Runtime, timeouts: Timeouts) -> Ctx {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let mut seed = nanos ^ (u64::from(std::process::id()) << 32);
        let run_id = format!("{:06x}", splitmix64(&mut seed) & 0xff_ffff);
        Ctx {
            run_id,
            counter: AtomicU64::new(0),
            rng: Mutex::new(seed),
            probe_image: rt.probe_image(),
            caps: rt.capabilities(),
            timeouts,
        }
    }

    /// Another fixture image of the suite (`cargo xtask fixtures` builds
    /// them), found beside the probe image: the probe's reference with its
    /// last path component's name replaced, so `podlab.local/probe:latest`
    /// gives `podlab.local/NAME:latest`.
    pub fn fixture_image(&self, name: &str) -> String {
        let probe = self.probe_image.as_str();
        let start = probe.rfind('/').map_or(0, |i| i + 1);
        let end = probe[start..]
            .find([':', '@'])
            .map_or(probe.len(), |i| start + i);
        format!("{}{name}{}", &probe[..start], &probe[end..])
    }

    /// A pod name no other test of any run uses: `<prefix>-<run>-<n>`.
    /// Kept short because it is also the pod's hostname (at most 63 bytes).
    pub fn unique_name(&self, prefix: &str) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("{prefix}-{}-{n}", self.run_id)
    }

    pub fn random(&self) -> u64 {
        // A poisoned lock only means another test panicked mid-draw; the
        // state is still a valid seed.
        let mut state = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        splitmix64(&mut state)
    }

    /// A random unprivileged port, away from the ephemeral range so an
    /// outgoing connection elsewhere cannot be holding it.
    pub fn random_port(&self) -> u16 {
        20_000 + (self.random() % 12_000) as u16
    }

    /// A random token to recognise our own data.
    pub fn token(&self) -> String {
        format!("podlab-{:016x}", self.random())
    }

    /// A random positive SysV IPC key.
    pub fn ipc_key(&self) -> i32 {
        (self.random() % 0x7fff_0000) as i32 + 0x10000
    }
}

/// The splitmix64 generator: enough randomness for names and ports
/// without a dependency.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeRuntime;

    #[test]
    fn names_are_unique_and_valid_hostnames() {
        let ctx = Ctx::new(&FakeRuntime::new(), Timeouts::default());
        let a = ctx.unique_name("net-localhost");
        let b = ctx.unique_name("net-localhost");
        assert_ne!(a, b);
        for name in [a, b] {
            assert!(name.len() <= 63, "{name}");
            assert!(name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
        }
    }

    #[test]
    fn random_values_stay_in_range() {
        let ctx = Ctx::new(&FakeRuntime::new(), Timeouts::default());
        for _ in 0..1000 {
            let port = ctx.random_port();
            assert!((20_000..32_000).contains(&port), "{port}");
            assert!(ctx.ipc_key() > 0);
        }
        assert_ne!(ctx.token(), ctx.token());
    }

    #[test]
    fn fixture_images_sit_beside_the_probe() {
        let mut ctx = Ctx::new(&FakeRuntime::new(), Timeouts::default());
        for (probe, want) in [
            ("podlab.local/probe:latest", "podlab.local/nonroot:latest"),
            ("localhost:5000/me/probe", "localhost:5000/me/nonroot"),
            ("probe@sha256:ab", "nonroot@sha256:ab"),
            ("probe", "nonroot"),
        ] {
            ctx.probe_image = probe.into();
            assert_eq!(ctx.fixture_image("nonroot"), want, "{probe}");
        }
    }

    #[test]
    fn a_check_becomes_an_outcome() {
        assert_eq!(Outcome::from(Ok(())), Outcome::Passed);
        let failed: Check = ensure(false, || "nope".into());
        assert_eq!(Outcome::from(failed), Outcome::Failed("nope".into()));
        assert_eq!(skip("why").reason(), "why");
        assert_eq!(fail("x").status(), Status::Failed);
    }
}
