#!/usr/bin/env python3
"""The node plugin's footprint per node as deployed, ours against upstream's, on the real cluster of Tests/cluster
(real API server, hollow kubelet, our Key Vault emulator):

- `builtin` (ours as the chart deploys it by default, `linux.builtinRegistrar: true`): one container, our driver
  with its built-in Azure provider, which registers itself with kubelet and answers its own liveness probe;
- `upstream`: upstream's node plugin v1.6.0 + Azure provider v1.8.2 + node-driver-registrar + livenessprobe
  (../shared/upstream), four containers as upstream's two charts run them; the registrar registers upstream's
  driver with the hollow kubelet, the livenessprobe answers kubelet's probe by calling the driver's Probe;
- `sidecars` (optional, `--layouts`): our driver with upstream's registrar and livenessprobe
  (`linux.builtinRegistrar: false`).

Both sides run with their chart's defaults (no rotation, no Secret sync, log verbosity 0). Each process runs in
a memory cgroup of its own (cgroup v1 memory controller, or v2), started inside it so every page it touches is
charged there; the page cache is dropped before each layout starts. Memory is what kubelet reports for a
container (`kubectl top`): the working set, usage minus inactive file pages; RSS beside it. The layouts alternate
(A, B, A, B). In each, once the node's processes are registered and healthy, the same Deployment is scaled to
`--pods` pods, so the real hollow kubelet calls NodePublish on that layout's driver for every pod (the same
SecretProviderClass, workload identity); one pod's files are compared with what the vault holds. Kubelet's
liveness probe is played every second (the livenessprobe's /healthz, or our driver's; upstream's provider's own
/healthz too, as its chart probes it). The pods are scaled to zero (NodeUnpublish) before the layout stops.

Upstream's Azure provider reaches Entra and Key Vault only by their real names on port 443 (MSAL's instance
discovery at login.microsoftonline.com, the vault as <vault>.vault.azure.net, whose 401 challenge must name
https://vault.azure.net). This script serves both names on <--front-address>:443 (127.0.0.2 by default, so that it
does not collide with scripts/bench-upstream.sh, which uses 127.0.0.1:443) with a certificate of the cluster's CA
for those names, and relays each connection to the emulator (TLS both ways, bytes unchanged: the emulator answers
by path, and names the host the client addressed in its OIDC metadata). The provider alone runs in a private
mount namespace whose /etc/hosts (bind-mounted, a copy of the host's with the two names on the front's address)
sends it there; it trusts the cluster's CA through SSL_CERT_FILE. The host's /etc/hosts is never changed. The
provider mounts nothing (upstream's driver writes the files), so its private namespace changes nothing else.

Usage (root; the Kubernetes binaries as for Tests/cluster; upstream's binaries from ../shared/upstream):
    SSCSI_DRIVER_BIN=<release driver> python3 benchmarks/node_footprint.py [--pods 10] [--rounds 2] \
        [--layouts builtin,upstream] [--out benchmarks/node-footprint]
Prints a table and writes <out>.json and <out>.txt. A measurement, not a test: it asserts nothing about figures,
only that each layout registered, answered its probe and mounted every pod with the vault's bytes.
"""
import argparse
import contextlib
import json
import os
import signal
import statistics
import shutil
import subprocess
import sys
import tempfile
import time

import requests

from benchkit import (  # first: puts Tests/cluster on the import path
    AZURE_NAMES, ENTRA_HOST, HERE, MIB, TLSProxy, MemoryGroup, drop_caches, private_hosts_file, rss,
    upstream_dir, wait_for_port_free, with_private_hosts,
)
import conftest
import expected
import harness
import workloads

OBJECTS = [
    {"objectName": "db-pass", "objectType": "secret"},
    {"objectName": "api-key", "objectType": "secret"},
    {"objectName": "web", "objectType": "cert"},
]
# What each layout runs, in the order of the table.
PROCESSES = {
    "builtin": ["node-plugin"],
    "sidecars": ["node-plugin", "node-driver-registrar", "livenessprobe"],
    "upstream": ["upstream-driver", "upstream-provider", "upstream-registrar", "upstream-livenessprobe"],
}
DESCRIPTION = {
    "builtin": "ours, one container (driver with built-in registrar and provider)",
    "sidecars": "ours with upstream's registrar and livenessprobe sidecars",
    "upstream": "upstream v1.6.0 driver + Azure provider v1.8.2 + node-driver-registrar + livenessprobe",
}


GROUPS = {}
_original_start = harness.HostProcess.start


def _start_in_group(self):
    """HostProcess.start, inside the memory group named like the process when there is one."""
    group = GROUPS.get(self.name)
    if group is not None and self.argv[:2] != ["/bin/sh", "-c"]:
        self.argv = group.wrap(self.argv)
    return _original_start(self)


harness.HostProcess.start = _start_in_group


class UpstreamNode:
    """Upstream's four containers as host processes: the driver (its chart's flags), the Azure provider (its
    chart's flags and ../shared/upstream/README.md's, in a private mount namespace whose /etc/hosts sends Entra's
    and the vault's names to the TLS front), the node-driver-registrar and the livenessprobe."""

    def __init__(self, suite, binaries, front_address):
        self.suite = suite
        self.binaries = binaries
        cluster = suite.cluster
        self.dir = os.path.join(suite.dir, "upstream")
        self.providers = os.path.join(self.dir, "providers")
        os.makedirs(self.providers, exist_ok=True)
        self.hosts = private_hosts_file(os.path.join(self.dir, "hosts"), front_address, AZURE_NAMES)
        self.socket = suite.release.socket_path()
        self.liveness_port = harness.free_port()
        self.provider_health_port = harness.free_port()
        self.health_urls = [f"http://127.0.0.1:{self.liveness_port}/healthz", f"http://127.0.0.1:{self.provider_health_port}/healthz"]
        go_env = dict(os.environ, KUBE_FEATURE_WatchListClient="false")
        provider_env = dict(go_env, SSL_CERT_FILE=cluster.pki.ca_path)
        provider_socket = os.path.join(self.providers, "azure.sock")
        self.provider = harness.HostProcess("upstream-provider", with_private_hosts(self.hosts, [
            binaries["secrets-store-csi-driver-provider-azure"], f"--endpoint=unix://{provider_socket}",
            "--construct-pem-chain=true", "--write-cert-and-key-in-separate-files",
            f"--healthz-port={self.provider_health_port}", "--healthz-path=/healthz", "--healthz-timeout=5s",
            "--metrics-backend=prometheus", f"--prometheus-port={harness.free_port()}",
        ]), cluster.logs, env=provider_env)
        self.provider_socket = provider_socket
        self.driver = harness.HostProcess("upstream-driver", [
            binaries["secrets-store-csi-driver"], f"--endpoint=unix://{self.socket}", f"--nodeid={cluster.node_name}",
            f"--provider-volume={self.providers}", f"--metrics-addr=127.0.0.1:{harness.free_port()}",
            "--provider-health-check-interval=2m", "--max-call-recv-msg-size=4194304",
            f"--kubeconfig={cluster.admin_kubeconfig}",
        ], cluster.logs, env=go_env)
        self.registrar = harness.HostProcess("upstream-registrar", [
            binaries["csi-node-driver-registrar"], "--v=5", f"--csi-address={self.socket}",
            f"--kubelet-registration-path={self.socket}",
            f"--plugin-registration-path={os.path.join(cluster.kubelet_root, 'plugins_registry')}",
        ], cluster.logs, env=go_env)
        self.livenessprobe = harness.HostProcess("upstream-livenessprobe", [
            binaries["livenessprobe"], f"--csi-address={self.socket}", "--probe-timeout=3s",
            f"--http-endpoint=127.0.0.1:{self.liveness_port}", "-v=2",
        ], cluster.logs, env=go_env)
        self.processes = {
            "upstream-driver": self.driver, "upstream-provider": self.provider,
            "upstream-registrar": self.registrar, "upstream-livenessprobe": self.livenessprobe,
        }

    def start(self):
        cluster = self.suite.cluster
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.provider_socket)
        self.provider.start()
        harness.eventually(lambda: self._alive(self.provider) and os.path.exists(self.provider_socket), 30, "upstream provider's socket")
        os.makedirs(os.path.dirname(self.socket), exist_ok=True)
        self.driver.start()
        harness.eventually(lambda: self._alive(self.driver) and os.path.exists(self.socket), 30, "upstream driver's socket")
        offset = self.registrar.log_offset()
        self.registrar.start()

        def registered():
            self._alive(self.registrar)
            log = self.registrar.log_since(offset)
            assert "plugin_registered:true" in log or "PluginRegistered:true" in log, "no verdict from kubelet yet"
            drivers = cluster.storage.read_csi_node(cluster.node_name).spec.drivers or []
            return any(d.name == harness.DRIVER_NAME for d in drivers)

        harness.eventually(registered, 60, "kubelet to register upstream's driver")
        self.livenessprobe.start()

    @staticmethod
    def _alive(process):
        assert process.running, f"{process.name} exited {process.returncode}: {harness.REDACT(process.tail(10))}"
        return True

    def stop(self):
        # Reverse order: the sidecars, then the driver, then the provider.
        for process in (self.livenessprobe, self.registrar, self.driver, self.provider):
            process.stop()


def ours_values(release, builtin):
    """Our chart's defaults as deployed (no rotation, no Secret sync, verbosity 0), with this cluster's paths and
    the emulator as Key Vault and Entra."""
    return release.base_values(
        linux={"builtinRegistrar": builtin}, logVerbosity=0, syncSecret={"enabled": False},
        enableSecretRotation=False, rotationPollInterval="", rotationRestart={"enabled": False},
    )


def scale(suite, namespace, replicas, timeout=180):
    """Scales the footprint Deployment; returns its pods once all are Running (or once none is left and the
    kubelet has unmounted every volume)."""
    cluster = suite.cluster
    before = [p.metadata.uid for p in cluster.core.list_namespaced_pod(namespace, label_selector="app=footprint").items]
    cluster.apps.patch_namespaced_deployment_scale("footprint", namespace, {"spec": {"replicas": replicas}})
    if replicas:
        return workloads.wait_running(cluster, namespace, "footprint", replicas, timeout=timeout)

    def gone():
        left = cluster.core.list_namespaced_pod(namespace, label_selector="app=footprint").items
        assert not left, f"{len(left)} pod(s) left"
        return workloads.no_mounts_for(cluster, before)

    harness.eventually(gone, timeout, "the footprint pods to go and their volumes to be unmounted")
    return []


def check_files(suite, pods, layout):
    """Every pod's volume holds the objects' files, and one pod's files are the vault's bytes (as upstream's
    provider writes them). Returns what was checked."""
    want = expected.files_for(suite.emulator, OBJECTS)
    cluster = suite.cluster
    for pod in pods:
        got = workloads.read_tree(workloads.volume_path(cluster, pod))
        missing = sorted(set(want) - set(got))
        assert not missing, f"{layout}: pod {pod.metadata.name} lacks {missing} (has {sorted(got)})"
    first = workloads.read_tree(workloads.volume_path(cluster, pods[0]))
    differing = [path for path in want if first[path] != want[path]]
    assert not differing, f"{layout}: {', '.join(f'{p} {expected.digest(first[p])} != {expected.digest(want[p])}' for p in differing)}"
    return {"pods_with_files": len(pods), "compared_files": sorted(want), "equal": True}


def measure_layout(suite, namespace, layout, args, upstream, front):
    """Starts the node's processes in `layout`, each in its own memory group, mounts the pods through the kubelet,
    plays kubelet's liveness probes every second, samples every process's working set and RSS, then unmounts
    and stops. Returns the figures."""
    release = suite.release
    cluster = suite.cluster
    for name in list(GROUPS):
        GROUPS.pop(name).remove()
    if layout in ("builtin", "sidecars"):
        values = ours_values(release, layout == "builtin")
        if release.values != values:
            release.upgrade(values)
    drop_caches()
    for name in PROCESSES[layout]:
        GROUPS[name] = MemoryGroup(f"sscsi-footprint-{name}")
    started = time.monotonic()
    connections = front.connections if front else 0
    if layout == "upstream":
        assert not (release.driver and release.driver.running), "our driver still runs"
        upstream.start()
        processes = dict(upstream.processes)
        health_urls = upstream.health_urls
    else:
        release.start_driver(wait_registered=True)
        processes = {"node-plugin": release.driver}
        if layout == "sidecars":
            processes["node-driver-registrar"] = release.registrar
            port = harness.free_port()
            probe = harness.HostProcess("livenessprobe", [
                os.path.join(upstream.binaries["dir"], "livenessprobe"), f"--csi-address={release.socket_path()}",
                "--probe-timeout=3s", f"--http-endpoint=127.0.0.1:{port}", "-v=2",
            ], cluster.logs).start()
            processes["livenessprobe"] = probe
            health_urls = [f"http://127.0.0.1:{port}/healthz"]
        else:
            health_urls = [release.driver_metrics + "/healthz"]
    registered = time.monotonic() - started
    try:
        def healthy():
            return all(requests.get(url, timeout=5).status_code == 200 for url in health_urls)

        harness.eventually(healthy, 30, f"/healthz of the {layout} layout")

        def probe():
            for url in health_urls:
                with contextlib.suppress(requests.RequestException):
                    requests.get(url, timeout=5)

        # Kubelet mounts every pod through this layout's driver.
        mount_started = time.monotonic()
        pods = scale(suite, namespace, args.pods)
        mounted = time.monotonic() - mount_started
        files = check_files(suite, pods, layout)
        end = time.monotonic() + args.settle
        while time.monotonic() < end:
            probe()
            time.sleep(1)
        samples = []
        for _ in range(args.samples):
            probe()
            sample = {}
            for name, process in processes.items():
                working_set, usage = GROUPS[name].working_set()
                sample[name] = {"working_set": working_set, "usage": usage, "rss": rss(process.pid), **GROUPS[name].composition()}
            samples.append(sample)
            time.sleep(1)
        scale(suite, namespace, 0)
    finally:
        if layout == "upstream":
            upstream.stop()
        else:
            release.stop_driver()
            if layout == "sidecars":
                processes["livenessprobe"].stop()
    keys = ("working_set", "usage", "rss", "anon", "active_file", "mapped_file", "shmem")
    result = {"layout": layout, "registered_after_s": round(registered, 2), "pods_mounted_after_s": round(mounted, 2), "files": files, "processes": {}}
    if layout == "upstream":
        # Upstream's provider reached Entra and the vault through the front only (the host's /etc/hosts is unchanged).
        result["front_connections"] = front.connections - connections
    for name in processes:
        result["processes"][name] = {key: statistics.median(s[name][key] for s in samples) for key in keys}
    result["total_samples"] = [{key: sum(s[name][key] for name in processes) for key in keys} for s in samples]
    result["total"] = {key: statistics.median(t[key] for t in result["total_samples"]) for key in keys}
    return result


def ratio(ours, theirs):
    return ours / theirs if theirs else float("nan")


def report(args, driver, driver_size, results, binaries):
    lines = [
        f"node footprint as deployed (chart defaults), {args.pods} pods mounted through the hollow kubelet in each layout "
        f"({len(OBJECTS)} objects each, workload identity), median of {args.samples} samples after {args.settle} s",
        f"ours: {driver} stripped ({driver_size / 1e6:.1f} MB, as the image ships it); upstream: {binaries['dir']}",
    ]
    for layout in args.layouts:
        lines.append(f"  {layout}: {DESCRIPTION[layout]}")
    # Per process, after the comparison.
    detail = [f"{'round':>5} {'layout':<9} {'containers':>10} {'process':<24} {'working set MiB':>16} {'RSS MiB':>8}"
              f" {'anon':>6} {'active file':>12} {'mapped file':>12} {'shmem':>6}   (memory.stat, MiB)"]

    def row(number, layout, count, name, figures):
        return (f"{number:>5} {layout:<9} {count:>10} {name:<24} {figures['working_set'] / MIB:>16.1f} {figures['rss'] / MIB:>8.1f}"
                f" {figures['anon'] / MIB:>6.1f} {figures['active_file'] / MIB:>12.1f} {figures['mapped_file'] / MIB:>12.1f} {figures['shmem'] / MIB:>6.1f}")

    for result in results:
        count = len(result["processes"])
        for name, figures in result["processes"].items():
            detail.append(row(result["round"], result["layout"], count, name, figures))
        detail.append(row(result["round"], result["layout"], count, "= node total", result["total"]))
    summary = {}
    if "builtin" in args.layouts and "upstream" in args.layouts:
        lines.append("")
        lines.append("ours (builtin) / upstream (four containers), node total; target <= 0.35x")
        lines.append(f"{'round':>7} {'ours WS':>8} {'upstream WS':>12} {'ratio':>6}   {'ours RSS':>8} {'upstream RSS':>12} {'ratio':>6}")
        rounds = sorted({r["round"] for r in results})
        per_round = []
        for number in rounds:
            ours = next(r for r in results if r["round"] == number and r["layout"] == "builtin")["total"]
            theirs = next(r for r in results if r["round"] == number and r["layout"] == "upstream")["total"]
            row = {"round": number, "ours": ours, "upstream": theirs,
                   "working_set_ratio": ratio(ours["working_set"], theirs["working_set"]), "rss_ratio": ratio(ours["rss"], theirs["rss"])}
            per_round.append(row)
            lines.append(f"{number:>7} {ours['working_set'] / MIB:>8.1f} {theirs['working_set'] / MIB:>12.1f} {row['working_set_ratio']:>6.2f}   "
                         f"{ours['rss'] / MIB:>8.1f} {theirs['rss'] / MIB:>12.1f} {row['rss_ratio']:>6.2f}")

        def pooled(layout, key):
            return statistics.median(t[key] for r in results if r["layout"] == layout for t in r["total_samples"])

        overall = {key: {"ours": pooled("builtin", key), "upstream": pooled("upstream", key)} for key in ("working_set", "rss")}
        for figures in overall.values():
            figures["ratio"] = ratio(figures["ours"], figures["upstream"])
        lines.append(f"{'overall':>7} {overall['working_set']['ours'] / MIB:>8.1f} {overall['working_set']['upstream'] / MIB:>12.1f} "
                     f"{overall['working_set']['ratio']:>6.2f}   {overall['rss']['ours'] / MIB:>8.1f} {overall['rss']['upstream'] / MIB:>12.1f} "
                     f"{overall['rss']['ratio']:>6.2f}")
        verdict = "met" if overall["working_set"]["ratio"] <= 0.35 else "missed"
        lines.append(f"target (working set <= 0.35x upstream's four containers): {verdict}, {overall['working_set']['ratio']:.2f}x "
                     f"(overall: median of all samples of each side's node total)")
        summary = {"per_round": per_round, "overall": overall, "target": 0.35, "target_met": verdict == "met"}
    lines += [""] + detail + [""]
    for result in results:
        files = result["files"]
        lines.append(f"round {result['round']} {result['layout']}: registered after {result['registered_after_s']} s, "
                     f"{files['pods_with_files']} pods mounted after {result['pods_mounted_after_s']} s, each with "
                     f"{', '.join(files['compared_files'])}; the first pod's files equal the vault's bytes"
                     + (f"; {result['front_connections']} TLS connections to Entra/the vault through the front" if "front_connections" in result else ""))
    return "\n".join(lines), summary


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--settle", type=int, default=20, help="seconds after the pods run before sampling")
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--layouts", default="builtin,upstream", help="comma-separated, alternated in this order: builtin, upstream, sidecars")
    parser.add_argument("--front-address", default="127.0.0.2", help="loopback address of the TLS front on port 443")
    parser.add_argument("--out", default=os.path.join(HERE, "node-footprint"))
    args = parser.parse_args()
    args.layouts = [layout.strip() for layout in args.layouts.split(",") if layout.strip()]
    unknown = [layout for layout in args.layouts if layout not in PROCESSES]
    if unknown:
        parser.error(f"unknown layouts {unknown}")

    # SIGTERM cleans up as Ctrl-C does.
    def terminated(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, terminated)
    kube_dir = harness.find_kube_binaries()
    driver, emulator = harness.find_product_binaries()
    directory = upstream_dir()
    binaries = {name: os.path.join(directory, name) for name in (
        "secrets-store-csi-driver", "secrets-store-csi-driver-provider-azure", "csi-node-driver-registrar", "livenessprobe")}
    binaries["dir"] = directory
    os.environ.setdefault("SSCSI_REGISTRAR_BIN", binaries["csi-node-driver-registrar"])
    given = driver
    # Our driver as the image ships it: stripped, as scripts/build-release.sh installs it.
    stripped_dir = tempfile.mkdtemp(prefix="sscsi-footprint-bin-")
    driver = os.path.join(stripped_dir, os.path.basename(given))
    shutil.copy2(given, driver)
    subprocess.run(["strip", driver], check=True)
    driver_size = os.path.getsize(driver)
    suite = conftest.Suite(kube_dir, driver, emulator)
    results = []
    front = None
    upstream = None
    try:
        suite.start()
        cluster = suite.cluster
        if "upstream" in args.layouts:
            cert, key = cluster.pki.issue("entra-vault-front", ENTRA_HOST, server_dns=AZURE_NAMES, client=False, server=True)
            # Another bench may hold the port (on 0.0.0.0 or this address): wait for it.
            wait_for_port_free(args.front_address, 443, 600)
            front = TLSProxy(args.front_address, cert, key, int(suite.emulator.base_url.rsplit(":", 1)[1]), suite.emulator.ca_path).start()
        upstream = UpstreamNode(suite, binaries, args.front_address)
        namespace = suite.new_namespace()
        workloads.create_spc(cluster, namespace, "footprint", OBJECTS)
        workloads.create_deployment(cluster, namespace, "footprint", "footprint", replicas=0)
        # The suite started our driver with its test values; each layout starts its own processes.
        suite.release.stop_driver()
        for round_number in range(args.rounds):
            for layout in args.layouts:
                result = measure_layout(suite, namespace, layout, args, upstream, front)
                result["round"] = round_number + 1
                results.append(result)
                print(f"round {round_number + 1} {layout}: working set {result['total']['working_set'] / MIB:.1f} MiB, "
                      f"RSS {result['total']['rss'] / MIB:.1f} MiB", flush=True)
    except BaseException:
        with contextlib.suppress(Exception):
            print(suite.log_tails(), file=sys.stderr)
        if upstream is not None:
            for process in upstream.processes.values():
                with contextlib.suppress(Exception):
                    print(f"----- {process.name}\n{harness.REDACT(process.tail(15))}", file=sys.stderr)
        raise
    finally:
        if upstream is not None:
            upstream.stop()
        if front is not None:
            front.stop()
        for group in list(GROUPS.values()):
            group.remove()
        GROUPS.clear()
        suite.stop(keep=False)
        shutil.rmtree(stripped_dir, ignore_errors=True)

    text, summary = report(args, given, driver_size, results, binaries)
    print(text)
    with open(args.out + ".txt", "w") as file:
        file.write(text + "\n")
    with open(args.out + ".json", "w") as file:
        json.dump({"pods": args.pods, "objects": OBJECTS, "driver": given, "driver_stripped_bytes": driver_size, "upstream": binaries, "layouts": args.layouts,
                   "settle_s": args.settle, "samples": args.samples, "summary": summary, "results": results}, file, indent=1)


if __name__ == "__main__":
    main()
