#!/bin/busybox sh
# PID 1 of the podlab VM (cargo xtask vm). The initramfs root cannot be
# pivot_root'ed away from, and every container pivots: copy the payload to a
# tmpfs and switch_root into it first, then mount a pure cgroup v2 host.
/bin/busybox --install -s /bin
export PATH=/usr/local/bin:/bin
if [ "$1" != stage2 ]; then
    mount -t tmpfs -o mode=0755 root /newroot
    for d in bin etc lib lib64 usr var images modules guest; do
        [ -e /$d ] && cp -a /$d /newroot/
    done
    mkdir -p /newroot/proc /newroot/sys /newroot/dev /newroot/run /newroot/tmp
    cp /init /newroot/init
    exec switch_root /newroot /init stage2
fi
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount --make-rshared /
for m in $(cat /modules/order); do
    insmod "/modules/$m" || echo "podlab-vm: insmod $m failed"
done
ip link set lo up
hostname podlab-vm
fstype=$(awk '$2 == "/sys/fs/cgroup" { print $3 }' /proc/mounts)
echo "podlab-vm: kernel $(uname -r), /sys/fs/cgroup is $fstype with controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
cd /guest
sh /guest/run.sh
echo "podlab-vm: exit status $?"
sync
poweroff -f
