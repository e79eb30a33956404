#!/usr/bin/env bash
# Issue #25 in one run: our node plugin against upstream's driver v1.6.0 + Azure provider v1.8.2 (../shared/upstream),
# side by side on the real Kubernetes of ../shared/kube, writing everything to benchmarks/:
#   1. scripts/bench-upstream.sh VOLUMES ROUNDS   one node, direct CSI calls: working set (idle, VOLUMES mounted, after
#      BENCH_CYCLES cycles), publish p50/p99 for 1/10/50 objects, a 100-publish burst, CPU, start → Probe, Key Vault
#      requests per publish and per rotation cycle              → benchmarks/upstream.{txt,json}
#   2. benchmarks/node_footprint.py --rounds ROUNDS   the node as deployed, through a real kubelet: ours (one
#      container) against upstream's driver + provider + node-driver-registrar + livenessprobe
#                                                               → benchmarks/node-footprint.{txt,json}
#   3. benchmarks/twenty_nodes.py   NODES hollow kubelets, PODS pods, CLASSES SecretProviderClasses: API requests per
#      node (idle, per pod start, rotation), watches, working set per node → benchmarks/twenty-nodes.{txt,json}
#   4. benchmarks/side_by_side.py   the table BENCHMARKS.md leads with → benchmarks/side-by-side.md
# Needs root (tmpfs mounts, cgroup v1 memory controller, port 443, drop_caches) and the Python packages of the
# cluster tests (Tests/cluster/README.md). Takes about an hour on 2 cores.
# Usage: [BENCH_BIN=DIR] scripts/bench-side-by-side.sh [VOLUMES] [ROUNDS] [NODES] [PODS] [CLASSES]
#   defaults: 110 2 20 500 10000 (the issue's). BENCH_BIN names a directory holding release builds of
#   secrets-store-csi-driver, csi-bench and keyvault-emulator; without it they are built here.
#   BENCH_CYCLES (default 1000) is passed on to step 1.
set -euo pipefail
cd "$(dirname "$0")/.."
volumes="${1:-110}"
rounds="${2:-2}"
nodes="${3:-20}"
pods="${4:-500}"
classes="${5:-10000}"
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }

if [ -z "${BENCH_BIN:-}" ]; then
  release_flags=(-c release --static-swift-stdlib
    -Xswiftc -Xfrontend -Xswiftc -function-sections -Xcc -ffunction-sections -Xcc -fdata-sections)
  for product in secrets-store-csi-driver csi-bench keyvault-emulator; do
    swift build "${release_flags[@]}" --product "$product"
  done
  BENCH_BIN=$(swift build "${release_flags[@]}" --show-bin-path)
fi
export BENCH_BIN
export SSCSI_DRIVER_BIN="$BENCH_BIN/secrets-store-csi-driver"
export SSCSI_EMULATOR_BIN="$BENCH_BIN/keyvault-emulator"
for binary in "$SSCSI_DRIVER_BIN" "$BENCH_BIN/csi-bench" "$SSCSI_EMULATOR_BIN"; do
  [ -x "$binary" ] || { echo "missing $binary" >&2; exit 1; }
done

started=$(date +%s)
echo "== 1/4 one node: scripts/bench-upstream.sh $volumes $rounds"
scripts/bench-upstream.sh "$volumes" "$rounds"
echo "== 2/4 node footprint: benchmarks/node_footprint.py --rounds $rounds"
python3 benchmarks/node_footprint.py --rounds "$rounds"
echo "== 3/4 $nodes nodes: benchmarks/twenty_nodes.py --nodes $nodes --pods $pods --classes $classes"
python3 benchmarks/twenty_nodes.py --nodes "$nodes" --pods "$pods" --classes "$classes"
echo "== 4/4 the side-by-side table"
python3 benchmarks/side_by_side.py
echo "took $(( ($(date +%s) - started) / 60 )) min"
