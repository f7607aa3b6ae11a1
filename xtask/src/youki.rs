//! youki, the OCI runtime in Rust, as containerd's `youki` handler: built
//! from crates.io once per version under target/youki (Debian has no
//! package), with cgroup v1 and v2 and seccomp (linked with Debian's
//! libseccomp, as youki's releases are), without systemd, which this
//! host's containerd setup does not use.

use std::fs;
use std::path::PathBuf;

use crate::util;

pub const VERSION: &str = "0.7.0";
const FEATURES: &str = "v1,v2,seccomp";

fn root() -> PathBuf {
    util::target().join("youki")
}

/// Where the binary is, built or not.
pub fn binary() -> PathBuf {
    root().join("bin/youki")
}

/// The youki binary, built when missing or of another version.
pub fn build() -> anyhow::Result<PathBuf> {
    let stamp = root().join("version");
    let wanted = format!("{VERSION} {FEATURES}");
    if binary().exists() && fs::read_to_string(&stamp).is_ok_and(|v| v.trim() == wanted) {
        return Ok(binary());
    }
    util::step(&format!(
        "building youki {VERSION} from crates.io (once; cached in {})",
        root().display()
    ));
    let build_dir = root().join("build");
    util::run(
        util::cargo()
            .args(["install", "--quiet", "--locked", "--force"])
            .arg(format!("youki@{VERSION}"))
            .args(["--no-default-features", "--features", FEATURES, "--root"])
            .arg(root())
            .arg("--target-dir")
            .arg(&build_dir),
    )?;
    // Only the binary is kept: the build tree is a few hundred megabytes.
    let _ = fs::remove_dir_all(&build_dir);
    fs::write(&stamp, wanted)?;
    Ok(binary())
}
