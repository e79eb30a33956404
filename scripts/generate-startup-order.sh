#!/usr/bin/env bash
# Regenerates scripts/startup-symbol-order.txt, the lld --symbol-ordering-file of the release driver: the functions
# that page-fault while the driver starts, idles and serves, in the order they first faulted. Each round relinks the
# driver with the current file, runs the node-plugin part of the benchmark (csi-bench: start-up, idle, publishes,
# the 100-concurrent burst, 110 volumes, rotation) with every driver process under
# `perf record -e page-faults -d`, and appends the symbols whose pages faulted. The kernel maps 64 KiB around each
# fault, which hides touched neighbours, hence several rounds. Needs perf, python3, grpcio, root.
# Usage: scripts/generate-startup-order.sh [ROUNDS]   (default 6). Builds with the flags of build-release.sh;
# other swift build flags would recompile everything.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-6}"
order="$PWD/scripts/startup-symbol-order.txt"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
release_flags=(-c release --static-swift-stdlib
  -Xswiftc -Xfrontend -Xswiftc -function-sections -Xcc -ffunction-sections -Xcc -fdata-sections)
bin_dir="$(swift build "${release_flags[@]}" --show-bin-path)"
bin="$bin_dir/secrets-store-csi-driver"
swift build "${release_flags[@]}" --product csi-bench >/dev/null
# csi-bench starts this instead of the driver: the driver under perf, one data file per process. It clears the
# signal mask csi-bench's thread handed down (SIGTERM blocked) and passes csi-bench's SIGTERM on to the driver.
cat > "$work/driver-under-perf" <<PY
#!/usr/bin/env python3
import os, signal, subprocess, sys
signal.pthread_sigmask(signal.SIG_SETMASK, [])
recorder = subprocess.Popen(["perf", "record", "-q", "-e", "page-faults", "-c", "1", "-d",
                             "-o", "$work/faults.%d.data" % os.getpid(), "--", "$bin"] + sys.argv[1:])
def stop(signum, frame):
    with open("/proc/%d/task/%d/children" % (recorder.pid, recorder.pid)) as children:
        for child in children.read().split():
            os.kill(int(child), signal.SIGTERM)
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
sys.exit(recorder.wait())
PY
chmod +x "$work/driver-under-perf"
touch "$order"
for round in $(seq 1 "$rounds"); do
    rm -f "$bin"   # SwiftPM does not track the ordering file: force the relink
    swift build "${release_flags[@]}" --product secrets-store-csi-driver >/dev/null
    rm -f "$work"/faults.*
    "$bin_dir/csi-bench" --iterations 20 --json "$work/bench.json" --driver "$work/driver-under-perf" --only node \
        > "$work/bench.txt" 2>&1 || { tail -20 "$work/bench.txt"; exit 1; }
    nm -S --defined-only "$bin" > "$work/symbols.txt"
    for data in $(ls -tr "$work"/faults.*.data); do
        perf script -i "$data" --show-mmap-events -F addr 2>/dev/null
        echo "END-OF-PROCESS"
    done > "$work/faults.txt"
    python3 - "$work/faults.txt" "$work/symbols.txt" "$order" "$(basename "$bin")" <<'PY'
import bisect, re, sys
faults_path, symbols_path, order_path, exe_name = sys.argv[1:5]
symbols = []
for line in open(symbols_path):
    fields = line.split()
    if len(fields) >= 4 and fields[2] in "tTrRwWvV":
        symbols.append((int(fields[0], 16), int(fields[1], 16), fields[3]))
symbols.sort()
starts = [start for start, _, _ in symbols]
known = open(order_path).read().split()
seen, added, faults = set(known), [], 0
load_bias = None
for line in open(faults_path):
    if line.startswith("END-OF-PROCESS"):
        load_bias = None  # each process has its own load address
    elif "PERF_RECORD_MMAP2" in line:
        if load_bias is None and line.rstrip().endswith("/" + exe_name) and "@ 0 " in line:
            load_bias = int(re.search(r"\[(0x[0-9a-f]+)\(", line).group(1), 16)
    elif load_bias is not None and re.fullmatch(r"\s*[0-9a-f]+\s*", line):
        faults += 1
        offset = int(line, 16) - load_bias
        index = bisect.bisect_right(starts, offset) - 1
        if index >= 0:
            start, size, name = symbols[index]
            if start <= offset < start + max(size, 1) and name not in seen:
                seen.add(name)
                added.append(name)
open(order_path, "w").write("".join(name + "\n" for name in known + added))
print(f"round: {faults} faults, {len(added)} new symbols, {len(known) + len(added)} in total")
PY
done
