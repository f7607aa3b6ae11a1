#!/bin/sh
# Prints the cgroups podlab made for one pod, on cgroup v1 or v2: where they
# are and the limits of each container. docs/concepts/cgroups.md shows its
# output on a v1 host and in `cargo xtask vm` (which runs it on every boot).
# usage: pod-cgroups.sh POD-UID
set -eu
uid=$1
pod=podlab/pod-$uid
echo "pod uid $uid, written pod-<uid> below"
show() { # FILE...: one "path: value" line per file
    for f in "$@"; do
        path=${f#/sys/fs/cgroup/}
        echo "$path: $(cat "$f")" | sed "s|pod-$uid|pod-<uid>|"
    done
}
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    echo "cgroup v2: one tree, the controllers enabled down to the leaves"
    find "/sys/fs/cgroup/$pod" -type d | sed "s|^/sys/fs/cgroup/||; s|pod-$uid|pod-<uid>|" | sort
    show "/sys/fs/cgroup/$pod/cgroup.subtree_control"
    for c in "/sys/fs/cgroup/$pod"/ctr-*; do
        show "$c/memory.max" "$c/memory.swap.max" "$c/cpu.max" "$c/cpu.weight" "$c/pids.max"
    done
else
    echo "cgroup v1: one tree per controller, the same directories in each"
    for ctl in memory cpu pids devices; do
        echo "$ctl: $(cd "/sys/fs/cgroup/$ctl/$pod" && find . -mindepth 1 -type d | sed 's|^\./||' | sort | tr '\n' ' ')"
    done
    for c in "/sys/fs/cgroup/memory/$pod"/ctr-*; do
        name=${c##*/}
        show "$c/memory.limit_in_bytes" "$c/memory.memsw.limit_in_bytes" \
            "/sys/fs/cgroup/cpu/$pod/$name/cpu.cfs_quota_us" \
            "/sys/fs/cgroup/cpu/$pod/$name/cpu.cfs_period_us" \
            "/sys/fs/cgroup/cpu/$pod/$name/cpu.shares" \
            "/sys/fs/cgroup/pids/$pod/$name/pids.max"
    done
fi
