//! Test skips that `cargo xtask test` reports by name.

/// Where tests append the tests they skipped (`name<TAB>reason` lines), so
/// `cargo xtask test` can report them by name: libtest shows a test that
/// returned early as `ok`.
pub const SKIP_LOG_ENV: &str = "PODLAB_SKIP_LOG";

/// Records that the running test skips, and why: on stderr, and in the
/// file [`SKIP_LOG_ENV`] names. libtest names each test's thread after the
/// test, which is how the line names it.
pub fn skipped(reason: &str) {
    use std::io::Write as _;
    let thread = std::thread::current();
    let name = thread.name().unwrap_or("(unnamed test)");
    eprintln!("SKIPPED {name}: {reason}");
    if let Some(path) = std::env::var_os(SKIP_LOG_ENV) {
        // One short O_APPEND write per line: parallel tests do not interleave.
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = f.write_all(format!("{name}\t{reason}\n").as_bytes());
        }
    }
}
