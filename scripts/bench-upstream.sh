#!/usr/bin/env bash
# Issue #25, step 1: our driver (built-in Azure provider) against upstream's node plugin v1.6.0 + Azure provider
# v1.8.2 (../shared/upstream), side by side in one run, on a real API server (etcd + kube-apiserver from
# ../shared/kube) and our Key Vault emulator (hosted by csi-bench on 127.0.0.1:443, answering as
# login.microsoftonline.com and kv1.vault.azure.net through /etc/hosts entries made for the run and removed after).
# Both sides read the same SecretProviderClasses (workload identity; wi10: 9 secrets and a PFX certificate; then
# wi1: 1 secret and wi50: 49 secrets and the PFX, each published as many times, for publish p50/p99 per class size)
# and get the same CSI calls; each side runs in its own memory cgroup (v1), page cache dropped before it starts.
# Prints, per side and as the ratio ours/theirs (median of the rounds): working set (usage − total_inactive_file)
# idle, with the volumes mounted and after unpublishing, RSS, publish p50/p99 (per class: 1, 10, 50 objects), CPU,
# Key Vault and token requests per publish (and the emulator's requests by path), a 100-publish burst (concurrent:
# p50/p99, CPU per publish + unpublish, Key Vault requests), and, each side restarted with --enable-secret-rotation
# --rotation-poll-interval=5s, the emulator's requests over one rotation cycle of VOLUMES volumes sharing objects
# (the driver's own loop, then kubelet's republish of every volume), and whether both sides wrote the same files; writes
# benchmarks/upstream.{txt,json}. Needs root (tmpfs mounts, cgroups, port 443, /etc/hosts, drop_caches).
# Last, BENCH_CYCLES publish + unpublish cycles of the 10-object class (8 at a time; default 1000), then the working
# set and RSS again; each working set (idle, mounted, after the cycles) has memory.stat's anon (total_rss),
# active_file, inactive_file and mapped_file beside it. Before each side starts, the SecretProviderClassPodStatus
# objects the sides before it left are deleted, as the garbage collector deletes them once their pods are gone (the
# bench has neither): every side starts from the same state, none (with about 430 left over, ours, which lists them
# and checks their targets before it answers Probe, was 2x slower to start in round 2).
# Usage: [BENCH_BIN=DIR] [BENCH_CYCLES=N] [BENCH_LOGS=DIR] scripts/bench-upstream.sh [VOLUMES] [ROUNDS]
# (defaults: 20 volumes, 2 rounds a side, 1000 cycles; #25 item 1's run: 110 2; a quick one: BENCH_CYCLES=100 … 20 1)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
volumes="${1:-20}"
rounds="${2:-2}"
cycles="${BENCH_CYCLES:-1000}"
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
[ -d /sys/fs/cgroup/memory ] || { echo "needs cgroup v1 memory controller at /sys/fs/cgroup/memory" >&2; exit 1; }

# Binaries: ours in release with the flags of scripts/build-release.sh and scripts/bench.sh (BENCH_BIN names a
# directory where both products are already built), theirs unpacked, and the Kubernetes components.
if [ -n "${BENCH_BIN:-}" ]; then bin="$BENCH_BIN"; else
  release_flags=(-c release --static-swift-stdlib
    -Xswiftc -Xfrontend -Xswiftc -function-sections -Xcc -ffunction-sections -Xcc -fdata-sections)
  swift build "${release_flags[@]}" --product secrets-store-csi-driver
  swift build "${release_flags[@]}" --product csi-bench
  bin=$(swift build "${release_flags[@]}" --show-bin-path)
fi
kube=$(../shared/kube/install.sh | tail -1)
upstream=$(../shared/upstream/install.sh | tail -1)

work=$(mktemp -d /tmp/bench-upstream.XXXXXX)
pids=()
hosts_backup="$work/hosts.orig"
cleanup() {
  set +e
  trap - EXIT INT TERM
  [ -f "$hosts_backup" ] && cat "$hosts_backup" > /etc/hosts
  # Any mount csi-bench left (it unmounts its own; this is for a run cut short).
  grep " $work/" /proc/mounts | awk '{print $2}' | sort -r | while read -r m; do umount -l "$m"; done
  # The API server before etcd (it waits for etcd while shutting down); SIGKILL after 5 s.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    pid=${pids[i]}
    kill "$pid" 2>/dev/null || continue
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    wait "$pid" 2>/dev/null
  done
  for group in /sys/fs/cgroup/memory/bench-upstream-*; do [ -d "$group" ] && rmdir "$group"; done
  # The processes' logs, kept for a run that failed (BENCH_LOGS=DIR).
  [ -n "${BENCH_LOGS:-}" ] && mkdir -p "$BENCH_LOGS" && cp "$work"/*.log "$BENCH_LOGS"/ 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Certificates: the API server serves with its own self-signed one (--cert-dir); clients authenticate with a
# static token; service account tokens are signed with an RSA key (RS256, what the emulator verifies, as Entra).
openssl genrsa -out "$work/sa.key" 2048 2>/dev/null
openssl rsa -in "$work/sa.key" -pubout -out "$work/sa.pub" 2>/dev/null
admin_token=$(openssl rand -hex 16)
echo "$admin_token,admin,admin,system:masters" > "$work/tokens.csv"
# The PFX certificate object: as Key Vault exports one (SHA-1 MAC, legacy PBE, no password), which is what
# Go's x/crypto/pkcs12 in upstream's provider reads.
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/web.key" -out "$work/web.crt" -days 30 \
  -subj "/CN=web.bench.example" 2>/dev/null
openssl pkcs12 -export -legacy -inkey "$work/web.key" -in "$work/web.crt" -passout pass: \
  -macalg sha1 -keypbe PBE-SHA1-3DES -certpbe PBE-SHA1-3DES -out "$work/web.pfx" 2>/dev/null \
  || openssl pkcs12 -export -inkey "$work/web.key" -in "$work/web.crt" -passout pass: \
    -macalg sha1 -keypbe PBE-SHA1-3DES -certpbe PBE-SHA1-3DES -out "$work/web.pfx"

# Our driver as the image ships it: stripped, as scripts/build-release.sh installs it.
install -m 0755 "$bin/secrets-store-csi-driver" "$work/secrets-store-csi-driver"
strip "$work/secrets-store-csi-driver"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
etcd_port=$(free_port); peer_port=$(free_port); api_port=$(free_port)
"$kube/etcd" --data-dir "$work/etcd" --name default \
  --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
  --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
  --initial-cluster "default=http://127.0.0.1:$peer_port" --logger zap --log-level warn >"$work/etcd.log" 2>&1 &
pids+=($!)
"$kube/kube-apiserver" --etcd-servers "http://127.0.0.1:$etcd_port" --bind-address 127.0.0.1 \
  --secure-port "$api_port" --advertise-address 127.0.0.1 --endpoint-reconciler-type none \
  --service-cluster-ip-range 10.96.0.0/24 --cert-dir "$work/certs" --token-auth-file "$work/tokens.csv" \
  --authorization-mode Node,RBAC --service-account-issuer https://kubernetes.default.svc \
  --service-account-key-file "$work/sa.pub" --service-account-signing-key-file "$work/sa.key" \
  --api-audiences https://kubernetes.default.svc,api://AzureADTokenExchange --profiling=false \
  >"$work/apiserver.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 120); do
  [ -f "$work/certs/apiserver.crt" ] && curl -sf --cacert "$work/certs/apiserver.crt" \
    -H "Authorization: Bearer $admin_token" "https://127.0.0.1:$api_port/readyz" >/dev/null 2>&1 && break
  sleep 0.5
done
cat >"$work/kubeconfig" <<EOF
apiVersion: v1
kind: Config
current-context: bench
clusters: [{name: bench, cluster: {server: "https://127.0.0.1:$api_port", certificate-authority-data: "$(base64 -w0 "$work/certs/apiserver.crt")"}}]
users: [{name: admin, user: {token: "$admin_token"}}]
contexts: [{name: bench, context: {cluster: bench, user: admin}}]
EOF
k() { kubectl --kubeconfig "$work/kubeconfig" "$@" 2>/dev/null; }
k apply -f charts/secrets-store-csi-driver/crds/ >/dev/null
k create namespace bench >/dev/null
k -n bench create serviceaccount app >/dev/null
k wait --for condition=established --timeout=30s crd/secretproviderclasses.secrets-store.csi.x-k8s.io >/dev/null
tenant=72f988bf-86f1-41af-91ab-2d7cd011db47
# Three classes (workload identity): wi1 (1 secret), wi10 (9 secrets + the PFX), wi50 (49 secrets + the PFX).
spc() { # NAME SECRETS: SECRETS secrets s0.. and, when SECRETS > 1, the PFX certificate's secret "web"
  local objects="" i
  for ((i = 0; i < $2; i++)); do objects+="      - |
        objectName: s$i
        objectType: secret
"; done
  if [ "$2" -gt 1 ]; then objects+="      - |
        objectName: web
        objectType: secret
"; fi
  cat <<EOF
---
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: $1, namespace: bench}
spec:
  provider: azure
  parameters:
    keyvaultName: kv1
    tenantId: "$tenant"
    clientID: wi-app
    objects: |
      array:
$objects
EOF
}
{ spc wi1 1; spc wi10 9; spc wi50 49; } >"$work/spc.yaml"
k apply -f "$work/spc.yaml" >/dev/null
k -n bench create token app --audience api://AzureADTokenExchange --duration 2h >"$work/sa-token"

# The hosts the upstream provider reaches (MSAL's instance discovery and token endpoint, the vault), for this run.
cp /etc/hosts "$hosts_backup"
printf '127.0.0.1 login.microsoftonline.com kv1.vault.azure.net\n' >>/etc/hosts

mkdir -p benchmarks
"$bin/csi-bench" upstream --work "$work" --volumes "$volumes" --rounds "$rounds" \
  --ours "$work/secrets-store-csi-driver" --theirs-driver "$upstream/secrets-store-csi-driver" \
  --theirs-provider "$upstream/secrets-store-csi-driver-provider-azure" \
  --tenant "$tenant" --cycles "$cycles" --json benchmarks/upstream.json | tee benchmarks/upstream.txt
