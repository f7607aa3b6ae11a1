//! Runs selected tests against a runtime on a few worker threads.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use crate::report::TestResult;
use crate::runtime::Runtime;
use crate::suite::{Ctx, Outcome, TestCase, Timeouts};

/// At most this many tests at once: each starts pods, and the machines
/// this runs on may have two cores.
pub const MAX_WORKERS: usize = 4;

#[derive(Clone, Debug)]
pub struct Options {
    pub workers: usize,
    pub timeouts: Timeouts,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            workers: 3,
            timeouts: Timeouts::default(),
        }
    }
}

/// Runs one test, turning a panic into a failure (its pods are deleted
/// by their guards while the panic unwinds).
pub fn run_one(rt: &dyn Runtime, ctx: &Ctx, case: &TestCase) -> TestResult {
    let start = Instant::now();
    let outcome = catch_unwind(AssertUnwindSafe(|| (case.run)(rt, ctx))).unwrap_or_else(|panic| {
        let msg = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown panic".into());
        Outcome::Failed(format!("the test itself panicked: {msg}"))
    });
    TestResult {
        id: case.id.into(),
        status: outcome.status(),
        reason: outcome.reason().into(),
        must: case.must.into(),
        duration_ms: start.elapsed().as_millis() as u64,
    }
}

/// Runs `cases`: the shared ones on up to `options.workers` threads, then
/// the exclusive ones alone. `report` sees each result as it finishes;
/// the returned results are in the order of `cases`.
pub fn run(
    rt: &dyn Runtime,
    cases: &[TestCase],
    options: &Options,
    report: &(dyn Fn(&TestResult) + Sync),
) -> Vec<TestResult> {
    let ctx = Ctx::new(rt, options.timeouts.clone());
    let slots: Vec<Mutex<Option<TestResult>>> = cases.iter().map(|_| Mutex::new(None)).collect();
    let record = |i: usize, result: TestResult| {
        report(&result);
        *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
    };

    let shared: Vec<usize> = (0..cases.len()).filter(|&i| !cases[i].exclusive).collect();
    let next = AtomicUsize::new(0);
    let workers = options
        .workers
        .clamp(1, MAX_WORKERS)
        .min(shared.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let Some(&i) = shared.get(n) else { break };
                record(i, run_one(rt, &ctx, &cases[i]));
            });
        }
    });
    for (i, case) in cases.iter().enumerate().filter(|(_, c)| c.exclusive) {
        record(i, run_one(rt, &ctx, case));
    }

    slots
        .into_iter()
        .filter_map(|s| s.into_inner().unwrap_or_else(|e| e.into_inner()))
        .collect()
}

/// One line per test for the terminal: ID, result, MUST, time, and the
/// diagnosis or skip reason indented below.
pub fn format_line(r: &TestResult) -> String {
    let mut line = format!(
        "{:<13}{}  {} ({}.{}s)",
        r.id,
        r.status.label(),
        r.must,
        r.duration_ms / 1000,
        r.duration_ms % 1000 / 100
    );
    if !r.reason.is_empty() {
        line.push_str("\n            ");
        line.push_str(&r.reason.replace('\n', "\n            "));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeRuntime;
    use crate::suite::Status;

    fn case(id: &'static str, exclusive: bool, run: crate::suite::TestFn) -> TestCase {
        TestCase {
            id,
            must: "It MUST work.",
            method: "",
            exclusive,
            run,
        }
    }

    #[test]
    fn results_keep_registry_order_and_panics_fail() {
        let cases = vec![
            case("A-001", false, |_, _| Outcome::Passed),
            case("A-002", true, |_, _| Outcome::Skipped("no".into())),
            case("A-003", false, |_, _| panic!("boom")),
            case("A-004", false, |_, _| Outcome::Failed("bad".into())),
        ];
        let seen = Mutex::new(Vec::new());
        let results = run(&FakeRuntime::new(), &cases, &Options::default(), &|r| {
            seen.lock().unwrap().push(r.id.clone())
        });
        let ids: Vec<&str> = results.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["A-001", "A-002", "A-003", "A-004"]);
        let statuses: Vec<Status> = results.iter().map(|r| r.status).collect();
        assert_eq!(
            statuses,
            [
                Status::Passed,
                Status::Skipped,
                Status::Failed,
                Status::Failed
            ]
        );
        assert_eq!(results[2].reason, "the test itself panicked: boom");
        // The exclusive test runs after all the others.
        assert_eq!(seen.lock().unwrap().last().unwrap(), "A-002");
    }

    #[test]
    fn line_format() {
        let r = TestResult {
            id: "UTS-003".into(),
            status: Status::Failed,
            reason: "containers differ".into(),
            must: "Containers MUST share.".into(),
            duration_ms: 1570,
        };
        assert_eq!(
            format_line(&r),
            "UTS-003      FAIL  Containers MUST share. (1.5s)\n            containers differ"
        );
    }
}
