//! myruntime: the starter of the podlab course (docs/course/README.md).
//!
//! It speaks the adapter contract (docs/adapter-contract.md) that the
//! conformance suite drives, and implements nothing yet: every stage of
//! the course fails until you write it. Grade it with
//!
//!     cargo build -p course-skeleton
//!     sudo cargo xtask course check --stage 1 --runtime cli:$PWD/target/debug/myruntime
//!
//! The four commands the suite runs (GLOBAL is $CONFORMANCE_CLI_ARGS):
//!
//!     myruntime GLOBAL... apply -f -                      (manifest as JSON on stdin)
//!     myruntime GLOBAL... get pod NAME -o json             (the pod as JSON on stdout)
//!     myruntime GLOBAL... exec NAME -c CONTAINER -- ARGV   (stdout, stderr, exit status of ARGV)
//!     myruntime GLOBAL... delete pod NAME --grace-period 0 --ignore-not-found

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

/// What went wrong, printed on stderr with a non-zero exit status (the
/// suite shows it in its diagnosis).
#[derive(Debug)]
enum Error {
    Usage(String),
    NotFound(String),
    /// A stage of the course you have not written yet.
    Todo(&'static str),
    Io(std::io::Error),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Usage(m) => write!(f, "usage: {m}"),
            Error::NotFound(name) => write!(f, "pods \"{name}\" not found"),
            Error::Todo(what) => write!(f, "not implemented yet: {what}"),
            Error::Io(e) => write!(f, "{e}"),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}

/// Where the runtime keeps its pods: one directory per pod, holding the
/// manifest, the status and the PIDs. `--root DIR` in GLOBAL overrides it.
struct State {
    root: PathBuf,
}

impl State {
    fn pod_dir(&self, name: &str) -> PathBuf {
        self.root.join("pods").join(name)
    }
}

/// The command line: the global options, then one of the four commands.
enum Cmd {
    Apply,
    Get {
        name: String,
    },
    Exec {
        name: String,
        container: Option<String>,
        argv: Vec<String>,
    },
    Delete {
        name: String,
        ignore_not_found: bool,
    },
}

fn parse(args: &[String]) -> Result<(State, Cmd), Error> {
    let mut root = PathBuf::from("/run/myruntime");
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--root" => {
                root = it
                    .next()
                    .map(PathBuf::from)
                    .ok_or(Error::Usage("--root DIR".into()))?
            }
            // Accepted and ignored: what podlab passes in its own runs.
            "--data-root" | "--image-root" | "--context" => {
                it.next();
            }
            _ => rest.push(a.clone()),
        }
    }
    let state = State { root };
    let words: Vec<&str> = rest.iter().map(String::as_str).collect();
    let cmd = match words.as_slice() {
        ["apply", "-f", "-", ..] => Cmd::Apply,
        ["get", "pod" | "pods", name, ..] => Cmd::Get {
            name: name.to_string(),
        },
        ["exec", name, tail @ ..] => {
            let split = tail
                .iter()
                .position(|w| *w == "--")
                .ok_or(Error::Usage("exec NAME -c C -- ARGV".into()))?;
            let container = tail[..split]
                .windows(2)
                .find(|w| w[0] == "-c")
                .map(|w| w[1].to_string());
            let argv = tail[split + 1..].iter().map(|s| s.to_string()).collect();
            Cmd::Exec {
                name: name.to_string(),
                container,
                argv,
            }
        }
        ["delete", "pod" | "pods", name, flags @ ..] => Cmd::Delete {
            name: name.to_string(),
            ignore_not_found: flags.contains(&"--ignore-not-found"),
        },
        _ => {
            return Err(Error::Usage(
                "apply -f - | get pod NAME -o json | exec NAME -c C -- ARGV | delete pod NAME"
                    .into(),
            ))
        }
    };
    Ok((state, cmd))
}

/// Stage 1: store the manifest, start the pod, answer at once.
///
/// - read the manifest (JSON) from stdin, take `metadata.name` and the
///   containers (name, image, command);
/// - unpack the image's rootfs (the probe image: see docs/adapter-contract.md,
///   "The probe image"), make a directory per container;
/// - start each container's command chrooted (later: pivot_root) into its
///   rootfs, and record its PID under the pod's directory;
/// - print `pod/NAME created`.
///
/// Stage 2: first start a *pause* process in new network, UTS and IPC
/// namespaces (unshare(2) with CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWIPC,
/// sethostname to the pod's name or spec.hostname), then start every
/// container in those namespaces (setns(2) on /proc/PAUSE/ns/*), and a
/// tmpfs on /dev/shm shared by the pod.
/// Stage 3: bring up `lo` in the pod's network namespace.
/// Stage 4: each container in its own mount and PID namespaces (and one
/// PID namespace for the pod with spec.shareProcessNamespace).
/// Stage 5: a cgroup per container with resources.limits.memory / .cpu.
/// Stage 7: a veth pair to a bridge on the node, an address per pod (CNI).
fn apply(state: &State) -> Result<(), Error> {
    let mut manifest = String::new();
    std::io::stdin().read_to_string(&mut manifest)?;
    let _dir = state.root.join("pods");
    Err(Error::Todo(
        "apply: stage 1 (store the pod, start its containers)",
    ))
}

/// Stage 1: print the pod as JSON, built from what you stored and what is
/// alive: `metadata.name`, `spec.containers`, `status.phase` (`Pending`
/// until every container has started, then `Running`) and one
/// `status.containerStatuses[]` per container (`name`, `ready`,
/// `restartCount`, `state.running.startedAt`).
/// Stage 6: `status.conditions` (PodScheduled, Initialized,
/// ContainersReady, Ready with ordered lastTransitionTime), restarts by
/// restartPolicy, `terminated` states with exit codes and reason OOMKilled,
/// `Unschedulable` for a pod that asks for more than the node has.
/// Stage 7: `status.podIP`.
fn get(state: &State, name: &str) -> Result<(), Error> {
    if !state.pod_dir(name).exists() {
        return Err(Error::NotFound(name.to_string()));
    }
    Err(Error::Todo("get: stage 1 (the pod's status as JSON)"))
}

/// Stage 1: run ARGV in the container: in its namespaces (setns on each
/// of /proc/PID/ns/* of the container's process), in its root, and exit
/// with ARGV's exit status, passing stdout and stderr through.
fn exec(
    state: &State,
    name: &str,
    container: Option<&str>,
    argv: &[String],
) -> Result<ExitCode, Error> {
    let _ = (state.pod_dir(name), container, argv);
    Err(Error::Todo("exec: stage 1 (run a command in a container)"))
}

/// Stage 1: kill the pod's processes, wait for them, remove what the pod
/// holds (its directory; later its namespaces, cgroups, veth, address).
fn delete(state: &State, name: &str, ignore_not_found: bool) -> Result<(), Error> {
    if !state.pod_dir(name).exists() {
        return if ignore_not_found {
            Ok(())
        } else {
            Err(Error::NotFound(name.to_string()))
        };
    }
    Err(Error::Todo(
        "delete: stage 1 (stop the pod, release what it holds)",
    ))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = parse(&args).and_then(|(state, cmd)| match cmd {
        Cmd::Apply => apply(&state).map(|_| ExitCode::SUCCESS),
        Cmd::Get { name } => get(&state, &name).map(|_| ExitCode::SUCCESS),
        Cmd::Exec {
            name,
            container,
            argv,
        } => exec(&state, &name, container.as_deref(), &argv),
        Cmd::Delete {
            name,
            ignore_not_found,
        } => delete(&state, &name, ignore_not_found).map(|_| ExitCode::SUCCESS),
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("myruntime: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn the_four_commands_parse() {
        let (st, cmd) = parse(&args("--root /tmp/x exec p -c app -- probe ns")).unwrap();
        assert_eq!(st.root, PathBuf::from("/tmp/x"));
        assert!(
            matches!(cmd, Cmd::Exec { container: Some(c), argv, .. } if c == "app" && argv == ["probe", "ns"])
        );
        assert!(matches!(parse(&args("apply -f -")).unwrap().1, Cmd::Apply));
        assert!(matches!(
            parse(&args("delete pod p --grace-period 0 --ignore-not-found"))
                .unwrap()
                .1,
            Cmd::Delete {
                ignore_not_found: true,
                ..
            }
        ));
        assert!(parse(&args("frobnicate")).is_err());
    }
}
