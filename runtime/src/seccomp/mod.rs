//! seccomp: which system calls a container's processes may make.
//!
//! A profile is written in the OCI runtime-spec's seccomp format (the JSON
//! of Kubernetes `Localhost` profiles); `RuntimeDefault` is built here as the
//! allowlist containerd gives a container (default action EPERM, some calls
//! allowed only with certain arguments or capabilities). A profile is
//! compiled on the host into classic BPF with `seccompiler` and installed by
//! the container init (and `podlab exec`) just before exec.
//!
//! One BPF filter has one action on match, so a profile with several actions
//! becomes a stack of filters: the kernel runs all of them and keeps the most
//! severe answer (on a tie, the filter installed last). The first filter
//! holds the default action and lets through every call that any rule names;
//! each further filter gives one action to its own rules and allows the rest.

mod x86_64;

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{field}: {message}")]
    Profile { field: String, message: String },
    #[error("compiling the seccomp filter")]
    Compile(#[from] seccompiler::BackendError),
    #[error("install seccomp filter")]
    Install(#[source] std::io::Error),
}

fn bad(field: impl Into<String>, message: impl Into<String>) -> Error {
    Error::Profile {
        field: field.into(),
        message: message.into(),
    }
}

/// A seccomp profile in the OCI runtime-spec format (`LinuxSeccomp`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OciProfile {
    pub default_action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    #[serde(default)]
    pub architectures: Option<Vec<String>>,
    #[serde(default)]
    pub syscalls: Option<Vec<OciSyscall>>,
    /// Docker's per-architecture map: podlab runs on x86_64 only.
    #[serde(default, skip_serializing)]
    pub arch_map: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flags: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_path: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OciSyscall {
    #[serde(default)]
    pub names: Vec<String>,
    /// Docker's older single-name form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    #[serde(default)]
    pub args: Option<Vec<OciArg>>,
    /// Docker's conditional rules (by capability, architecture, kernel):
    /// podlab does not evaluate them, so a profile using them is refused
    /// rather than applied unconditionally.
    #[serde(default, skip_serializing)]
    pub includes: Option<serde_json::Value>,
    #[serde(default, skip_serializing)]
    pub excludes: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OciArg {
    pub index: u32,
    pub value: u64,
    #[serde(default)]
    pub value_two: u64,
    pub op: String,
}

/// One compiled BPF instruction (`struct sock_filter`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instr(pub u16, pub u8, pub u8, pub u32);

/// A compiled profile: the filters in the order they are installed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Program {
    pub filters: Vec<Vec<Instr>>,
}

/// The seccomp return value of a rule or default, as the kernel orders them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    KillProcess,
    KillThread,
    Trap,
    Errno(u32),
    Trace(u32),
    Log,
    Allow,
}

impl Action {
    fn parse(field: &str, name: &str, errno: Option<u32>) -> Result<Action, Error> {
        let errno = errno.unwrap_or(libc::EPERM as u32);
        Ok(match name {
            "SCMP_ACT_ALLOW" => Action::Allow,
            "SCMP_ACT_ERRNO" => Action::Errno(errno),
            "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => Action::KillThread,
            "SCMP_ACT_KILL_PROCESS" => Action::KillProcess,
            "SCMP_ACT_TRAP" => Action::Trap,
            "SCMP_ACT_LOG" => Action::Log,
            "SCMP_ACT_TRACE" => Action::Trace(errno),
            "SCMP_ACT_NOTIFY" => {
                return Err(bad(
                    field,
                    "SCMP_ACT_NOTIFY needs a seccomp agent, which podlab does not run",
                ))
            }
            other => return Err(bad(field, format!("unknown action {other:?}"))),
        })
    }

    fn to_seccompiler(self) -> SeccompAction {
        match self {
            Action::KillProcess => SeccompAction::KillProcess,
            Action::KillThread => SeccompAction::KillThread,
            Action::Trap => SeccompAction::Trap,
            Action::Errno(e) => SeccompAction::Errno(e),
            Action::Trace(e) => SeccompAction::Trace(e),
            Action::Log => SeccompAction::Log,
            Action::Allow => SeccompAction::Allow,
        }
    }
}

/// The x86_64 number of a system call.
pub fn syscall_number(name: &str) -> Option<i64> {
    x86_64::SYSCALLS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, nr)| *nr)
}

/// Names of calls that exist on other architectures (32-bit variants and
/// the like), not on x86_64: profiles written for several architectures
/// list them, and they are skipped here as runc skips them.
const OTHER_ARCH_SYSCALLS: &[&str] = &[
    "_llseek",
    "_newselect",
    "arm_fadvise64_64",
    "arm_sync_file_range",
    "breakpoint",
    "cacheflush",
    "chown32",
    "clock_adjtime64",
    "clock_getres_time64",
    "clock_gettime64",
    "clock_nanosleep_time64",
    "clock_settime64",
    "fadvise64_64",
    "fchown32",
    "fcntl64",
    "fstat64",
    "fstatat64",
    "fstatfs64",
    "ftruncate64",
    "futex_time64",
    "getegid32",
    "geteuid32",
    "getgid32",
    "getgroups32",
    "getresgid32",
    "getresuid32",
    "getuid32",
    "io_pgetevents_time64",
    "ipc",
    "lchown32",
    "lstat64",
    "mmap2",
    "mq_timedreceive_time64",
    "mq_timedsend_time64",
    "ppoll_time64",
    "pselect6_time64",
    "recv",
    "recvmmsg_time64",
    "riscv_flush_icache",
    "rt_sigtimedwait_time64",
    "s390_pci_mmio_read",
    "s390_pci_mmio_write",
    "s390_runtime_instr",
    "sched_rr_get_interval_time64",
    "semtimedop_time64",
    "send",
    "sendfile64",
    "set_tls",
    "setfsgid32",
    "setfsuid32",
    "setgid32",
    "setgroups32",
    "setregid32",
    "setresgid32",
    "setresuid32",
    "setreuid32",
    "setuid32",
    "sigprocmask",
    "sigreturn",
    "socketcall",
    "stat64",
    "statfs64",
    "stime",
    "swapcontext",
    "sync_file_range2",
    "timer_gettime64",
    "timer_settime64",
    "timerfd_gettime64",
    "timerfd_settime64",
    "truncate64",
    "ugetrlimit",
    "umount",
    "utimensat_time64",
    "waitpid",
];

/// The calls RuntimeDefault allows every container (containerd's list; the
/// names of other architectures are left out).
const DEFAULT_ALLOWED: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "bind",
    "brk",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "clock_adjtime",
    "clock_getres",
    "clock_gettime",
    "clock_nanosleep",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchown",
    "fchownat",
    "fcntl",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstatfs",
    "fsync",
    "ftruncate",
    "futex",
    "futex_waitv",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "geteuid",
    "getgid",
    "getgroups",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresuid",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "madvise",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedsend",
    "mq_unlink",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "nanosleep",
    "newfstatat",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "poll",
    "ppoll",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recvfrom",
    "recvmmsg",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "sendfile",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsuid",
    "setgid",
    "setgroups",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setresgid",
    "setresuid",
    "setreuid",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "socket",
    "socketpair",
    "splice",
    "stat",
    "statfs",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_settime",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_settime",
    "times",
    "tkill",
    "truncate",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "write",
    "writev",
    // containerd allows ptrace from kernel 4.8 on, where seccomp is checked
    // again after a tracer changes a call.
    "ptrace",
    // x86_64 only.
    "arch_prctl",
    "modify_ldt",
];

/// Calls RuntimeDefault allows only to a container holding a capability.
const CAPABILITY_ALLOWED: &[(&str, &[&str])] = &[
    ("DAC_READ_SEARCH", &["open_by_handle_at"]),
    (
        "SYS_ADMIN",
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "name_to_handle_at",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount2",
            "unshare",
        ],
    ),
    ("SYS_BOOT", &["reboot"]),
    ("SYS_CHROOT", &["chroot"]),
    (
        "SYS_MODULE",
        &["delete_module", "init_module", "finit_module"],
    ),
    ("SYS_PACCT", &["acct"]),
    (
        "SYS_PTRACE",
        &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
    ),
    ("SYS_RAWIO", &["iopl", "ioperm"]),
    ("SYS_TIME", &["settimeofday", "clock_settime"]),
    ("SYS_TTY_CONFIG", &["vhangup"]),
    ("SYSLOG", &["syslog"]),
    ("BPF", &["bpf"]),
    ("PERFMON", &["perf_event_open"]),
];

/// The namespace flags of clone(2) a container without CAP_SYS_ADMIN may
/// not pass.
pub const CLONE_NAMESPACE_FLAGS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u64;

fn allow(names: &[&str]) -> OciSyscall {
    OciSyscall {
        names: names.iter().map(|s| s.to_string()).collect(),
        action: "SCMP_ACT_ALLOW".into(),
        ..Default::default()
    }
}

fn arg(index: u32, op: &str, value: u64, value_two: u64) -> OciArg {
    OciArg {
        index,
        value,
        value_two,
        op: op.into(),
    }
}

/// containerd's default profile for a container whose bounding set holds
/// the capabilities `has_cap` says yes to (names without `CAP_`).
pub fn runtime_default(has_cap: impl Fn(&str) -> bool) -> OciProfile {
    let mut syscalls = vec![allow(DEFAULT_ALLOWED)];
    // personality(2): the ordinary Linux personalities only (PER_LINUX,
    // PER_LINUX32, UNAME26 variants, and the query 0xffffffff).
    for value in [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff] {
        syscalls.push(OciSyscall {
            args: Some(vec![arg(0, "SCMP_CMP_EQ", value, 0)]),
            ..allow(&["personality"])
        });
    }
    for (cap, names) in CAPABILITY_ALLOWED {
        if has_cap(cap) {
            syscalls.push(allow(names));
        }
    }
    if !has_cap("SYS_ADMIN") {
        // Plain fork and threads, but no new namespaces.
        syscalls.push(OciSyscall {
            args: Some(vec![arg(0, "SCMP_CMP_MASKED_EQ", CLONE_NAMESPACE_FLAGS, 0)]),
            ..allow(&["clone"])
        });
        // clone3 takes its flags in memory a filter cannot read: ENOSYS
        // makes the C library fall back to clone, which is checked.
        syscalls.push(OciSyscall {
            names: vec!["clone3".into()],
            action: "SCMP_ACT_ERRNO".into(),
            errno_ret: Some(libc::ENOSYS as u32),
            ..Default::default()
        });
    }
    OciProfile {
        default_action: "SCMP_ACT_ERRNO".into(),
        architectures: Some(vec![
            "SCMP_ARCH_X86_64".into(),
            "SCMP_ARCH_X86".into(),
            "SCMP_ARCH_X32".into(),
        ]),
        syscalls: Some(syscalls),
        ..Default::default()
    }
}

/// The rules of one syscall under one action: `None` matches always.
type Chains = BTreeMap<i64, Option<Vec<SeccompRule>>>;

fn add_chain(chains: &mut Chains, nr: i64, rule: Option<SeccompRule>) {
    let entry = chains.entry(nr).or_insert_with(|| Some(Vec::new()));
    match (entry.as_mut(), rule) {
        (Some(rules), Some(r)) => rules.push(r),
        // An unconditional rule covers every conditional one.
        (_, None) => *entry = None,
        (None, Some(_)) => {}
    }
}

fn condition(field: &str, a: &OciArg) -> Result<SeccompCondition, Error> {
    let op = match a.op.as_str() {
        "SCMP_CMP_NE" => SeccompCmpOp::Ne,
        "SCMP_CMP_LT" => SeccompCmpOp::Lt,
        "SCMP_CMP_LE" => SeccompCmpOp::Le,
        "SCMP_CMP_EQ" => SeccompCmpOp::Eq,
        "SCMP_CMP_GE" => SeccompCmpOp::Ge,
        "SCMP_CMP_GT" => SeccompCmpOp::Gt,
        // libseccomp: (arg & value) == valueTwo.
        "SCMP_CMP_MASKED_EQ" => SeccompCmpOp::MaskedEq(a.value),
        other => {
            return Err(bad(
                format!("{field}.op"),
                format!("unknown operator {other:?}"),
            ))
        }
    };
    let value = if a.op == "SCMP_CMP_MASKED_EQ" {
        a.value_two
    } else {
        a.value
    };
    let index = u8::try_from(a.index)
        .ok()
        .filter(|i| *i <= 5)
        .ok_or_else(|| bad(format!("{field}.index"), "must be 0 to 5"))?;
    // Arguments are compared as 64-bit values, as libseccomp does.
    Ok(SeccompCondition::new(
        index,
        SeccompCmpArgLen::Qword,
        op,
        value,
    )?)
}

/// Checks a profile and compiles it for x86_64. Field paths in errors are
/// relative to the profile document (`syscalls[2].names[0]`).
pub fn compile(profile: &OciProfile) -> Result<Program, Error> {
    let default = Action::parse(
        "defaultAction",
        &profile.default_action,
        profile.default_errno_ret,
    )?;
    if let Some(arches) = &profile.architectures {
        if !arches.is_empty() && !arches.iter().any(|a| a == "SCMP_ARCH_X86_64") {
            return Err(bad(
                "architectures",
                "does not list SCMP_ARCH_X86_64, the architecture podlab runs",
            ));
        }
    }
    if profile.flags.as_ref().is_some_and(|f| !f.is_empty()) {
        return Err(bad("flags", "seccomp filter flags are not supported"));
    }
    if profile
        .listener_path
        .as_ref()
        .is_some_and(|p| !p.is_empty())
    {
        return Err(bad("listenerPath", "seccomp agents are not supported"));
    }
    let mut by_action: BTreeMap<Action, Chains> = BTreeMap::new();
    for (i, sc) in profile.syscalls.iter().flatten().enumerate() {
        let field = format!("syscalls[{i}]");
        for (what, v) in [("includes", &sc.includes), ("excludes", &sc.excludes)] {
            if v.as_ref()
                .is_some_and(|v| !v.is_null() && v.as_object().is_none_or(|o| !o.is_empty()))
            {
                return Err(bad(
                    format!("{field}.{what}"),
                    "conditional rules are not supported: write the rules for this node out",
                ));
            }
        }
        let action = Action::parse(&format!("{field}.action"), &sc.action, sc.errno_ret)?;
        let rule = match sc.args.as_deref() {
            None | Some([]) => None,
            Some(args) => Some(SeccompRule::new(
                args.iter()
                    .enumerate()
                    .map(|(j, a)| condition(&format!("{field}.args[{j}]"), a))
                    .collect::<Result<_, _>>()?,
            )?),
        };
        let names: Vec<(String, &String)> = sc
            .names
            .iter()
            .enumerate()
            .map(|(j, n)| (format!("{field}.names[{j}]"), n))
            .chain(sc.name.iter().map(|n| (format!("{field}.name"), n)))
            .collect();
        if names.is_empty() {
            return Err(bad(format!("{field}.names"), "names no system call"));
        }
        for (name_field, name) in names {
            let Some(nr) = syscall_number(name) else {
                if OTHER_ARCH_SYSCALLS.contains(&name.as_str()) {
                    continue;
                }
                return Err(bad(name_field, format!("unknown system call {name:?}")));
            };
            if action != default {
                add_chain(by_action.entry(action).or_default(), nr, rule.clone());
            }
        }
    }
    let build =
        |chains: &Chains, mismatch: Action, on_match: Action| -> Result<Vec<Instr>, Error> {
            let rules = chains
                .iter()
                .map(|(nr, rules)| (*nr, rules.clone().unwrap_or_default()))
                .collect();
            let filter = SeccompFilter::new(
                rules,
                mismatch.to_seccompiler(),
                on_match.to_seccompiler(),
                TargetArch::x86_64,
            )?;
            let bpf: BpfProgram = filter.try_into()?;
            Ok(bpf.iter().map(|f| Instr(f.code, f.jt, f.jf, f.k)).collect())
        };
    let mut filters = Vec::new();
    if default != Action::Allow {
        // Everything a rule names gets past the default; the action filters
        // below then decide.
        let mut everything = Chains::new();
        for chains in by_action.values() {
            for (nr, rules) in chains {
                match rules {
                    None => add_chain(&mut everything, *nr, None),
                    Some(rs) => {
                        for r in rs {
                            add_chain(&mut everything, *nr, Some(r.clone()));
                        }
                    }
                }
            }
        }
        filters.push(build(&everything, default, Action::Allow)?);
    }
    for (action, chains) in &by_action {
        if *action != Action::Allow {
            filters.push(build(chains, Action::Allow, *action)?);
        }
    }
    Ok(Program { filters })
}

impl Program {
    /// Installs the filters on the calling thread. Needs no_new_privs or
    /// CAP_SYS_ADMIN; raw syscalls only (runs between fork and exec).
    pub fn install(&self, sys: &dyn crate::sys::Sys) -> Result<(), Error> {
        for filter in &self.filters {
            let code: Vec<libc::sock_filter> = filter
                .iter()
                .map(|i| libc::sock_filter {
                    code: i.0,
                    jt: i.1,
                    jf: i.2,
                    k: i.3,
                })
                .collect();
            sys.seccomp_filter(&code).map_err(Error::Install)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
