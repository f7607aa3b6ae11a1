//! The per-student file of a lab: `cargo xtask lab start N` draws fresh
//! names, tokens, keys and ports, writes them to `<labs dir>/lab-N.json`
//! (what the grader reads) and `<labs dir>/lab-N.env` (what the student
//! sources), and writes the lab's manifests with them filled in. No answer
//! is in the grader's source or shared between two students.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::{json, Value};

use crate::util;

/// Where the labs keep their state: `$PODLAB_LABS_DIR`, else `/run/podlab-labs`.
pub fn labs_dir() -> PathBuf {
    std::env::var_os("PODLAB_LABS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/podlab-labs"))
}

/// What the labs' pods write (layers, logs): on disk, not in /run's tmpfs.
pub fn data_dir() -> PathBuf {
    std::env::var_os("PODLAB_LABS_DIR")
        .map(|d| PathBuf::from(d).join("data"))
        .unwrap_or_else(|| PathBuf::from("/var/lib/podlab-labs/data"))
}

pub struct Student {
    pub lab: u32,
    /// The lab's podlab state root (never the default /run/podlab).
    pub root: PathBuf,
    pub data_root: PathBuf,
    /// `$LAB_FILES`: the lab's manifests and the student's answers.
    pub files: PathBuf,
    pub vars: BTreeMap<String, String>,
}

/// Random lowercase letters and digits, from the kernel's generator.
pub fn random(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_err() {
        // No /dev/urandom: the clock still differs between students.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (nanos >> (i % 16 * 8)) as u8 ^ (i as u8).wrapping_mul(37);
        }
    }
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

fn number(lo: u32, hi: u32) -> u32 {
    let r = random(8);
    let n = r
        .bytes()
        .fold(0u32, |a, b| a.wrapping_mul(31).wrapping_add(b as u32));
    lo + n % (hi - lo + 1)
}

/// The mutants lab 11 may hand out: one property of a family the suite's
/// concept pages explain, each caught by tests of that family.
pub const LAB11_FAULTS: &[(&str, &str, &[&str])] = &[
    ("no-shared-net", "NET", &["NET-001", "NET-003", "NET-005"]),
    ("no-shared-uts", "UTS", &["UTS-003", "UTS-005"]),
    ("no-shared-ipc", "IPC", &["IPC-001", "IPC-002", "IPC-003"]),
    ("private-shm", "IPC", &["IPC-004"]),
    ("wrong-hostname", "UTS", &["UTS-001", "UTS-002", "UTS-004"]),
    ("shared-pid", "ISO", &["ISO-002"]),
];

impl Student {
    /// Fresh values for lab `n`.
    pub fn draw(n: u32, root: Option<PathBuf>) -> Student {
        let dir = labs_dir();
        let root = root.unwrap_or_else(|| dir.join("root"));
        let files = dir.join(format!("lab{n}"));
        let mut vars = BTreeMap::new();
        let mut set = |k: &str, v: String| {
            vars.insert(k.to_string(), v);
        };
        let tag = random(5);
        set("LAB_TOKEN", format!("tok-{}", random(16)));
        set("LAB_POD", format!("lab{n}-{tag}"));
        match n {
            3 => set("LAB_OTHER", format!("lab3-other-{tag}")),
            4 => {
                set("LAB_HOSTNAME", format!("host-{}", random(6)));
                set(
                    "LAB_KEY",
                    format!("0x{:08x}", number(0x1000_0000, 0x7fff_ffff)),
                );
            }
            5 => set("LAB_SMALL_MI", (number(3, 6) * 16).to_string()),
            6 => set("LAB_ONCE", format!("lab6-once-{tag}")),
            9 => {
                set("LAB_CLIENT", format!("lab9-client-{tag}"));
                set("LAB_PORT", number(2000, 9000).to_string());
            }
            10 => {
                let cpus = std::thread::available_parallelism()
                    .map(|c| c.get() as u32)
                    .unwrap_or(1);
                set("LAB_BLOCKER", format!("lab10-blocker-{tag}"));
                set("LAB_BLOCKER_CPU", format!("{}m", cpus * 1000 - 500));
            }
            11 => {
                let (name, _, _) = LAB11_FAULTS[number(0, LAB11_FAULTS.len() as u32 - 1) as usize];
                set("LAB_FAULT_CODE", encode(name));
            }
            _ => {}
        }
        Student {
            lab: n,
            data_root: data_dir(),
            root,
            files,
            vars,
        }
    }

    pub fn var(&self, k: &str) -> &str {
        self.vars.get(k).map(String::as_str).unwrap_or("")
    }

    pub fn json_path(n: u32) -> PathBuf {
        labs_dir().join(format!("lab-{n}.json"))
    }

    pub fn env_path(n: u32) -> PathBuf {
        labs_dir().join(format!("lab-{n}.env"))
    }

    pub fn load(n: u32) -> anyhow::Result<Student> {
        let path = Self::json_path(n);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "{}: no lab {n} started here; run `cargo xtask lab start {n}` first",
                path.display()
            )
        })?;
        let v: Value = serde_json::from_str(&text).with_context(|| path.display().to_string())?;
        let s = |k: &str| {
            v[k].as_str()
                .map(PathBuf::from)
                .context(format!("{k} missing"))
        };
        Ok(Student {
            lab: n,
            root: s("root")?,
            data_root: s("data_root")?,
            files: s("files")?,
            vars: serde_json::from_value(v["vars"].clone()).unwrap_or_default(),
        })
    }

    /// Writes the student file, the env file and the lab's manifests.
    pub fn write(&self) -> anyhow::Result<()> {
        let dir = labs_dir();
        if self.files.exists() {
            std::fs::remove_dir_all(&self.files)?;
        }
        std::fs::create_dir_all(&self.files)?;
        std::fs::create_dir_all(&self.root)?;
        std::fs::create_dir_all(&self.data_root)?;
        let doc = json!({
            "lab": self.lab,
            "root": self.root,
            "data_root": self.data_root,
            "files": self.files,
            "vars": self.vars,
        });
        std::fs::write(
            Self::json_path(self.lab),
            serde_json::to_string_pretty(&doc)? + "\n",
        )?;
        let mut env = format!(
            "# lab {n}: `source` me. Your own values: no other student has them.\n\
             export LAB_DIR={dir}\nexport LAB_FILES={files}\n\
             # The labs' own podlab: pods here never mix with /run/podlab's.\n\
             export LAB_ROOT={root}\nexport PODLAB_ROOT={root}\nexport PODLAB_DATA_ROOT={data}\n",
            n = self.lab,
            dir = dir.display(),
            files = self.files.display(),
            root = self.root.display(),
            data = self.data_root.display(),
        );
        if let Some(images) = std::env::var_os("PODLAB_IMAGE_ROOT") {
            env += &format!(
                "export PODLAB_IMAGE_ROOT={}\n",
                Path::new(&images).display()
            );
        }
        for (k, v) in &self.vars {
            env += &format!("export {k}={v}\n");
        }
        std::fs::write(Self::env_path(self.lab), env)?;
        for (name, text) in templates(self.lab)? {
            std::fs::write(self.files.join(name), self.fill(&text))?;
        }
        Ok(())
    }

    /// `${VAR}` replaced by the student's value.
    pub fn fill(&self, text: &str) -> String {
        let mut out = text.to_string();
        let files = ("LAB_FILES".to_string(), self.files.display().to_string());
        for (k, v) in self.vars.iter().chain([(&files.0, &files.1)]) {
            out = out.replace(&format!("${{{k}}}"), v);
        }
        out
    }

    /// The student's `key=value` answers in `$LAB_FILES/answers`.
    pub fn answers(&self) -> BTreeMap<String, String> {
        std::fs::read_to_string(self.files.join("answers"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect()
    }

    /// The lab 11 mutant (kept out of plain sight in the student's files).
    pub fn fault(&self) -> Option<&'static (&'static str, &'static str, &'static [&'static str])> {
        let name = decode(self.var("LAB_FAULT_CODE"));
        LAB11_FAULTS.iter().find(|(n, _, _)| *n == name)
    }
}

/// The lab's manifest templates: fixtures/pods/labs/labN-*.yaml, named
/// without their `labN-` prefix.
fn templates(n: u32) -> anyhow::Result<Vec<(String, String)>> {
    let dir = util::root().join("fixtures/pods/labs");
    let prefix = format!("lab{n}-");
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).with_context(|| dir.display().to_string())? {
        let path = e?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if let Some(rest) = name.strip_prefix(&prefix) {
            out.push((rest.to_string(), std::fs::read_to_string(&path)?));
        }
    }
    Ok(out)
}

/// Not secret (the grader is open source), only not readable at a glance.
fn encode(s: &str) -> String {
    s.bytes().map(|b| format!("{:02x}", b ^ 0x5a)).collect()
}

fn decode(s: &str) -> String {
    (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok())
        .map(|b| (b ^ 0x5a) as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_students_differ_and_faults_round_trip() {
        let (a, b) = (Student::draw(4, None), Student::draw(4, None));
        assert_ne!(a.var("LAB_TOKEN"), b.var("LAB_TOKEN"));
        assert_ne!(a.var("LAB_POD"), b.var("LAB_POD"));
        let s = Student::draw(11, None);
        assert!(s.fault().is_some());
        assert_eq!(decode(&encode("no-shared-net")), "no-shared-net");
    }
}
