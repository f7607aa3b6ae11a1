//! `podlab`: a kubectl-shaped CLI over a real, one-node pod runtime.

mod cli;
mod jsonpath;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use podlab::api::{self, ErrorKind, PodKey};
use podlab::config::{
    Config, DEFAULT_DATA_ROOT, DEFAULT_IMAGE_ROOT, DEFAULT_ROOT, DEFAULT_SECCOMP_ROOT,
};
use podlab::error;
use podlab::selector::Selector;

#[derive(Parser)]
#[command(
    name = "podlab",
    version,
    about = "Run real Kubernetes pods on this machine",
    propagate_version = true
)]
struct Cli {
    /// State directory (pod records, status, events, mount points).
    #[arg(long, global = true, env = "PODLAB_ROOT", default_value = DEFAULT_ROOT)]
    root: PathBuf,
    /// Image store directory.
    #[arg(long, global = true, env = "PODLAB_IMAGE_ROOT", default_value = DEFAULT_IMAGE_ROOT)]
    image_root: PathBuf,
    /// Data directory, on disk: what pods write (writable layers,
    /// emptyDirs, container logs).
    #[arg(long, global = true, env = "PODLAB_DATA_ROOT", default_value = DEFAULT_DATA_ROOT)]
    data_root: PathBuf,
    /// Attach pods to the first CNI network (.conflist) in this directory
    /// instead of podlab's default bridge network.
    #[arg(long, global = true, env = "PODLAB_CNI_CONF_DIR")]
    cni_conf_dir: Option<PathBuf>,
    /// Directory of the seccomp profiles `Localhost` pods name.
    #[arg(long, global = true, env = "PODLAB_SECCOMP_ROOT", default_value = DEFAULT_SECCOMP_ROOT)]
    seccomp_root: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Namespace {
    /// The namespace (default: "default").
    #[arg(short = 'n', long = "namespace")]
    namespace: Option<String>,
}

impl Namespace {
    fn key(&self, name: &str) -> PodKey {
        PodKey::new(
            self.namespace.clone().unwrap_or_else(|| "default".into()),
            name,
        )
    }
}

#[derive(Subcommand)]
enum Command {
    /// Create pods from a manifest (YAML or JSON; "-" reads stdin); applied
    /// again, a pod takes what Kubernetes lets change (labels, annotations,
    /// images, a shorter activeDeadlineSeconds, added tolerations).
    Apply {
        /// The manifest file, or - for standard input.
        #[arg(short = 'f', long = "filename")]
        file: String,
        #[command(flatten)]
        ns: Namespace,
        /// podlab's own: wait until the pods are Running, at most this long
        /// (default 60s). Not kubectl's `--wait`, which is about pruning.
        #[arg(long, value_name = "TIMEOUT", num_args = 0..=1, default_missing_value = "60s", value_parser = parse_duration)]
        wait_ready: Option<Duration>,
    },
    /// Create an object from options, as `kubectl create`:
    /// `podlab create secret docker-registry NAME --docker-server=...`.
    #[command(subcommand)]
    Create(CreateCommand),
    /// List pods, or show one.
    Get {
        /// The resource type: pods (pod, po), secrets (secret) or events (event, ev).
        resource: String,
        name: Option<String>,
        #[command(flatten)]
        ns: Namespace,
        /// Every namespace.
        #[arg(short = 'A', long = "all-namespaces")]
        all_namespaces: bool,
        /// Output format: wide, json, yaml, name, jsonpath=TEMPLATE.
        #[arg(short = 'o', long = "output")]
        output: Option<String>,
        /// Only pods whose labels match: `a=b`, `a!=b`, `a`, `!a`,
        /// `a in (x,y)`, `a notin (x,y)`, comma-separated.
        #[arg(short = 'l', long = "selector")]
        selector: Option<String>,
        /// Tables without their header line.
        #[arg(long)]
        no_headers: bool,
        /// After the pods, print each again at each change until it is
        /// deleted (one JSON object per line with -o json). Without a name,
        /// the pods there when the watch starts.
        #[arg(short = 'w', long = "watch")]
        watch: bool,
        /// Like --watch, without printing the pods as they are first.
        #[arg(long)]
        watch_only: bool,
    },
    /// Show a pod in detail: containers, limits, namespaces, cgroups, events.
    Describe {
        resource: String,
        name: String,
        #[command(flatten)]
        ns: Namespace,
        /// podlab's own: `mermaid` prints a diagram of the live pod
        /// (processes with their namespaces, cgroups with limits, veth,
        /// bridge, pod IP) instead of the text.
        #[arg(short = 'o', long = "output")]
        output: Option<String>,
    },
    /// Run a command in a container of a pod.
    Exec {
        name: String,
        #[arg(short = 'c', long = "container")]
        container: Option<String>,
        #[command(flatten)]
        ns: Namespace,
        /// Pass stdin to the command; without it the command reads an
        /// empty stdin, as with kubectl.
        #[arg(short = 'i', long = "stdin")]
        stdin: bool,
        /// Accepted for kubectl compatibility.
        #[arg(short = 't', long = "tty")]
        _tty: bool,
        /// podlab's own (kubectl has none): kill the command once it has
        /// run this long (30s, 2m) and fail, as the CRI's ExecSync timeout.
        #[arg(long, value_parser = parse_duration)]
        timeout: Option<Duration>,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Print a container's stdout and stderr (its current start's log,
    /// across rotated files).
    Logs {
        name: String,
        #[arg(short = 'c', long = "container")]
        container: Option<String>,
        #[command(flatten)]
        ns: Namespace,
        /// The previous start of the container (after a restart).
        #[arg(short = 'p', long)]
        previous: bool,
        /// Only the last N lines (-1: all).
        #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
        tail: i64,
        /// Prefix each line with the time it was written (RFC 3339, nanoseconds).
        #[arg(long)]
        timestamps: bool,
        /// Only lines newer than this (5s, 2m, 3h).
        #[arg(long, value_parser = parse_duration)]
        since: Option<Duration>,
        /// Keep printing the container's output until it stops.
        #[arg(short = 'f', long)]
        follow: bool,
    },
    /// Delete pods: SIGTERM, the grace period, SIGKILL, then release everything.
    Delete {
        resource: String,
        #[arg(required_unless_present = "selector")]
        names: Vec<String>,
        /// Delete the pods whose labels match (see `get -l`).
        #[arg(short = 'l', long = "selector", conflicts_with = "names")]
        selector: Option<String>,
        #[command(flatten)]
        ns: Namespace,
        /// Seconds to wait after SIGTERM (default: the pod's terminationGracePeriodSeconds).
        #[arg(long)]
        grace_period: Option<i64>,
        #[arg(long)]
        ignore_not_found: bool,
        /// Wait for the pods to be gone before returning (`--wait=false`
        /// returns once every deletion is asked for).
        #[arg(long, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true,
              default_value_t = true, default_missing_value = "true")]
        wait: bool,
    },
    /// Wait until pods meet a condition or are deleted, as kubectl wait does:
    /// `podlab wait --for=condition=Ready pod/NAME --timeout=60s`.
    Wait {
        /// `pod/NAME` (also `pods/NAME`), or `pod` followed by names.
        #[arg(required = true)]
        resources: Vec<String>,
        /// `condition=TYPE` (status True), `condition=TYPE=STATUS`, or `delete`.
        #[arg(long = "for", value_name = "CONDITION", value_parser = parse_wait_for)]
        for_: api::WaitFor,
        #[command(flatten)]
        ns: Namespace,
        /// How long to wait for each resource (kubectl's default: 30s).
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        timeout: Duration,
    },
    /// CPU (millicores, averaged over a second) and memory (working set) of
    /// pods and their containers, read from their cgroups, as kubectl top.
    Top {
        /// The resource type: pod (pods, po); podlab has one node and no
        /// `top node`.
        resource: String,
        name: Option<String>,
        /// One row per container.
        #[arg(long)]
        containers: bool,
        #[command(flatten)]
        ns: Namespace,
        /// Every namespace.
        #[arg(short = 'A', long = "all-namespaces")]
        all_namespaces: bool,
        /// Only pods whose labels match (see `get -l`).
        #[arg(short = 'l', long = "selector")]
        selector: Option<String>,
        /// Tables without their header line.
        #[arg(long)]
        no_headers: bool,
    },
    /// Print the podlab version and the Kubernetes API version it speaks.
    Version {
        /// Accepted for kubectl compatibility: podlab has no server to ask.
        #[arg(long)]
        client: bool,
    },
    /// Print a shell completion script: `source <(podlab completion bash)`.
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Manage the image store.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Release everything held by pods whose shim is gone.
    Gc,
    /// Serve the Kubernetes API of this node over TLS, so kubectl and client
    /// libraries drive podlab (same pods as the CLI). Makes a CA and client
    /// credentials on first start (under the state root), writes a
    /// kubeconfig and prints the `export KUBECONFIG=...` line.
    #[command(
        after_help = "Served: pods (create, get, list, watch from a resourceVersion with \
        410 Expired past the kept history, bookmarks, label and field selectors; patch as merge, \
        strategic merge or JSON patch and update of what Kubernetes lets change, 409 Conflict on \
        a stale resourceVersion; delete, log, exec), namespaces (create, list, watch, delete with \
        their pods and secrets), secrets (create, get, list, patch, delete), events, the node."
    )]
    Serve {
        /// Where to listen; beyond loopback only on purpose (a warning says so).
        #[arg(long, default_value = "127.0.0.1:6443")]
        address: std::net::SocketAddr,
        /// Where to write the kubeconfig (default: ROOT/serve/kubeconfig).
        #[arg(long, value_name = "PATH")]
        kubeconfig_out: Option<PathBuf>,
    },
    #[command(name = "__shim", hide = true)]
    Shim { namespace: String, name: String },
    #[command(name = "__pause", hide = true)]
    Pause {
        #[arg(long)]
        netns: Option<PathBuf>,
        #[arg(long)]
        hostname: Option<String>,
        #[arg(long)]
        share_pid: bool,
        /// `hostIPC: true`: stay in the node's IPC namespace.
        #[arg(long)]
        host_ipc: bool,
        /// `name=value`, set inside the pod's namespaces.
        #[arg(long)]
        sysctl: Vec<String>,
    },
    #[command(name = "__init", hide = true)]
    Init { config: PathBuf },
    /// Runs one probe or lifecycle hook for the pod's shim.
    #[command(name = "__probe", hide = true)]
    Probe {
        namespace: String,
        name: String,
        request: String,
    },
}

#[derive(Subcommand)]
enum CreateCommand {
    /// Create a secret.
    #[command(subcommand)]
    Secret(CreateSecret),
}

#[derive(Subcommand)]
enum CreateSecret {
    /// A kubernetes.io/dockerconfigjson secret holding one registry login,
    /// for a pod's `imagePullSecrets`.
    DockerRegistry {
        name: String,
        /// The registry (host[:port], or a URL); kubectl's default is Docker Hub.
        #[arg(long, default_value = api::DOCKER_HUB_AUTH_KEY)]
        docker_server: String,
        #[arg(long, required = true)]
        docker_username: String,
        #[arg(long, required = true)]
        docker_password: String,
        #[arg(long)]
        docker_email: Option<String>,
        #[command(flatten)]
        ns: Namespace,
    },
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Import an OCI image layout directory or oci-archive tar.
    Import {
        path: PathBuf,
        #[arg(long)]
        name: Option<String>,
    },
    /// Pull an image from a registry (progress on a terminal).
    Pull {
        reference: String,
        /// No progress, even on a terminal.
        #[arg(long, short)]
        quiet: bool,
        /// A file of Docker configs (a JSON list) whose logins are tried
        /// before the Docker config file's: how the shim hands over a pod's
        /// image pull secrets. It is removed once read.
        #[arg(long, hide = true, value_name = "FILE")]
        logins_from: Option<PathBuf>,
    },
    /// List images.
    #[command(alias = "list")]
    Ls,
    /// Give an image another name.
    Tag { source: String, target: String },
    /// Remove an image name (and blobs nothing else uses).
    #[command(alias = "remove")]
    Rm { reference: String },
}

/// A duration as kubectl takes one (Go's form: `90s`, `1m30s`, `1.5h`,
/// `500ms`); a bare number is seconds, as podlab has always taken it.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let invalid = || format!("invalid duration {s:?} (e.g. 30s, 1m30s, 500ms, 2h)");
    if let Ok(secs) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|_| invalid());
    }
    let d: jiff::SignedDuration = s.parse().map_err(|_| invalid())?;
    Duration::try_from(d).map_err(|_| invalid())
}

/// `--for`: `delete`, `condition=TYPE` or `condition=TYPE=STATUS`.
fn parse_wait_for(s: &str) -> Result<api::WaitFor, String> {
    if s.eq_ignore_ascii_case("delete") {
        return Ok(api::WaitFor::Delete);
    }
    let Some(cond) = s.strip_prefix("condition=") else {
        return Err(format!(
            "unrecognized condition {s:?} (condition=TYPE[=STATUS] or delete)"
        ));
    };
    let (type_, status) = cond.split_once('=').unwrap_or((cond, "True"));
    if type_.is_empty() || status.is_empty() {
        return Err(format!("condition {s:?} names no type or no status"));
    }
    Ok(api::WaitFor::Condition {
        type_: type_.into(),
        status: status.into(),
    })
}

/// Pod names from `pod/NAME`, `pods/NAME` or `pod NAME...`.
fn pod_names(resources: &[String]) -> anyhow::Result<Vec<String>> {
    match resources {
        [kind, names @ ..] if !kind.contains('/') => {
            pods_resource(kind)?;
            if names.is_empty() {
                anyhow::bail!("you must specify the pods to wait for: pod/NAME or pod NAME");
            }
            Ok(names.to_vec())
        }
        _ => resources
            .iter()
            .map(|r| match r.split_once('/') {
                Some((kind, name)) if !name.is_empty() => {
                    pods_resource(kind)?;
                    Ok(name.to_string())
                }
                _ => anyhow::bail!("{r:?}: expected pod/NAME"),
            })
            .collect(),
    }
}

/// `-l`: the empty selector (everything) when not given.
fn parse_selector(text: Option<&str>) -> anyhow::Result<Selector> {
    match text {
        None => Ok(Selector::default()),
        Some(t) => Selector::parse(t).map_err(|e| anyhow::anyhow!("-l/--selector: {e}")),
    }
}

/// What kind of failure the API layer reported, when it did.
fn error_kind(e: &anyhow::Error) -> Option<ErrorKind> {
    e.chain()
        .find_map(|c| c.downcast_ref::<api::Error>())
        .map(api::Error::kind)
}

/// The error as kubectl words it: an object that does not exist is the
/// server's NotFound; everything else an `error: ` line (some messages are
/// kubectl's own already: "error: ...", "The Pod ... is invalid").
fn error_message(e: &anyhow::Error) -> String {
    // Each message says its own level only; `{:#}` adds the causes.
    let msg = format!("{e:#}");
    match error_kind(e) {
        Some(ErrorKind::NotFound) => format!("Error from server (NotFound): {msg}"),
        _ if msg.starts_with("error: ") || msg.starts_with("The ") => msg,
        _ => format!("error: {msg}"),
    }
}

fn main() {
    let cli = Cli::parse();
    let mut config = Config::new(cli.root, cli.image_root, cli.data_root);
    if cli.cni_conf_dir.is_some() {
        config.cni_conf_dir = cli.cni_conf_dir;
    }
    config.seccomp_root = cli.seccomp_root;
    let code = match cli.command {
        // The re-exec'd helpers report through their pipes, not through anyhow.
        Command::Shim { namespace, name } => api::entry::shim(config, PodKey::new(namespace, name)),
        Command::Pause {
            netns,
            hostname,
            share_pid,
            host_ipc,
            sysctl,
        } => api::entry::pause(netns, hostname.as_deref(), share_pid, host_ipc, &sysctl),
        Command::Init { config: path } => api::entry::init(&path),
        Command::Probe {
            namespace,
            name,
            request,
        } => api::entry::probe(&config, &PodKey::new(namespace, name), &request),
        other => match run(&config, other) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("{}", error_message(&e));
                1
            }
        },
    };
    std::process::exit(code);
}

fn pods_resource(resource: &str) -> anyhow::Result<()> {
    match resource {
        "pod" | "pods" | "po" => Ok(()),
        other => anyhow::bail!(
            "the server doesn't have a resource type \"{other}\" (podlab knows pods, secrets and events)"
        ),
    }
}

fn run(config: &Config, command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Apply {
            file,
            ns,
            wait_ready: wait,
        } => {
            let text = read_manifest(&file)?;
            let mut warn = |w: String| eprintln!("{w}");
            for applied in api::apply(
                config,
                &text,
                &file,
                ns.namespace.as_deref(),
                wait,
                &mut warn,
            )? {
                println!("{applied}");
            }
            Ok(0)
        }
        Command::Create(CreateCommand::Secret(CreateSecret::DockerRegistry {
            name,
            docker_server,
            docker_username,
            docker_password,
            docker_email,
            ns,
        })) => {
            api::create_docker_registry_secret(
                config,
                ns.namespace.as_deref(),
                &name,
                &docker_server,
                &docker_username,
                &docker_password,
                docker_email.as_deref(),
            )?;
            println!("secret/{name} created");
            Ok(0)
        }
        Command::Get {
            resource,
            name,
            ns,
            all_namespaces,
            output,
            selector,
            no_headers,
            watch,
            watch_only,
        } => {
            if matches!(resource.as_str(), "secrets" | "secret") {
                if watch || watch_only {
                    anyhow::bail!("podlab cannot watch secrets");
                }
                if selector.is_some() {
                    anyhow::bail!("-l/--selector: podlab selects pods only");
                }
                let cols = cli::Columns {
                    namespace: all_namespaces,
                    no_headers,
                    ..Default::default()
                };
                let output = cli::Output::parse(output.as_deref(), cols)?;
                get_secrets(
                    config,
                    name.as_deref(),
                    ns.namespace.as_deref(),
                    all_namespaces,
                    &output,
                )?;
                return Ok(0);
            }
            if matches!(resource.as_str(), "events" | "event" | "ev") {
                if watch || watch_only {
                    anyhow::bail!("podlab cannot watch events; use `podlab get pod NAME -w`");
                }
                events(
                    config,
                    name.as_deref(),
                    ns.namespace.as_deref(),
                    all_namespaces,
                    output.as_deref(),
                )?;
                return Ok(0);
            }
            pods_resource(&resource)?;
            let selector = parse_selector(selector.as_deref())?;
            if name.is_some() && selector != Selector::default() {
                anyhow::bail!("-l/--selector: a pod name cannot be given with a selector");
            }
            let cols = cli::Columns {
                namespace: all_namespaces,
                no_headers,
                ..Default::default()
            };
            let output = cli::Output::parse(output.as_deref(), cols)?;
            if watch || watch_only {
                let keys = match name {
                    Some(name) => vec![ns.key(&name)],
                    None => api::list(
                        config,
                        (!all_namespaces).then(|| ns.namespace.as_deref().unwrap_or("default")),
                        &selector,
                    )?
                    .iter()
                    .map(|p| {
                        PodKey::new(
                            p.metadata.namespace.clone().unwrap_or_default(),
                            p.metadata.name.clone().unwrap_or_default(),
                        )
                    })
                    .collect(),
                };
                watch_pods(config, &keys, &output, watch_only)?;
                return Ok(0);
            }
            get_pods(
                config,
                name.as_deref(),
                ns.namespace.as_deref(),
                all_namespaces,
                &selector,
                &output,
            )?;
            Ok(0)
        }
        Command::Describe {
            resource,
            name,
            ns,
            output,
        } => {
            pods_resource(&resource)?;
            match output.as_deref() {
                None => print!(
                    "{}",
                    cli::describe_text(&api::describe(config, &ns.key(&name))?)
                ),
                Some("mermaid") => {
                    print!("{}", cli::mermaid(&api::picture(config, &ns.key(&name))?))
                }
                Some(other) => {
                    anyhow::bail!("-o/--output: describe prints text or \"mermaid\", not {other:?}")
                }
            }
            Ok(0)
        }
        Command::Exec {
            name,
            container,
            ns,
            command,
            stdin,
            timeout,
            ..
        } => {
            if !stdin {
                empty_stdin()?;
            }
            Ok(api::exec_with_timeout(
                config,
                &ns.key(&name),
                container.as_deref(),
                &command,
                timeout,
            )?)
        }
        Command::Logs {
            name,
            container,
            ns,
            previous,
            tail,
            timestamps,
            since,
            follow,
        } => {
            let opts = api::LogOptions {
                previous,
                tail: usize::try_from(tail).ok(),
                timestamps,
                since,
                follow,
            };
            logs(config, &ns.key(&name), container.as_deref(), &opts)?;
            Ok(0)
        }
        Command::Delete {
            resource,
            names,
            selector,
            ns,
            grace_period,
            ignore_not_found,
            wait,
        } => {
            if matches!(resource.as_str(), "secret" | "secrets") {
                if selector.is_some() {
                    anyhow::bail!("-l/--selector: podlab selects pods only");
                }
                let namespace = ns.namespace.as_deref().unwrap_or("default");
                let mut failed = false;
                for name in &names {
                    match api::delete_secret(config, namespace, name) {
                        Ok(_) => println!("secret \"{name}\" deleted"),
                        Err(e) if e.kind() == ErrorKind::NotFound => {
                            if !ignore_not_found {
                                eprintln!("Error from server (NotFound): {}", error::chain(&e));
                                failed = true;
                            }
                        }
                        Err(e) => {
                            eprintln!("error: deleting secret {name}: {}", error::chain(&e));
                            failed = true;
                        }
                    }
                }
                return Ok(i32::from(failed));
            }
            pods_resource(&resource)?;
            let names = match selector {
                None => names,
                Some(text) => {
                    let selector = parse_selector(Some(&text))?;
                    let namespace = ns.namespace.as_deref().unwrap_or("default");
                    let pods = api::list(config, Some(namespace), &selector)?;
                    if pods.is_empty() {
                        eprintln!("No resources found");
                    }
                    pods.into_iter().filter_map(|p| p.metadata.name).collect()
                }
            };
            let mut failed = false;
            let mut report = |name: &str, e: api::Error| {
                let kind = e.kind();
                let text = error::chain(&e);
                match kind {
                    ErrorKind::NotFound if ignore_not_found => return,
                    ErrorKind::NotFound => eprintln!("Error from server (NotFound): {text}"),
                    _ => eprintln!("error: deleting pod {name}: {text}"),
                }
                failed = true;
            };
            // Every deletion is asked for first, then waited for: the whole
            // takes about the longest grace period, as with kubectl.
            let mut asked = Vec::new();
            for name in &names {
                match api::begin_delete(config, &ns.key(name), grace_period) {
                    Ok(d) => {
                        println!("pod \"{name}\" deleted");
                        asked.push(d);
                    }
                    Err(e) => report(name, e),
                }
            }
            for d in asked {
                // Without --wait, a live shim finishes the deletion alone;
                // a pod without one is released now.
                if !wait && d.shim_owns_it() {
                    continue;
                }
                let name = d.key.name.clone();
                if let Err(e) = api::finish_delete(config, d) {
                    report(&name, e);
                }
            }
            Ok(i32::from(failed))
        }
        Command::Wait {
            resources,
            for_,
            ns,
            timeout,
        } => {
            let mut failed = false;
            for name in pod_names(&resources)? {
                if api::wait_for(config, &ns.key(&name), &for_, timeout)? {
                    println!("pod/{name} condition met");
                } else {
                    eprintln!("error: timed out waiting for the condition on pods/{name}");
                    failed = true;
                }
            }
            Ok(i32::from(failed))
        }
        Command::Top {
            resource,
            name,
            containers,
            ns,
            all_namespaces,
            selector,
            no_headers,
        } => {
            pods_resource(&resource)?;
            let selector = parse_selector(selector.as_deref())?;
            let namespace = ns.namespace.as_deref().unwrap_or("default");
            let usage = api::top(
                config,
                (!all_namespaces || name.is_some()).then_some(namespace),
                name.as_deref(),
                &selector,
                Duration::from_secs(1),
            )?;
            if usage.is_empty() {
                eprintln!("No resources found in {namespace} namespace.");
                return Ok(0);
            }
            let cols = cli::Columns {
                namespace: all_namespaces,
                no_headers,
                ..Default::default()
            };
            print!("{}", cli::top_table(&usage, containers, cols));
            Ok(0)
        }
        Command::Version { .. } => {
            print!("{}", cli::version_text());
            Ok(0)
        }
        Command::Completion { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "podlab", &mut std::io::stdout());
            Ok(0)
        }
        Command::Image(cmd) => {
            image(config, cmd)?;
            Ok(0)
        }
        Command::Serve {
            address,
            kubeconfig_out,
        } => {
            podlab::serve::run(
                config.clone(),
                podlab::serve::Options {
                    address,
                    kubeconfig_out,
                },
            )?;
            Ok(0)
        }
        Command::Gc => {
            let report = api::gc(config)?;
            for key in &report.released {
                println!("released pod/{} in namespace {}", key.name, key.namespace);
            }
            for key in &report.removed {
                println!("removed pod/{} in namespace {}", key.name, key.namespace);
            }
            for key in &report.scheduled {
                println!("scheduled pod/{} in namespace {}", key.name, key.namespace);
            }
            for key in &report.orphaned_data {
                println!(
                    "removed the data of pod/{} in namespace {} (no record)",
                    key.name, key.namespace
                );
            }
            for line in &report.secrets_repaired {
                println!("secrets: {line}");
            }
            if report.released.is_empty()
                && report.removed.is_empty()
                && report.orphaned_data.is_empty()
                && report.scheduled.is_empty()
                && report.secrets_repaired.is_empty()
            {
                println!("nothing to collect");
            }
            Ok(0)
        }
        Command::Shim { .. }
        | Command::Pause { .. }
        | Command::Init { .. }
        | Command::Probe { .. } => Ok(2),
    }
}

// What the commands read and print: the API layer gives the data, `cli`
// lays it out.

/// Largest manifest podlab reads, like the API server's request limit.
const MAX_MANIFEST: u64 = 3 * 1024 * 1024;

fn read_manifest(file: &str) -> anyhow::Result<String> {
    use anyhow::Context;
    use std::io::Read;
    let mut text = String::new();
    if file == "-" {
        std::io::stdin()
            .take(MAX_MANIFEST + 1)
            .read_to_string(&mut text)
            .context("reading the manifest from stdin")?;
    } else {
        std::fs::File::open(file)
            .with_context(|| format!("the path \"{file}\" does not exist"))?
            .take(MAX_MANIFEST + 1)
            .read_to_string(&mut text)
            .with_context(|| format!("reading {file}"))?;
    }
    if text.len() as u64 > MAX_MANIFEST {
        anyhow::bail!(
            "{file}: the manifest is larger than {} MiB",
            MAX_MANIFEST >> 20
        );
    }
    Ok(text)
}

/// Points this process's stdin at /dev/null, so an exec'd command without
/// `-i` reads end-of-file at once instead of the user's terminal.
fn empty_stdin() -> anyhow::Result<()> {
    use anyhow::Context;
    let null = std::fs::File::open("/dev/null").context("open /dev/null")?;
    nix::unistd::dup2_stdin(&null).context("stdin from /dev/null")?;
    Ok(())
}

/// kubectl's note on stderr when a table would be empty.
fn no_resources(all: bool, ns: &str) {
    if all {
        eprintln!("No resources found");
    } else {
        eprintln!("No resources found in {ns} namespace.");
    }
}

/// `get secrets [NAME]`.
fn get_secrets(
    config: &Config,
    name: Option<&str>,
    namespace: Option<&str>,
    all: bool,
    output: &cli::Output,
) -> anyhow::Result<()> {
    let ns = namespace.unwrap_or("default");
    let secrets = match name {
        Some(name) => vec![api::get_secret(config, ns, name)?],
        None => api::list_secrets(config, (!all).then_some(ns))?,
    };
    if secrets.is_empty() && matches!(output, cli::Output::Table(_)) {
        no_resources(all, ns);
        return Ok(());
    }
    print!(
        "{}",
        cli::render_secrets(&secrets, name.is_some(), output, api::unix_now())?
    );
    Ok(())
}

/// `get pods [NAME]`.
fn get_pods(
    config: &Config,
    name: Option<&str>,
    namespace: Option<&str>,
    all: bool,
    selector: &Selector,
    output: &cli::Output,
) -> anyhow::Result<()> {
    let ns = namespace.unwrap_or("default");
    let pods = match name {
        Some(n) => vec![api::get_pod(config, &PodKey::new(ns, n))?],
        None => api::list(config, (!all).then_some(ns), selector)?,
    };
    if pods.is_empty() && matches!(output, cli::Output::Table(_)) {
        no_resources(all, ns);
        return Ok(());
    }
    print!(
        "{}",
        cli::render_pods(&pods, name.is_some(), output, api::unix_now())?
    );
    Ok(())
}

/// `get -w`: each pod now (unless `watch_only`), then again at each change,
/// until every pod is deleted. Several pods are followed one thread each
/// (the pods there when the watch starts). Table rows come without a header
/// after the first, as kubectl prints them; `-o json` prints one complete
/// Pod object per line.
fn watch_pods(
    config: &Config,
    keys: &[PodKey],
    output: &cli::Output,
    watch_only: bool,
) -> anyhow::Result<()> {
    let printed_header = std::sync::atomic::AtomicBool::new(false);
    let errors = std::sync::Mutex::new(Vec::new());
    let watched = api::watch_pods(config, keys, |_| {
        let (printed_header, errors) = (&printed_header, &errors);
        let mut first = true;
        let mut last = String::new();
        move |pod: &k8s_openapi::api::core::v1::Pod| {
            let skip = first && watch_only;
            first = false;
            if skip {
                return true;
            }
            let line = cli::watch_line(pod, output, &mut last, printed_header, api::unix_now());
            let text = match line {
                Ok(t) => t,
                Err(e) => {
                    if let Ok(mut errs) = errors.lock() {
                        errs.push(e);
                    }
                    return false;
                }
            };
            if !text.is_empty() {
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(text.as_bytes());
                let _ = out.flush();
            }
            true
        }
    });
    if let Some(e) = errors.into_inner().ok().and_then(|mut e| e.pop()) {
        return Err(e);
    }
    Ok(watched?)
}

/// `get events [NAME]`: the pods' events, oldest first.
fn events(
    config: &Config,
    pod: Option<&str>,
    namespace: Option<&str>,
    all: bool,
    output: Option<&str>,
) -> anyhow::Result<()> {
    let ns = namespace.unwrap_or("default");
    let mut rows = api::events(config, if all { None } else { Some(ns) })?;
    rows.retain(|(key, _, _)| pod.is_none_or(|p| p == key.name));
    match cli::events_text(&rows, all, output, api::unix_now())? {
        Some(text) => print!("{text}"),
        None => no_resources(all, ns),
    }
    Ok(())
}

/// `logs`: the lines as they come (with `-f`, until the start is over).
fn logs(
    config: &Config,
    key: &PodKey,
    container: Option<&str>,
    opts: &api::LogOptions,
) -> anyhow::Result<()> {
    use std::io::Write;
    let mut print = |lines: Vec<api::LogLine>| -> std::io::Result<bool> {
        let mut out = std::io::stdout().lock();
        out.write_all(&podlab::api::log_text(&lines, opts.timestamps))?;
        out.flush()?;
        Ok(true)
    };
    api::logs(config, key, container, opts, &mut print)?;
    Ok(())
}

fn image(config: &Config, cmd: ImageCommand) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    match cmd {
        ImageCommand::Import { path, name } => {
            for img in api::import_image(config, &path, name.as_deref())? {
                println!("imported {} {}", img.reference, img.digest);
            }
        }
        ImageCommand::Pull {
            reference,
            quiet,
            logins_from,
        } => {
            let terminal = !quiet && std::io::stderr().is_terminal();
            let mut bar = cli::PullBar::new(&reference);
            let img = api::pull_image(config, &reference, logins_from.as_deref(), &mut |p| {
                if terminal {
                    if let Some(line) = bar.update(p, std::time::Instant::now()) {
                        eprint!("{line}");
                    }
                }
            })?;
            if terminal {
                eprintln!("{}", bar.line());
            }
            println!("pulled {} {}", img.reference, img.digest);
        }
        ImageCommand::Ls => print!("{}", cli::images_table(&api::list_images(config)?)),
        ImageCommand::Tag { source, target } => {
            api::tag_image(config, &source, &target)?;
            println!("tagged {source} as {target}");
        }
        ImageCommand::Rm { reference } => {
            api::remove_image(config, &reference)?;
            println!("untagged {reference}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_kubectl() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("5").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("2h3m4s").unwrap(), Duration::from_secs(7384));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("-3s").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn wait_for_parses_like_kubectl() {
        use api::WaitFor;
        assert_eq!(parse_wait_for("delete").unwrap(), WaitFor::Delete);
        assert_eq!(
            parse_wait_for("condition=Ready").unwrap(),
            WaitFor::Condition {
                type_: "Ready".into(),
                status: "True".into()
            }
        );
        assert_eq!(
            parse_wait_for("condition=Ready=false").unwrap(),
            WaitFor::Condition {
                type_: "Ready".into(),
                status: "false".into()
            }
        );
        assert!(parse_wait_for("ready").is_err());
        assert!(parse_wait_for("condition=").is_err());
        let names = |r: &[&str]| pod_names(&r.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(names(&["pod/a", "pods/b"]).unwrap(), ["a", "b"]);
        assert_eq!(names(&["pod", "a", "b"]).unwrap(), ["a", "b"]);
        assert!(names(&["deploy/a"]).is_err());
        assert!(names(&["pod"]).is_err());
        assert!(names(&["pod/"]).is_err());
    }

    #[test]
    fn errors_are_worded_by_their_kind() {
        let missing = || {
            api::Error::from(podlab::store::Error::NotFound {
                namespace: "default".into(),
                name: "web".into(),
            })
        };
        let said = |e: anyhow::Error| error_message(&e);
        assert_eq!(
            said(missing().into()),
            "Error from server (NotFound): pods \"web\" not found"
        );
        // Found under a context a command added.
        let wrapped = anyhow::Error::from(missing()).context("getting web");
        assert!(said(wrapped).starts_with("Error from server (NotFound): getting web"));
        let busy = api::Error::Io("gc web: device busy".into());
        assert_eq!(said(busy.into()), "error: gc web: device busy");
        assert_eq!(
            said(api::Error::NoObjects.into()),
            "error: no objects passed to apply"
        );
        assert_eq!(said(anyhow::anyhow!("plain")), "error: plain");
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
