# vm-test scenario `kernel-info`: prints zpvm.KEY=VALUE lines that the host parses
# (scenarios::KernelInfo). @SYMBOLS@ and @TRACEPOINTS@ are filled in by the host.
set +x
yn() { if "$@"; then echo yes; else echo no; fi; }
echo "zpvm.release=$(uname -r)"
echo "zpvm.cpus=$(nproc)"
echo "zpvm.kprobe_pmu=$(yn [ -e /sys/bus/event_source/devices/kprobe/type ])"
echo "zpvm.btf=$(yn [ -e /sys/kernel/btf/vmlinux ])"
echo "zpvm.tracefs=$(yn [ -e /sys/kernel/tracing/events ])"
echo "zpvm.tun=$(yn [ -e /dev/net/tun ])"
for tp in @TRACEPOINTS@; do
  echo "zpvm.tp.$tp=$(yn [ -e "/sys/kernel/tracing/events/$tp/format" ])"
done

# One awk pass (cheap under TCG) over:
# - /proc/kallsyms: line count, and each symbol with its compiler clones (`.isra.0`);
# - available_filter_functions: ftrace-able functions, the ones fentry can attach to and
#   the only ones trace_kprobe (so the kprobe PMU) accepts: it refuses notrace functions;
# - the kprobe blacklist (debugfs).
files=/proc/kallsyms
for f in /sys/kernel/tracing/available_filter_functions /sys/kernel/debug/kprobes/blacklist; do
  if [ -r "$f" ]; then files="$files $f"; fi
done
awk -v syms='@SYMBOLS@' '
BEGIN { n = split(syms, want, " "); for (i = 1; i <= n; i++) w[want[i]] = 1 }
FILENAME == "/proc/kallsyms" { kind = "sym"; name = $3; if (NF) lines++ }
FILENAME ~ /available_filter_functions$/ { kind = "ftrace"; name = $1; ff++ }
FILENAME ~ /blacklist$/ { kind = "kprobe_blacklisted"; name = $2; bl++ }
{
  base = name; sub(/\..*/, "", base)
  if (base in w && index(seen[kind, base], " " name " ") == 0)
    seen[kind, base] = seen[kind, base] " " name " "
}
END {
  print "zpvm.kallsyms_lines=" lines
  print "zpvm.ftrace_functions=" ff + 0
  print "zpvm.kprobe_blacklist_lines=" bl + 0
  split("sym ftrace kprobe_blacklisted", kinds, " ")
  for (i = 1; i <= n; i++) {
    for (k = 1; k <= 3; k++) {
      v = seen[kinds[k], want[i]]
      gsub(/^ +| +$/, "", v); gsub(/  +/, " ", v)
      print "zpvm." kinds[k] "." want[i] "=" v
    }
  }
}' $files
