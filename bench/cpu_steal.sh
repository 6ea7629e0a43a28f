# cpu_steal.sh: sourced by the bench scripts (POSIX sh). On a VM, steal is
# the time the hypervisor gave this machine's vCPUs to other guests: a
# measurement taken with much of it ran on a busy host. 0 on bare metal.

# The "cpu" line of /proc/stat (user nice system idle iowait irq softirq
# steal ..., in ticks): prints "TOTAL STEAL".
cpu_ticks() { awk '$1 == "cpu" { t = 0; for (i = 2; i <= 9; i++) t += $i; print t, $9 }' /proc/stat; }

# steal_pct BEFORE AFTER (each cpu_ticks' output): steal's share of the
# ticks between them, e.g. "1.8%".
steal_pct() {
    echo "$1 $2" | awk '{ d = $3 - $1; printf "%.1f%%", (d > 0 ? 100 * ($4 - $2) / d : 0) }'
}
