//! Which device nodes a container may create and open.
//!
//! Without a rule, a process with CAP_MKNOD (in the default set, as in
//! containerd and Docker) can `mknod` any host device and open it: the
//! host's ttys, loop devices, /dev/fuse, raw disks. The Kubernetes runtimes
//! (runc's default allowed devices) therefore deny every device and allow
//! only `mknod` itself and a short list of harmless character devices;
//! privileged containers get all devices.
//!
//! cgroup v1 writes the rules to the `devices` controller
//! (`devices.deny`/`devices.allow`) and reads `devices.list` back. cgroup
//! v2 has no devices files: access is decided by a
//! BPF_PROG_TYPE_CGROUP_DEVICE program attached to the cgroup, generated
//! here from the same rules ([`program`]).

use std::collections::BTreeSet;

use super::{io_err, knobs, Ctl, Error, Inner, Mode};
use crate::sys::BpfInsn;

/// The device policy of one leaf cgroup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Devices {
    /// Deny all, then the Kubernetes runtimes' default allowlist.
    Allowlist,
    /// Every device (privileged containers).
    All,
}

/// Device type a rule applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    All,
    Char,
    Block,
}

/// Access bits, valued as the kernel's BPF_DEVCG_ACC_* constants.
pub const MKNOD: u8 = 1;
pub const READ: u8 = 2;
pub const WRITE: u8 = 4;
pub const RWM: u8 = MKNOD | READ | WRITE;

/// One line of a devices list: `c 1:3 rwm`; `None` numbers are `*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    pub kind: Kind,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: u8,
}

impl Rule {
    const fn allow(kind: Kind, major: Option<u32>, minor: Option<u32>, access: u8) -> Rule {
        Rule {
            allow: true,
            kind,
            major,
            minor,
            access,
        }
    }

    /// The rule as cgroup v1 writes and lists it (`c 136:* rwm`; `a` for all).
    pub fn v1_line(&self) -> String {
        let kind = match self.kind {
            Kind::All => 'a',
            Kind::Char => 'c',
            Kind::Block => 'b',
        };
        let num = |n: Option<u32>| n.map_or_else(|| "*".to_owned(), |n| n.to_string());
        let mut access = String::new();
        for (bit, c) in [(READ, 'r'), (WRITE, 'w'), (MKNOD, 'm')] {
            if self.access & bit != 0 {
                access.push(c);
            }
        }
        format!("{kind} {}:{} {access}", num(self.major), num(self.minor))
    }

    fn matches(&self, kind: Kind, major: u32, minor: u32) -> bool {
        (self.kind == Kind::All || self.kind == kind)
            && self.major.is_none_or(|m| m == major)
            && self.minor.is_none_or(|m| m == minor)
    }
}

/// The allowlist after "deny all", as runc's default allowed devices (tun
/// is no longer among them): mknod of anything, and read/write/mknod of
/// null, zero, full, random, urandom, tty, console, ptmx and every pts.
pub const ALLOWLIST: [Rule; 11] = [
    Rule::allow(Kind::Char, None, None, MKNOD),
    Rule::allow(Kind::Block, None, None, MKNOD),
    Rule::allow(Kind::Char, Some(1), Some(3), RWM), // null
    Rule::allow(Kind::Char, Some(1), Some(5), RWM), // zero
    Rule::allow(Kind::Char, Some(1), Some(7), RWM), // full
    Rule::allow(Kind::Char, Some(1), Some(8), RWM), // random
    Rule::allow(Kind::Char, Some(1), Some(9), RWM), // urandom
    Rule::allow(Kind::Char, Some(5), Some(0), RWM), // tty
    Rule::allow(Kind::Char, Some(5), Some(1), RWM), // console
    Rule::allow(Kind::Char, Some(5), Some(2), RWM), // ptmx
    Rule::allow(Kind::Char, Some(136), None, RWM),  // pts
];

const ALL: Rule = Rule::allow(Kind::All, None, None, RWM);

/// The rules of `devices`: a default (`a`) first, then its exceptions.
pub fn rules(devices: Devices) -> Vec<Rule> {
    match devices {
        Devices::All => vec![ALL],
        Devices::Allowlist => {
            let mut out = vec![Rule {
                allow: false,
                ..ALL
            }];
            out.extend(ALLOWLIST);
            out
        }
    }
}

/// What `devices.list` holds once the rules are in: `a *:* rwm` when all
/// is allowed, else the allowed exceptions.
pub fn v1_list(devices: Devices) -> Vec<String> {
    rules(devices)
        .iter()
        .filter(|r| r.allow)
        .map(Rule::v1_line)
        .collect()
}

/// The decision the rules make for one access, as the v1 controller
/// makes it: the default of the leading `a` rule, unless an exception of
/// the other polarity matches the device and, for an allow, grants every
/// requested bit or, for a deny, takes any of them.
pub fn decide(rules: &[Rule], kind: Kind, major: u32, minor: u32, access: u8) -> bool {
    let (default, exceptions) = match rules.split_first() {
        Some((first, rest)) if first.kind == Kind::All => (first.allow, rest),
        _ => (false, rules),
    };
    let excepted = exceptions.iter().any(|r| {
        let bits = if r.allow {
            access & !r.access == 0
        } else {
            access & r.access != 0
        };
        r.allow != default && r.matches(kind, major, minor) && bits
    });
    default != excepted
}

/// Puts the rules of `devices` on the leaf `rel` (no process in it yet).
/// v1: `a` to devices.deny or devices.allow, then one write per exception,
/// and devices.list must then hold exactly [`v1_list`]. v2: the program is
/// attached unless everything is allowed (what a cgroup without one gets).
pub(super) fn apply(inner: &Inner, rel: &str, devices: Devices) -> Result<(), Error> {
    let dir = inner.mount(Ctl::Devices)?.join(rel);
    let rules = rules(devices);
    if inner.mode == Mode::V2 {
        if devices == Devices::All {
            return Ok(());
        }
        return inner
            .backend
            .attach_device_program(&dir, &program(&rules))
            .map_err(io_err(&dir));
    }
    for rule in &rules {
        let file = dir.join(if rule.allow {
            "devices.allow"
        } else {
            "devices.deny"
        });
        let line = match rule.kind {
            Kind::All => "a".to_owned(),
            _ => rule.v1_line(),
        };
        inner.backend.write(&file, &line).map_err(io_err(&file))?;
    }
    let list_file = dir.join("devices.list");
    let got: BTreeSet<String> = knobs::read_string(&list_file)?
        .lines()
        .map(str::to_owned)
        .collect();
    let wanted: BTreeSet<String> = v1_list(devices).into_iter().collect();
    if got != wanted {
        let show = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(", ");
        return Err(Error::NotApplied {
            file: list_file,
            wanted: show(&wanted),
            got: show(&got),
        });
    }
    Ok(())
}

// eBPF opcodes used by the generated program.
const LDX_MEM_W: u8 = 0x61; // dst = *(u32 *)(src + off)
const ALU64_AND_K: u8 = 0x57;
const ALU64_RSH_K: u8 = 0x77;
const ALU64_MOV_K: u8 = 0xb7;
const ALU64_MOV_X: u8 = 0xbf;
const JMP_JNE_K: u8 = 0x55; // if dst != imm: pc += off
const JMP_JEQ_K: u8 = 0x15; // if dst == imm: pc += off
const JMP_EXIT: u8 = 0x95;

// Device types in the program's context (BPF_DEVCG_DEV_*).
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> BpfInsn {
    BpfInsn {
        code,
        regs: (src << 4) | (dst & 0x0f),
        off,
        imm,
    }
}

/// A BPF_PROG_TYPE_CGROUP_DEVICE program deciding as [`decide`] does over
/// `rules`. Its context (`struct bpf_cgroup_dev_ctx`) holds `access_type`
/// (access bits << 16 | device type), `major` and `minor` as u32s; it
/// returns 1 to allow and 0 to deny.
///
/// Layout: load type (r2), access (r3), major (r4) and minor (r5); then one
/// block per exception, each falling through to the next block as soon as
/// a test fails and returning the exception's verdict when all pass; the
/// default verdict at the end.
pub fn program(rules: &[Rule]) -> Vec<BpfInsn> {
    let (default, exceptions) = match rules.split_first() {
        Some((first, rest)) if first.kind == Kind::All => (first.allow, rest),
        _ => (false, rules),
    };
    let mut p = vec![
        insn(LDX_MEM_W, 2, 1, 0, 0),
        insn(ALU64_AND_K, 2, 0, 0, 0xffff),
        insn(LDX_MEM_W, 3, 1, 0, 0),
        insn(ALU64_RSH_K, 3, 0, 0, 16),
        insn(LDX_MEM_W, 4, 1, 4, 0),
        insn(LDX_MEM_W, 5, 1, 8, 0),
    ];
    for r in exceptions.iter().filter(|r| r.allow != default) {
        let mut block = Vec::new();
        // Jumps are placeholders (off 0) patched to the block's end below.
        let mut jumps = Vec::new();
        match r.kind {
            Kind::All => {}
            Kind::Char | Kind::Block => {
                let ty = if r.kind == Kind::Char {
                    DEV_CHAR
                } else {
                    DEV_BLOCK
                };
                jumps.push(block.len());
                block.push(insn(JMP_JNE_K, 2, 0, 0, ty));
            }
        }
        if r.access & RWM != RWM {
            block.push(insn(ALU64_MOV_X, 1, 3, 0, 0));
            jumps.push(block.len() + 1);
            if r.allow {
                // Every requested bit must be granted: access & ~granted == 0.
                block.push(insn(ALU64_AND_K, 1, 0, 0, i32::from(!r.access & RWM)));
                block.push(insn(JMP_JNE_K, 1, 0, 0, 0));
            } else {
                // Any requested bit it takes denies: access & taken != 0.
                block.push(insn(ALU64_AND_K, 1, 0, 0, i32::from(r.access)));
                block.push(insn(JMP_JEQ_K, 1, 0, 0, 0));
            }
        }
        for (reg, n) in [(4, r.major), (5, r.minor)] {
            if let Some(n) = n {
                jumps.push(block.len());
                // Device numbers fit in 32 bits; the kernel compares the
                // register with the sign-extended immediate, which for a u32
                // loaded zero-extended is only equal below 2^31.
                block.push(insn(JMP_JNE_K, reg, 0, 0, n as i32));
            }
        }
        block.push(insn(ALU64_MOV_K, 0, 0, 0, i32::from(r.allow)));
        block.push(insn(JMP_EXIT, 0, 0, 0, 0));
        let end = block.len();
        for j in jumps {
            // Relative to the next instruction; blocks are a few insns long.
            block[j].off = (end - j - 1) as i16;
        }
        p.extend(block);
    }
    p.push(insn(ALU64_MOV_K, 0, 0, 0, i32::from(default)));
    p.push(insn(JMP_EXIT, 0, 0, 0, 0));
    p
}

/// The program as text, one `code regs off imm` line per instruction: what
/// the fixture backend stores in place of attaching it.
pub fn program_text(insns: &[BpfInsn]) -> String {
    insns
        .iter()
        .map(|i| format!("{:#04x} {:#04x} {} {}\n", i.code, i.regs, i.off, i.imm))
        .collect()
}

/// The inverse of [`program_text`]; `None` on any malformed line.
pub fn parse_program_text(text: &str) -> Option<Vec<BpfInsn>> {
    let hex = |s: &str| u8::from_str_radix(s.strip_prefix("0x")?, 16).ok();
    text.lines()
        .map(|l| match l.split_whitespace().collect::<Vec<_>>()[..] {
            [code, regs, off, imm] => Some(BpfInsn {
                code: hex(code)?,
                regs: hex(regs)?,
                off: off.parse().ok()?,
                imm: imm.parse().ok()?,
            }),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a device program the way the kernel would, for the opcodes
    /// [`program`] emits (any other fails the test). Returns r0 at exit.
    pub(crate) fn run(p: &[BpfInsn], kind: Kind, major: u32, minor: u32, access: u8) -> u64 {
        let ty: u32 = match kind {
            Kind::Block => 1,
            Kind::Char => 2,
            Kind::All => panic!("a device has a type"),
        };
        let ctx = [(u32::from(access) << 16) | ty, major, minor];
        let mut r = [0u64; 11];
        r[1] = 0xC7C7_0000; // the context pointer
        let mut pc = 0usize;
        for _ in 0..10_000 {
            let i = p
                .get(pc)
                .unwrap_or_else(|| panic!("pc {pc} ran off the end"));
            let (dst, src) = (usize::from(i.regs & 0x0f), usize::from(i.regs >> 4));
            let imm = i64::from(i.imm) as u64; // sign-extended, as the kernel does
            pc += 1;
            match i.code {
                LDX_MEM_W => {
                    assert_eq!(r[src], 0xC7C7_0000, "load through a non-context register");
                    let off = usize::try_from(i.off).unwrap();
                    assert!(off % 4 == 0 && off < 12, "context offset {off}");
                    r[dst] = u64::from(ctx[off / 4]);
                }
                ALU64_AND_K => r[dst] &= imm,
                ALU64_RSH_K => r[dst] >>= imm,
                ALU64_MOV_K => r[dst] = imm,
                ALU64_MOV_X => r[dst] = r[src],
                JMP_JNE_K | JMP_JEQ_K => {
                    if (r[dst] != imm) == (i.code == JMP_JNE_K) {
                        pc = pc.checked_add_signed(isize::from(i.off)).unwrap();
                    }
                }
                JMP_EXIT => return r[0],
                other => panic!("opcode {other:#x} at {}", pc - 1),
            }
        }
        panic!("no exit after 10000 instructions")
    }

    fn allowed(kind: Kind, major: u32, minor: u32, access: u8) -> bool {
        let rules = rules(Devices::Allowlist);
        let p = program(&rules);
        let by_program = run(&p, kind, major, minor, access);
        assert!(by_program <= 1, "r0 {by_program}");
        let by_rules = decide(&rules, kind, major, minor, access);
        assert_eq!(
            by_program == 1,
            by_rules,
            "{kind:?} {major}:{minor} access {access}: program and rules disagree"
        );
        by_rules
    }

    #[test]
    fn the_allowlist_opens_the_harmless_devices_only() {
        for (major, minor) in [
            (1, 3),
            (1, 5),
            (1, 7),
            (1, 8),
            (1, 9),
            (5, 0),
            (5, 1),
            (5, 2),
        ] {
            assert!(
                allowed(Kind::Char, major, minor, READ | WRITE),
                "{major}:{minor}"
            );
            assert!(allowed(Kind::Char, major, minor, RWM), "{major}:{minor}");
        }
        assert!(allowed(Kind::Char, 136, 0, READ | WRITE));
        assert!(allowed(Kind::Char, 136, 4095, READ));
        // The attacks of issue 21: tty1, vcs, fuse, loop0, the first disk.
        for (kind, major, minor) in [
            (Kind::Char, 4, 1),
            (Kind::Char, 7, 0),
            (Kind::Char, 10, 229),
            (Kind::Char, 1, 1),    // mem
            (Kind::Char, 1, 11),   // kmsg
            (Kind::Char, 10, 200), // tun: no longer in runc's defaults
            (Kind::Block, 7, 0),
            (Kind::Block, 8, 0),
            (Kind::Block, 1, 3), // a block device with null's numbers
            (Kind::Char, 3, 1),  // null's minor, another major
            (Kind::Char, 136 + 256, 0),
        ] {
            for access in [READ, WRITE, READ | WRITE, RWM] {
                assert!(
                    !allowed(kind, major, minor, access),
                    "{kind:?} {major}:{minor} {access}"
                );
            }
            // mknod itself stays allowed, as in runc.
            assert!(
                allowed(kind, major, minor, MKNOD),
                "{kind:?} {major}:{minor}"
            );
        }
    }

    #[test]
    fn program_and_rules_agree_on_every_access() {
        let majors = [0, 1, 3, 4, 5, 7, 8, 10, 136, 137, 254, 4095];
        let minors = [0, 1, 2, 3, 5, 7, 8, 9, 11, 229, 1_048_575];
        let mut allowed_count = 0;
        for kind in [Kind::Char, Kind::Block] {
            for major in majors {
                for minor in minors {
                    for access in 1..=RWM {
                        allowed_count += u32::from(allowed(kind, major, minor, access));
                    }
                }
            }
        }
        // Not vacuous: some of each.
        assert!(allowed_count > 0 && allowed_count < 2 * 12 * 11 * 7);
    }

    #[test]
    fn a_program_with_exceptions_of_both_polarities_follows_the_default() {
        // Allow all, deny one: the shape a denylist would take.
        let rules = [
            ALL,
            Rule {
                allow: false,
                ..Rule::allow(Kind::Char, Some(4), None, READ | WRITE)
            },
        ];
        let p = program(&rules);
        for (kind, major, minor, access, want) in [
            (Kind::Char, 4, 1, READ, false),
            (Kind::Char, 4, 1, MKNOD, true),
            (Kind::Char, 4, 1, MKNOD | READ, false),
            (Kind::Block, 4, 1, READ, true),
            (Kind::Char, 5, 1, READ, true),
        ] {
            assert_eq!(decide(&rules, kind, major, minor, access), want);
            assert_eq!(run(&p, kind, major, minor, access) == 1, want);
        }
    }

    #[test]
    fn v1_lines_read_as_the_kernel_lists_them() {
        assert_eq!(v1_list(Devices::All), ["a *:* rwm"]);
        let list = v1_list(Devices::Allowlist);
        assert_eq!(list.len(), 11);
        assert_eq!(list[0], "c *:* m");
        assert_eq!(list[1], "b *:* m");
        assert!(list.contains(&"c 1:3 rwm".to_owned()));
        assert!(list.contains(&"c 136:* rwm".to_owned()));
        assert_eq!(rules(Devices::Allowlist)[0].v1_line(), "a *:* rwm");
        assert!(!rules(Devices::Allowlist)[0].allow);
    }

    /// The kernel loads and enforces the program: on this hybrid host's
    /// cgroup2 mount (device programs work there whatever the v1
    /// controllers do), a shell in a cgroup with it opens /dev/null but not
    /// /dev/tty1 (read-only, no I/O). Skipped without root or cgroup2.
    #[test]
    fn the_kernel_loads_the_program_and_enforces_it() {
        use std::io::{BufRead, BufReader, Write};
        use std::path::Path;
        use std::process::{Command, Stdio};
        let unified = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
            .into_iter()
            .map(Path::new)
            .find(|p| p.join("cgroup.subtree_control").exists());
        let (Some(unified), true) = (unified, nix::unistd::geteuid().is_root()) else {
            eprintln!("skipping: no cgroup2 mount or not root");
            return;
        };
        if !Path::new("/dev/tty1").exists() {
            eprintln!("skipping: this host has no /dev/tty1");
            return;
        }
        let dir = unified.join(format!("podlab-test-devprog-{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        struct Rm<'a>(&'a Path);
        impl Drop for Rm<'_> {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir(self.0);
            }
        }
        let _rm = Rm(&dir);
        let p = program(&rules(Devices::Allowlist));
        crate::sys::attach_device_program(&dir, &p).expect("the kernel loads the program");
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(
                "read go; for d in /dev/null /dev/tty1; do ( exec 3<$d ) 2>/dev/null; echo $?; done",
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        std::fs::write(dir.join("cgroup.procs"), child.id().to_string()).unwrap();
        writeln!(child.stdin.take().unwrap(), "go").unwrap();
        let codes: Vec<String> = BufReader::new(child.stdout.take().unwrap())
            .lines()
            .map(Result::unwrap)
            .collect();
        let _ = child.wait();
        // Any failure status: dash gives 2 for a failed redirection, busybox 1.
        assert!(
            codes.len() == 2 && codes[0] == "0" && codes[1] != "0",
            "/dev/null opens, /dev/tty1 does not: {codes:?}"
        );
    }

    #[test]
    fn the_program_text_round_trips() {
        let p = program(&rules(Devices::Allowlist));
        assert_eq!(parse_program_text(&program_text(&p)), Some(p));
        assert_eq!(parse_program_text("0x95 0x00 0\n"), None);
    }
}
