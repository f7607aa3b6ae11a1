//! What `cargo xtask labs` does as a student would: per lab, one correct
//! solution and the near misses a grader must refuse, each with the words
//! its failure must contain. Bash, run with the lab's env file sourced.

pub struct NearMiss {
    pub name: &'static str,
    pub body: &'static str,
    /// Part of the failure the grader must give.
    pub expect: &'static str,
}

const fn miss(name: &'static str, expect: &'static str, body: &'static str) -> NearMiss {
    NearMiss { name, body, expect }
}

/// Shell helpers every script may use.
pub const LIB: &str = r#"
# The suite's runner itself: what `cargo xtask conformance` runs, without
# rebuilding the fixture images each time.
conformance() { cargo run -q -p podlab-conformance $SUITE_FEATURES --bin conformance -- "$@"; }
answer() { echo "$1" >> "$LAB_FILES/answers"; }
pid_of() { podlab describe pod "$1" | awk -v c="  $2:" '$0 == c {f=1} f && /^    PID:/ {print $2; exit}'; }
"#;

pub fn solution(n: u32) -> &'static str {
    match n {
        1 => {
            r#"
podlab apply -f "$LAB_FILES/pod.yaml"
podlab get pod "$LAB_POD" -w -o json > "$LAB_FILES/watch.json" & W=$!
podlab wait --for=condition=Ready "pod/$LAB_POD" --timeout=60s
sleep 0.5; kill $W
podlab exec "$LAB_POD" -- sh -c "echo $LAB_TOKEN > /tmp/visit"
"#
        }
        2 => {
            r#"
podlab apply -f "$LAB_FILES/pair.yaml" --wait-ready
PAUSE=$(podlab describe pod "$LAB_POD" | awk '/Pause PID/ {print $3}')
for role in pause first second; do
  if [ $role = pause ]; then P=$PAUSE; else P=$(pid_of "$LAB_POD" $role); fi
  echo "$role $P $(for k in net uts ipc mnt pid; do readlink /proc/$P/ns/$k; done | tr '\n' ' ')" >> "$LAB_FILES/ns.txt"
done
"#
        }
        3 => {
            r#"
sed -i 's/CHOOSE-A-PORT/6123/' "$LAB_FILES/sidecar.yaml"
podlab apply -f "$LAB_FILES/sidecar.yaml" --wait-ready
podlab apply -f "$LAB_FILES/other.yaml" --wait-ready
until podlab logs "$LAB_POD" -c app | grep -q '"ok":true'; do sleep 0.2; done
podlab exec "$LAB_POD" -c sidecar -- probe bind --proto tcp --addr 127.0.0.1 --port 6123 | grep -q EADDRINUSE
podlab exec "$LAB_OTHER" -c client -- probe bind --proto tcp --addr 127.0.0.1 --port 6123 | grep -q '"ok":true'
podlab exec "$LAB_POD" -c sidecar -- probe connect --proto tcp --addr 127.0.0.1 --port 6123 --send "$LAB_TOKEN"
answer port=6123; answer same_pod=EADDRINUSE; answer other_pod=ok
"#
        }
        4 => {
            r#"
podlab apply -f "$LAB_FILES/ipc.yaml" --wait-ready
podlab exec "$LAB_POD" -c writer -- probe shm-create --key "$LAB_KEY" --token "$LAB_TOKEN"
podlab exec "$LAB_POD" -c reader -- probe shm-read --key "$LAB_KEY"
podlab exec "$LAB_POD" -c writer -- probe write-file /dev/shm/note "$LAB_TOKEN"
podlab exec "$LAB_POD" -c reader -- probe read-file /dev/shm/note
"#
        }
        // With --root and --data-root spelled out: the grader must follow them.
        5 => {
            r#"
R="--root $LAB_ROOT --data-root $PODLAB_DATA_ROOT"
unset PODLAB_ROOT PODLAB_DATA_ROOT
podlab apply $R -f "$LAB_FILES/limits.yaml" --wait-ready
podlab exec $R "$LAB_POD" -c small -- probe alloc 100 || echo "exit code $?"
podlab exec $R "$LAB_POD" -c large -- probe alloc 100
answer "small_cgroup=$(podlab describe $R pod "$LAB_POD" | awk '/Cgroup memory/ && /ctr-small/ {print $3}')"
"#
        }
        6 => {
            r#"
podlab apply -f "$LAB_FILES/pods.yaml"
seen=""
for i in $(seq 300); do
  m=$(podlab get pod "$LAB_POD" -o jsonpath='{.status.containerStatuses[0].state.waiting.message}')
  d=$(echo "$m" | sed -n 's/^back-off \([^ ]*\) .*/\1/p')
  case " $seen " in *" $d "*) ;; *) [ -n "$d" ] && seen="$seen $d" ;; esac
  [ "$(echo $seen | wc -w)" -ge 2 ] && break
  sleep 0.2
done
# The second back-off ends with a start: wait for it.
until [ "$(podlab get pod "$LAB_POD" -o jsonpath='{.status.containerStatuses[0].restartCount}')" -ge 3 ]; do sleep 0.3; done
answer "delays=$(echo $seen | tr ' ' ',')"
answer reason=CrashLoopBackOff
"#
        }
        7 => {
            r#"
podlab apply -f "$LAB_FILES/pair.yaml" --wait-ready
podlab exec "$LAB_POD" -c first -- probe write-file /tmp/mine "$LAB_TOKEN"
podlab exec "$LAB_POD" -c second -- probe read-file /tmp/mine
answer "host_path=/proc/$(pid_of "$LAB_POD" first)/root/tmp/mine"
"#
        }
        8 => {
            r#"
podlab apply -f "$LAB_FILES/pod.yaml" --wait-ready
D=$(podlab describe pod "$LAB_POD")
answer "netns=$(echo "$D" | awk '/Netns:/ {print $2}')"
answer "cgroup=$(echo "$D" | awk '/^  Cgroup:/ {print $2}')"
answer "pause_pid=$(echo "$D" | awk '/Pause PID/ {print $3}')"
kill -9 "$(echo "$D" | awk '/Shim PID/ {print $3}')"
until podlab get pods | grep -q ShimLost; do sleep 0.2; done
podlab gc
"#
        }
        9 => {
            r#"
podlab apply -f "$LAB_FILES/net.yaml" --wait-ready
IP=$(podlab get pod "$LAB_POD" -o jsonpath='{.status.podIP}')
connect() { for i in $(seq 50); do "$@" | grep -q '"ok":true' && return 0; sleep 0.2; done; return 1; }
# The lab's question first: from the node, then from the client pod.
connect probe connect --proto tcp --addr "$IP" --port "$LAB_PORT" --send from-the-node
connect podlab exec "$LAB_CLIENT" -- probe connect --proto tcp --addr "$IP" --port "$LAB_PORT" --send "$LAB_TOKEN"
"#
        }
        10 => {
            r#"
podlab apply -f "$LAB_FILES/blocker.yaml" --wait-ready
podlab apply -f "$LAB_FILES/pod.yaml"
podlab get pod "$LAB_POD" -w -o json > "$LAB_FILES/watch.json" & W=$!
sleep 1
podlab get pod "$LAB_POD" -o json | grep -q '"reason": "Unschedulable"'
answer reason=Unschedulable
podlab delete pod "$LAB_BLOCKER"
podlab wait --for=condition=Ready "pod/$LAB_POD" --timeout=60s
sleep 0.5; kill $W
"#
        }
        11 => {
            r#"
F='NET-001|NET-003|NET-005|UTS-00|IPC-00|ISO-002'
conformance --runtime "cli:$LAB_FILES/podlab-broken" --caps "$LAB_CAPS" --focus "$F" --report "$LAB_FILES/broken-report" || true
FAILED=$(grep -o '"id": "[A-Z]*-[0-9]*"\|"status": "[a-z]*"' "$LAB_FILES/broken-report/results.json" | paste - - | awk '/failed/ {print $2}' | tr -d '"' | tr '\n' ' ')
conformance --runtime "cli:$LAB_FILES/podlab-fixed" --caps "$LAB_CAPS" --focus "$F" --report "$LAB_FILES/fixed-report"
echo "The suite on the broken build fails $FAILED: their MUST sentences name the pod property this build breaks, which the same run on the correct build keeps." > "$LAB_FILES/diagnosis.md"
"#
        }
        _ => "",
    }
}

/// A second correct solution through the Kubernetes API, where the lab
/// offers one: `podlab serve` on the lab's root and the real kubectl.
pub fn api_solution(n: u32) -> Option<&'static str> {
    match n {
        10 => Some(
            r#"
podlab serve --address 127.0.0.1:0 --kubeconfig-out "$LAB_FILES/kubeconfig" > "$LAB_FILES/serve.out" & S=$!
trap 'kill $S 2>/dev/null || true' EXIT
for i in $(seq 100); do grep -q '^export KUBECONFIG=' "$LAB_FILES/serve.out" && break; sleep 0.1; done
export KUBECONFIG="$LAB_FILES/kubeconfig"
kubectl apply -f "$LAB_FILES/blocker.yaml"
kubectl wait --for=condition=Ready "pod/$LAB_BLOCKER" --timeout=60s
kubectl apply -f "$LAB_FILES/pod.yaml"
kubectl get pod "$LAB_POD" -w -o json > "$LAB_FILES/watch.json" & W=$!
for i in $(seq 100); do
  kubectl get pod "$LAB_POD" -o jsonpath='{.status.conditions[?(@.type=="PodScheduled")].reason}' | grep -q Unschedulable && break
  sleep 0.2
done
answer reason=Unschedulable
kubectl delete pod "$LAB_BLOCKER"
kubectl wait --for=condition=Ready "pod/$LAB_POD" --timeout=60s
sleep 0.5; kill $W
"#,
        ),
        _ => None,
    }
}

pub fn near_misses(n: u32) -> Vec<NearMiss> {
    match n {
        1 => vec![
            miss(
                "waited with --wait-ready, then looked",
                "no Pending",
                r#"
podlab apply -f "$LAB_FILES/pod.yaml" --wait-ready
podlab get pod "$LAB_POD" -o json > "$LAB_FILES/watch.json"
podlab exec "$LAB_POD" -- sh -c "echo $LAB_TOKEN > /tmp/visit"
"#,
            ),
            miss(
                "the watch of an earlier pod",
                "another pod",
                r#"
podlab apply -f "$LAB_FILES/pod.yaml"
podlab get pod "$LAB_POD" -w -o json > "$LAB_FILES/watch.json" & W=$!
podlab wait --for=condition=Ready "pod/$LAB_POD" --timeout=60s; kill $W
podlab delete pod "$LAB_POD"
podlab apply -f "$LAB_FILES/pod.yaml" --wait-ready
podlab exec "$LAB_POD" -- sh -c "echo $LAB_TOKEN > /tmp/visit"
"#,
            ),
        ],
        2 => vec![
            miss(
                "the shim's PID for the pause",
                "yours is the shim",
                r#"
podlab apply -f "$LAB_FILES/pair.yaml" --wait-ready
SHIM=$(podlab describe pod "$LAB_POD" | awk '/Shim PID/ {print $3}')
echo "pause $SHIM $(for k in net uts ipc mnt pid; do readlink /proc/$SHIM/ns/$k; done | tr '\n' ' ')" >> "$LAB_FILES/ns.txt"
"#,
            ),
            miss(
                "first's own namespaces, read inside it, for the pause's",
                "is not the pause's mnt",
                r#"
podlab apply -f "$LAB_FILES/pair.yaml" --wait-ready
PAUSE=$(podlab describe pod "$LAB_POD" | awk '/Pause PID/ {print $3}')
echo "pause $PAUSE $(podlab exec "$LAB_POD" -c first -- sh -c 'for k in net uts ipc mnt pid; do readlink /proc/self/ns/$k; done' | tr '\n' ' ')" >> "$LAB_FILES/ns.txt"
"#,
            ),
        ],
        3 => vec![
            miss(
                "the client in the other pod",
                "served no connection",
                r#"
sed -i 's/CHOOSE-A-PORT/6123/' "$LAB_FILES/sidecar.yaml"
podlab apply -f "$LAB_FILES/sidecar.yaml" --wait-ready
podlab apply -f "$LAB_FILES/other.yaml" --wait-ready
podlab exec "$LAB_OTHER" -c client -- probe connect --proto tcp --addr 127.0.0.1 --port 6123 --send "$LAB_TOKEN"
answer port=6123; answer same_pod=EADDRINUSE; answer other_pod=ok
"#,
            ),
            miss(
                "the lab's old fixed token",
                "not $LAB_TOKEN",
                r#"
sed -i 's/CHOOSE-A-PORT/6123/' "$LAB_FILES/sidecar.yaml"
podlab apply -f "$LAB_FILES/sidecar.yaml" --wait-ready
podlab apply -f "$LAB_FILES/other.yaml" --wait-ready
until podlab logs "$LAB_POD" -c app | grep -q '"ok":true'; do sleep 0.2; done
podlab exec "$LAB_POD" -c sidecar -- probe connect --proto tcp --addr 127.0.0.1 --port 6123 --send from-app
answer port=6123; answer same_pod=EADDRINUSE; answer other_pod=ok
"#,
            ),
            miss(
                "the conflict answers swapped",
                "not what bind says",
                r#"
sed -i 's/CHOOSE-A-PORT/6123/' "$LAB_FILES/sidecar.yaml"
podlab apply -f "$LAB_FILES/sidecar.yaml" --wait-ready
podlab apply -f "$LAB_FILES/other.yaml" --wait-ready
until podlab logs "$LAB_POD" -c app | grep -q '"ok":true'; do sleep 0.2; done
podlab exec "$LAB_POD" -c sidecar -- probe connect --proto tcp --addr 127.0.0.1 --port 6123 --send "$LAB_TOKEN"
answer port=6123; answer same_pod=ok; answer other_pod=EADDRINUSE
"#,
            ),
        ],
        4 => vec![
            miss(
                "the segment created by the reader",
                "created outside the writer",
                r#"
podlab apply -f "$LAB_FILES/ipc.yaml" --wait-ready
podlab exec "$LAB_POD" -c reader -- probe shm-create --key "$LAB_KEY" --token "$LAB_TOKEN"
podlab exec "$LAB_POD" -c reader -- probe shm-read --key "$LAB_KEY"
podlab exec "$LAB_POD" -c writer -- probe write-file /dev/shm/note "$LAB_TOKEN"
"#,
            ),
            miss(
                "the lab's old fixed token",
                "not $LAB_TOKEN",
                r#"
podlab apply -f "$LAB_FILES/ipc.yaml" --wait-ready
podlab exec "$LAB_POD" -c writer -- probe shm-create --key "$LAB_KEY" --token shared-by-ipc
podlab exec "$LAB_POD" -c reader -- probe shm-read --key "$LAB_KEY"
podlab exec "$LAB_POD" -c writer -- probe write-file /dev/shm/note "$LAB_TOKEN"
"#,
            ),
        ],
        5 => vec![
            miss(
                "no OOM kill: allocated in large only",
                "no OOM kill in small",
                r#"
podlab apply -f "$LAB_FILES/limits.yaml" --wait-ready
podlab exec "$LAB_POD" -c large -- probe alloc 100
answer "small_cgroup=$(podlab describe pod "$LAB_POD" | awk '/Cgroup memory/ && /ctr-small/ {print $3}')"
"#,
            ),
            miss(
                "the manifest's limit changed",
                "your lab asks for",
                r#"
sed -i "s/memory: ${LAB_SMALL_MI}Mi/memory: 32Mi/" "$LAB_FILES/limits.yaml"
podlab apply -f "$LAB_FILES/limits.yaml" --wait-ready
podlab exec "$LAB_POD" -c small -- probe alloc 100 || true
answer "small_cgroup=$(podlab describe pod "$LAB_POD" | awk '/Cgroup memory/ && /ctr-small/ {print $3}')"
"#,
            ),
        ],
        6 => vec![
            miss(
                "applied, nothing observed",
                "report at least two delays",
                r#"
podlab apply -f "$LAB_FILES/pods.yaml"
"#,
            ),
            miss(
                "the documented delays instead of the observed",
                "not what the events show",
                r#"
podlab apply -f "$LAB_FILES/pods.yaml"
until [ "$(podlab get pod "$LAB_POD" -o jsonpath='{.status.containerStatuses[0].restartCount}')" -ge 2 ]; do sleep 0.3; done
answer delays=10s,20s
answer reason=CrashLoopBackOff
"#,
            ),
        ],
        7 => vec![
            miss(
                "written in both containers",
                "write the file in first only",
                r#"
podlab apply -f "$LAB_FILES/pair.yaml" --wait-ready
podlab exec "$LAB_POD" -c first -- probe write-file /tmp/mine "$LAB_TOKEN"
podlab exec "$LAB_POD" -c second -- probe write-file /tmp/mine "$LAB_TOKEN"
answer "host_path=/proc/$(pid_of "$LAB_POD" first)/root/tmp/mine"
"#,
            ),
            miss(
                "a copy on the node, not first's file",
                "is not the /tmp/mine of first",
                r#"
podlab apply -f "$LAB_FILES/pair.yaml" --wait-ready
podlab exec "$LAB_POD" -c first -- probe write-file /tmp/mine "$LAB_TOKEN"
cp "/proc/$(pid_of "$LAB_POD" first)/root/tmp/mine" "$LAB_FILES/copy"
answer "host_path=$LAB_FILES/copy"
"#,
            ),
        ],
        8 => vec![
            miss(
                "deleted instead of crashed",
                "no record of the pod",
                r#"
podlab apply -f "$LAB_FILES/pod.yaml" --wait-ready
D=$(podlab describe pod "$LAB_POD")
answer "netns=$(echo "$D" | awk '/Netns:/ {print $2}')"
answer "cgroup=$(echo "$D" | awk '/^  Cgroup:/ {print $2}')"
answer "pause_pid=$(echo "$D" | awk '/Pause PID/ {print $3}')"
podlab delete pod "$LAB_POD"
"#,
            ),
            miss(
                "crashed, never collected",
                "run gc",
                r#"
podlab apply -f "$LAB_FILES/pod.yaml" --wait-ready
D=$(podlab describe pod "$LAB_POD")
answer "netns=$(echo "$D" | awk '/Netns:/ {print $2}')"
answer "cgroup=$(echo "$D" | awk '/^  Cgroup:/ {print $2}')"
answer "pause_pid=$(echo "$D" | awk '/Pause PID/ {print $3}')"
kill -9 "$(echo "$D" | awk '/Shim PID/ {print $3}')"
until podlab get pods | grep -q ShimLost; do sleep 0.2; done
"#,
            ),
        ],
        9 => vec![
            miss(
                "the token sent from the node",
                "not from the client's pod IP",
                r#"
podlab apply -f "$LAB_FILES/net.yaml" --wait-ready
IP=$(podlab get pod "$LAB_POD" -o jsonpath='{.status.podIP}')
for i in $(seq 50); do probe connect --proto tcp --addr "$IP" --port "$LAB_PORT" --send "$LAB_TOKEN" | grep -q '"ok":true' && break; sleep 0.2; done
"#,
            ),
            miss(
                "the client connected without the token",
                "none sent $LAB_TOKEN",
                r#"
podlab apply -f "$LAB_FILES/net.yaml" --wait-ready
IP=$(podlab get pod "$LAB_POD" -o jsonpath='{.status.podIP}')
for i in $(seq 50); do podlab exec "$LAB_CLIENT" -- probe connect --proto tcp --addr "$IP" --port "$LAB_PORT" | grep -q '"ok":true' && break; sleep 0.2; done
"#,
            ),
        ],
        10 => vec![
            miss(
                "room enough from the start",
                "no FailedScheduling",
                r#"
podlab apply -f "$LAB_FILES/pod.yaml"
podlab get pod "$LAB_POD" -w -o json > "$LAB_FILES/watch.json" & W=$!
podlab wait --for=condition=Ready "pod/$LAB_POD" --timeout=60s; sleep 0.5; kill $W
answer reason=Unschedulable
"#,
            ),
            miss(
                "the watch started once it was scheduled",
                "start it while the pod waits",
                r#"
podlab apply -f "$LAB_FILES/blocker.yaml" --wait-ready
podlab apply -f "$LAB_FILES/pod.yaml"
podlab delete pod "$LAB_BLOCKER"
podlab wait --for=condition=Ready "pod/$LAB_POD" --timeout=60s
podlab get pod "$LAB_POD" -o json > "$LAB_FILES/watch.json"
answer reason=Unschedulable
"#,
            ),
        ],
        11 => vec![
            miss(
                "a diagnosis without a run",
                "no report of a run",
                r#"
echo "I think the broken property is the cgroup memory limit, CGR-001 fails because limits are not applied at all." > "$LAB_FILES/diagnosis.md"
"#,
            ),
            miss(
                "a run focused on a family the fault is not in",
                "did not run (or passed)",
                r#"
conformance --runtime "cli:$LAB_FILES/podlab-broken" --caps "$LAB_CAPS" --focus CGR-001 --report "$LAB_FILES/broken-report" || true
echo "I think the broken property is the cgroup memory limit, CGR-001 fails because limits are not applied at all." > "$LAB_FILES/diagnosis.md"
"#,
            ),
        ],
        _ => Vec::new(),
    }
}
