//! The profiles compiled and run through a BPF interpreter: what each
//! allows and denies, with arguments and capabilities. No root needed.

use super::*;

impl Program {
    /// Runs the filters on one call as the kernel would (x86_64), for tests
    /// and `podlab` diagnostics: the most severe answer wins, ties go to the
    /// filter installed last.
    pub fn evaluate(&self, nr: i64, args: [u64; 6]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&(nr as u32).to_ne_bytes());
        data[4..8].copy_from_slice(&0xc000_003eu32.to_ne_bytes()); // AUDIT_ARCH_X86_64
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
        }
        let mut result = libc::SECCOMP_RET_ALLOW;
        for filter in self.filters.iter().rev() {
            let r = run_bpf(filter, &data);
            // The kernel compares the action part as a signed number.
            if ((r & libc::SECCOMP_RET_ACTION_FULL) as i32)
                < ((result & libc::SECCOMP_RET_ACTION_FULL) as i32)
            {
                result = r;
            }
        }
        result
    }
}

/// A classic BPF interpreter for the instructions seccompiler emits.
fn run_bpf(prog: &[Instr], data: &[u8; 64]) -> u32 {
    let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
    let mut mem = [0u32; 16];
    let word = |k: u32| {
        let k = k as usize;
        u32::from_ne_bytes([data[k], data[k + 1], data[k + 2], data[k + 3]])
    };
    while let Some(Instr(code, jt, jf, k)) = prog.get(pc).copied() {
        pc += 1;
        let class = code & 0x07;
        match class {
            0x00 if code == 0x20 => a = word(k), // LD W ABS
            0x00 if code == 0x00 => a = k,       // LD IMM
            0x00 if code == 0x60 => a = mem[k as usize & 15],
            0x01 if code == 0x01 => x = k,    // LDX IMM
            0x02 => mem[k as usize & 15] = a, // ST
            0x03 => mem[k as usize & 15] = x, // STX
            0x04 => {
                // ALU with K
                let v = if code & 0x08 != 0 { x } else { k };
                a = match code & 0xf0 {
                    0x50 => a & v,
                    0x40 => a | v,
                    0x00 => a.wrapping_add(v),
                    0x10 => a.wrapping_sub(v),
                    op => panic!("unhandled ALU op {op:#x}"),
                };
            }
            0x05 => {
                let v = if code & 0x08 != 0 { x } else { k };
                let taken = match code & 0xf0 {
                    0x00 => {
                        pc += k as usize;
                        continue;
                    }
                    0x10 => a == v,
                    0x20 => a > v,
                    0x30 => a >= v,
                    0x40 => a & v != 0,
                    op => panic!("unhandled JMP op {op:#x}"),
                };
                pc += if taken { jt } else { jf } as usize;
            }
            0x06 => return k, // RET K
            0x07 => {
                if code & 0xf8 == 0x00 {
                    x = a
                } else {
                    a = x
                }
            }
            _ => panic!("unhandled BPF instruction {code:#x}"),
        }
    }
    panic!("BPF program ran off its end")
}

const EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
const ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;

fn nr(name: &str) -> i64 {
    syscall_number(name).unwrap_or_else(|| panic!("no syscall {name}"))
}

fn default_caps(name: &str) -> bool {
    // containerd's default set, as podlab's security::DEFAULT_CAPS.
    crate::security::DEFAULT_CAPS.contains(&name)
}

fn verdict(p: &Program, name: &str, args: [u64; 6]) -> u32 {
    p.evaluate(nr(name), args)
}

#[test]
fn the_number_table_is_the_kernels() {
    assert_eq!(syscall_number("read"), Some(libc::SYS_read));
    assert_eq!(syscall_number("keyctl"), Some(libc::SYS_keyctl));
    assert_eq!(syscall_number("unshare"), Some(libc::SYS_unshare));
    assert_eq!(syscall_number("clone3"), Some(libc::SYS_clone3));
    assert_eq!(syscall_number("execve"), Some(libc::SYS_execve));
    assert_eq!(syscall_number("no_such_call"), None);
    for name in DEFAULT_ALLOWED {
        assert!(
            syscall_number(name).is_some(),
            "{name} is not an x86_64 call"
        );
    }
    for (_, names) in CAPABILITY_ALLOWED {
        for name in *names {
            assert!(
                syscall_number(name).is_some(),
                "{name} is not an x86_64 call"
            );
        }
    }
}

#[test]
fn runtime_default_allows_ordinary_calls_and_denies_the_rest_with_eperm() {
    let p = compile(&runtime_default(default_caps)).unwrap();
    for name in [
        "read",
        "write",
        "execve",
        "openat",
        "setuid",
        "capset",
        "prctl",
        "close_range",
        "rt_sigaction",
        "chroot",
    ] {
        assert_eq!(verdict(&p, name, [0; 6]), ALLOW, "{name}");
    }
    for name in [
        "keyctl",
        "add_key",
        "request_key",
        "unshare",
        "mount",
        "setns",
        "reboot",
        "init_module",
        "bpf",
        "umount2",
        "open_by_handle_at",
        "kexec_load",
        "userfaultfd",
    ] {
        assert_eq!(verdict(&p, name, [0; 6]), EPERM, "{name}");
    }
}

#[test]
fn runtime_default_clone_rules_follow_cap_sys_admin() {
    let p = compile(&runtime_default(default_caps)).unwrap();
    let thread = (libc::CLONE_VM
        | libc::CLONE_FS
        | libc::CLONE_FILES
        | libc::CLONE_SIGHAND
        | libc::CLONE_THREAD) as u64;
    assert_eq!(verdict(&p, "clone", [thread, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(
        verdict(&p, "clone", [libc::SIGCHLD as u64, 0, 0, 0, 0, 0]),
        ALLOW
    );
    for flag in [
        libc::CLONE_NEWUSER,
        libc::CLONE_NEWNS,
        libc::CLONE_NEWNET,
        libc::CLONE_NEWPID,
        libc::CLONE_NEWCGROUP,
    ] {
        assert_eq!(
            verdict(
                &p,
                "clone",
                [flag as u64 | libc::SIGCHLD as u64, 0, 0, 0, 0, 0]
            ),
            EPERM,
            "{flag:#x}"
        );
    }
    // A flag in the upper half of the 64-bit argument is checked too.
    assert_eq!(
        verdict(
            &p,
            "clone",
            [(1u64 << 32) | libc::CLONE_NEWUSER as u64, 0, 0, 0, 0, 0]
        ),
        EPERM
    );
    assert_eq!(
        verdict(&p, "clone3", [0; 6]),
        ENOSYS,
        "clone3 falls back to clone"
    );

    let admin = compile(&runtime_default(|c| c == "SYS_ADMIN" || default_caps(c))).unwrap();
    assert_eq!(
        verdict(&admin, "clone", [libc::CLONE_NEWUSER as u64, 0, 0, 0, 0, 0]),
        ALLOW
    );
    for name in ["clone3", "unshare", "mount", "setns"] {
        assert_eq!(verdict(&admin, name, [0; 6]), ALLOW, "{name}");
    }
    assert_eq!(verdict(&admin, "keyctl", [0; 6]), EPERM);
}

#[test]
fn runtime_default_personality_and_capability_conditional_calls() {
    let p = compile(&runtime_default(default_caps)).unwrap();
    for value in [0u64, 8, 0x20000, 0x20008, 0xffff_ffff] {
        assert_eq!(
            verdict(&p, "personality", [value, 0, 0, 0, 0, 0]),
            ALLOW,
            "{value:#x}"
        );
    }
    // READ_IMPLIES_EXEC and ADDR_NO_RANDOMIZE are refused.
    for value in [0x0040_0000u64, 0x0004_0000] {
        assert_eq!(
            verdict(&p, "personality", [value, 0, 0, 0, 0, 0]),
            EPERM,
            "{value:#x}"
        );
    }
    let none = compile(&runtime_default(|_| false)).unwrap();
    assert_eq!(
        verdict(&none, "chroot", [0; 6]),
        EPERM,
        "chroot needs SYS_CHROOT"
    );
    let ptrace = compile(&runtime_default(|c| c == "SYS_PTRACE")).unwrap();
    assert_eq!(verdict(&ptrace, "process_vm_readv", [0; 6]), ALLOW);
    assert_eq!(verdict(&none, "process_vm_readv", [0; 6]), EPERM);
    let time = compile(&runtime_default(|c| c == "SYS_TIME")).unwrap();
    assert_eq!(verdict(&time, "settimeofday", [0; 6]), ALLOW);
    assert_eq!(verdict(&none, "settimeofday", [0; 6]), EPERM);
}

#[test]
fn other_architectures_are_killed() {
    let p = compile(&runtime_default(default_caps)).unwrap();
    let mut data = [0u8; 64];
    data[4..8].copy_from_slice(&0x4000_0003u32.to_ne_bytes()); // AUDIT_ARCH_I386
    let r = run_bpf(&p.filters[0], &data);
    assert_eq!(
        r & libc::SECCOMP_RET_ACTION_FULL,
        libc::SECCOMP_RET_KILL_PROCESS
    );
}

fn localhost(json: &str) -> Result<Program, Error> {
    let profile: OciProfile = serde_json::from_str(json).unwrap();
    compile(&profile)
}

#[test]
fn a_denylist_profile_with_several_actions() {
    let p = localhost(
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
              {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
              {"names": ["chmod"], "action": "SCMP_ACT_ERRNO"},
              {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 10, "op": "SCMP_CMP_EQ"}]},
              {"names": ["ptrace"], "action": "SCMP_ACT_KILL_PROCESS"}
            ]}"#,
    )
    .unwrap();
    assert_eq!(verdict(&p, "read", [0; 6]), ALLOW);
    assert_eq!(verdict(&p, "mkdirat", [0; 6]), libc::SECCOMP_RET_ERRNO | 13);
    assert_eq!(
        verdict(&p, "chmod", [0; 6]),
        EPERM,
        "errnoRet defaults to EPERM"
    );
    assert_eq!(
        verdict(&p, "socket", [10, 1, 0, 0, 0, 0]),
        EPERM,
        "AF_INET6"
    );
    assert_eq!(verdict(&p, "socket", [2, 1, 0, 0, 0, 0]), ALLOW, "AF_INET");
    assert_eq!(
        verdict(&p, "ptrace", [0; 6]),
        libc::SECCOMP_RET_KILL_PROCESS
    );
}

#[test]
fn an_allowlist_profile_with_argument_operators() {
    let p = localhost(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": [
              {"names": ["read", "write", "chown32", "_llseek"], "action": "SCMP_ACT_ALLOW", "args": null},
              {"names": ["kill"], "action": "SCMP_ACT_ALLOW", "args": [
                  {"index": 1, "value": 9, "op": "SCMP_CMP_NE"},
                  {"index": 1, "value": 1, "op": "SCMP_CMP_GE"}]},
              {"names": ["fcntl"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 1, "value": 255, "valueTwo": 3, "op": "SCMP_CMP_MASKED_EQ"}]}
            ]}"#,
    )
    .unwrap();
    assert_eq!(verdict(&p, "read", [0; 6]), ALLOW);
    assert_eq!(verdict(&p, "open", [0; 6]), EPERM);
    assert_eq!(verdict(&p, "kill", [1, 15, 0, 0, 0, 0]), ALLOW);
    assert_eq!(
        verdict(&p, "kill", [1, 9, 0, 0, 0, 0]),
        EPERM,
        "both conditions must hold"
    );
    assert_eq!(verdict(&p, "kill", [1, 0, 0, 0, 0, 0]), EPERM);
    assert_eq!(verdict(&p, "fcntl", [0, 3, 0, 0, 0, 0]), ALLOW, "F_GETFL");
    assert_eq!(verdict(&p, "fcntl", [0, 4, 0, 0, 0, 0]), EPERM, "F_SETFL");
}

#[test]
fn bad_profiles_are_refused_naming_the_field() {
    let err = |json: &str| localhost(json).unwrap_err().to_string();
    assert_eq!(
        err(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}, {"names": ["write", "raed"], "action": "SCMP_ACT_ALLOW"}]}"#
        ),
        "syscalls[1].names[1]: unknown system call \"raed\""
    );
    assert_eq!(
        err(r#"{"defaultAction": "SCMP_ACT_SOMETIMES"}"#),
        "defaultAction: unknown action \"SCMP_ACT_SOMETIMES\""
    );
    assert!(err(r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_NOTIFY"}]}"#)
        .starts_with("syscalls[0].action: SCMP_ACT_NOTIFY"));
    assert!(err(r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ABOUT"}]}]}"#)
        .starts_with("syscalls[0].args[0].op: unknown operator"));
    assert!(err(r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#)
        .starts_with("syscalls[0].args[0].index"));
    assert!(err(r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "includes": {"caps": ["CAP_SYS_ADMIN"]}}]}"#)
        .starts_with("syscalls[0].includes: conditional rules"));
    assert!(
        err(r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_AARCH64"]}"#)
            .starts_with("architectures:")
    );
}

#[test]
fn a_profile_that_allows_everything_installs_nothing() {
    let p = localhost(r#"{"defaultAction": "SCMP_ACT_ALLOW"}"#).unwrap();
    assert!(p.filters.is_empty());
    let p = localhost(r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO"}]}"#).unwrap();
    assert_eq!(p.filters.len(), 1);
    assert_eq!(verdict(&p, "read", [0; 6]), EPERM);
}
