#!/usr/bin/env bash
# The README's test command: every Swift test, then the chart checks (Tests/chart: real Helm 4) and the
# real-cluster suite (Tests/cluster: a real Kubernetes v1.36 from ../shared/kube, or $KUBEBUILDER_ASSETS, with
# the chart installed by Helm and the built binaries as the node plugin and controller). As root the Swift tests
# mount real tmpfs volumes and the cluster suite runs; without root or without the Kubernetes binaries the
# cluster suite says so in one line and skips.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"

swift build --build-tests
swift test --skip-build
python3 -m pytest -q -ra Tests/chart Tests/cluster
