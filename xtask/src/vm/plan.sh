# What `cargo xtask vm` runs in the guest by default: podlab's cgroup v2
# path on a real v2 kernel (the host is a v1 hybrid).
set -u
status=0
step() { echo; echo "podlab-vm: == $*"; }

step "the cgroup module's tests, with its v2 host tests, on real cgroup v2"
/guest/podlab-lib-tests cgroups:: --include-ignored --test-threads 1 || status=1

step "the conformance suite's cgroup family and LIFE-009 on podlab"
conformance --runtime podlab --podlab-bin /usr/local/bin/podlab \
    --image-root /var/lib/podlab --focus 'CGR-|LIFE-009' --report /tmp/report || status=1

step "one pod of the demo"
podlab apply -f /guest/demo.yaml --wait-ready 120s || status=1
podlab get pods -o wide || status=1
podlab exec demo -c sidecar -- wget -qO- http://127.0.0.1:8080 || status=1
podlab exec demo -c app -- cat /proc/self/cgroup || status=1
# The pod's cgroups as docs/concepts/cgroups.md shows them.
uid=$(podlab get pod demo -o json | sed -n 's/^    "uid": "\(.*\)",*$/\1/p' | head -1)
sh /guest/pod-cgroups.sh "$uid" || status=1
# The limits the demo asks for (64Mi, 500m), as the container sees them.
expect() {
    got=$(podlab exec demo -c app -- cat "/sys/fs/cgroup/$1")
    echo "podlab-vm: $1 = $got"
    [ "$got" = "$2" ] || { echo "podlab-vm: $1 should be $2"; status=1; }
}
expect memory.max 67108864
expect cpu.max "50000 100000"
# Requests default to limits: 500m is shares 512, weight 20.
expect cpu.weight 20
# No process in an inner node: only leaves hold processes.
for d in $(find /sys/fs/cgroup/podlab -type d); do
    if [ -n "$(find "$d" -mindepth 1 -maxdepth 1 -type d)" ] && [ -s "$d/cgroup.procs" ]; then
        echo "podlab-vm: $d has children and processes"; status=1
    fi
done
podlab delete pod demo || status=1
left=$(find /sys/fs/cgroup -path '*podlab*' -type d | head -5)
if [ -n "$left" ]; then echo "podlab-vm: cgroups left after delete: $left"; status=1; fi
exit $status
