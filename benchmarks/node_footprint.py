#!/usr/bin/env python3
"""The node plugin's footprint per node as the chart deploys it, both ways, on the real cluster of Tests/cluster:

- built-in registrar (`linux.builtinRegistrar: true`, the default): one container, the driver, which registers
  itself with kubelet and answers its own liveness probe;
- sidecars (`false`, the upstream layout): the driver + upstream's node-driver-registrar + livenessprobe.

Each process runs in a memory cgroup of its own (cgroup v1 memory controller, or v2), started inside it so every
page it touches is charged there; the page cache is dropped before each layout starts. Memory is what kubelet
reports for a container (`kubectl top`): the working set, usage minus inactive file pages; RSS beside it. The
layouts alternate (A, B, A, B) with the same pods mounted throughout, and kubelet's liveness probes are played
every second against whichever process answers /healthz in that layout.

Usage (root; the Kubernetes binaries as for Tests/cluster; upstream's sidecars from ../shared/upstream):
    SSCSI_DRIVER_BIN=<release driver> python3 benchmarks/node_footprint.py [--pods 10] [--rounds 2] [--out benchmarks/node-footprint]
Prints a table and writes <out>.json and <out>.txt. A measurement, not a test: it asserts nothing about figures.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "Tests", "cluster"))

import conftest  # noqa: E402
import harness  # noqa: E402
import workloads  # noqa: E402

MIB = 1024 * 1024


class MemoryGroup:
    """A memory cgroup for one process: created empty, the process put in before it execs."""

    def __init__(self, name):
        v1 = "/sys/fs/cgroup/memory"
        self.v2 = not os.path.isdir(v1)
        root = "/sys/fs/cgroup" if self.v2 else v1
        self.path = os.path.join(root, f"sscsi-footprint-{name}")
        if os.path.isdir(self.path):
            self.remove()
        os.mkdir(self.path)

    def wrap(self, argv):
        """`argv` started from a shell that first moves itself into this group."""
        return ["/bin/sh", "-c", f'echo $$ > {self.path}/cgroup.procs && exec "$@"', "sh", *argv]

    def _stat(self):
        name = "memory.stat"
        with open(os.path.join(self.path, name)) as file:
            return {k: int(v) for k, v in (line.split() for line in file)}

    def working_set(self):
        """(working set, usage) in bytes: usage minus inactive file pages, as kubelet computes it."""
        stat = self._stat()
        if self.v2:
            with open(os.path.join(self.path, "memory.current")) as file:
                usage = int(file.read())
            inactive = stat.get("inactive_file", 0)
        else:
            with open(os.path.join(self.path, "memory.usage_in_bytes")) as file:
                usage = int(file.read())
            inactive = stat.get("total_inactive_file", 0)
        return max(0, usage - inactive), usage

    def remove(self):
        with open(os.path.join(self.path, "cgroup.procs")) as file:
            left = [int(pid) for pid in file.read().split()]
        for pid in left:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        for _ in range(50):
            try:
                os.rmdir(self.path)
                return
            except OSError:
                time.sleep(0.1)


def rss(pid):
    with open(f"/proc/{pid}/status") as file:
        for line in file:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def drop_caches():
    subprocess.run(["sync"], check=False)
    with open("/proc/sys/vm/drop_caches", "w") as file:
        file.write("3\n")


GROUPS = {}
_original_start = harness.HostProcess.start


def _start_in_group(self):
    """HostProcess.start, inside the memory group named like the process when there is one."""
    group = GROUPS.get(self.name)
    if group is not None and self.argv[:2] != ["/bin/sh", "-c"]:
        self.argv = group.wrap(self.argv)
    return _original_start(self)


harness.HostProcess.start = _start_in_group


def upstream_binary(name):
    directory = subprocess.run([os.path.join(REPO, "..", "shared", "upstream", "install.sh")], capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    return os.path.join(directory, name)


def measure_layout(suite, layout, settle, samples):
    """Restarts the node's processes in `layout` ("builtin" or "sidecars"), each in its own memory group,
    plays kubelet's liveness probe every second, and samples every process's working set and RSS."""
    release = suite.release
    release.stop_driver()
    for name in ("node-plugin", "node-driver-registrar", "livenessprobe"):
        if name in GROUPS:
            GROUPS.pop(name).remove()
    # Rotation at the default 2m (the suite rotates every 5 s): the footprint at rest, republish still on.
    release.upgrade(release.base_values(linux={"builtinRegistrar": layout == "builtin"}, rotationPollInterval="2m"))
    drop_caches()
    names = ["node-plugin"] + (["node-driver-registrar", "livenessprobe"] if layout == "sidecars" else [])
    for name in names:
        GROUPS[name] = MemoryGroup(name)
    started = time.monotonic()
    def size(name):
        path = os.path.join(suite.cluster.logs, name + ".log")
        return os.path.getsize(path) if os.path.exists(path) else 0

    driver_offset, registrar_offset = size("node-plugin"), size("node-driver-registrar")
    release.start_driver(wait_registered=False)
    processes = {"node-plugin": release.driver}

    def registered():
        # The kubelet's verdict, as each layout's registrar logs it, and the CSINode entry.
        if layout == "sidecars":
            assert "plugin_registered:true" in release.registrar.log_since(registrar_offset), "no verdict yet"
        else:
            assert "registered with kubelet" in release.driver.log_since(driver_offset), "no verdict yet"
        drivers = suite.cluster.storage.read_csi_node(suite.cluster.node_name).spec.drivers or []
        return any(d.name == harness.DRIVER_NAME for d in drivers)

    harness.eventually(registered, 60, f"registration in the {layout} layout")
    if layout == "sidecars":
        processes["node-driver-registrar"] = release.registrar
        port = harness.free_port()
        probe = harness.HostProcess("livenessprobe", [
            upstream_binary("livenessprobe"), f"--csi-address={release.socket_path()}", "--probe-timeout=3s",
            f"--http-endpoint=127.0.0.1:{port}", "-v=2",
        ], suite.cluster.logs).start()
        processes["livenessprobe"] = probe
        health_url = f"http://127.0.0.1:{port}/healthz"
    else:
        health_url = release.driver_metrics + "/healthz"
    registered = time.monotonic() - started

    def healthy():
        return requests.get(health_url, timeout=5).status_code == 200

    harness.eventually(healthy, 30, f"/healthz of the {layout} layout")
    # Kubelet republishes every volume (requiresRepublish) and probes liveness; let both run for `settle` s.
    end = time.monotonic() + settle
    while time.monotonic() < end:
        requests.get(health_url, timeout=5)
        time.sleep(1)
    readings = {name: [] for name in processes}
    for _ in range(samples):
        requests.get(health_url, timeout=5)
        for name, process in processes.items():
            working_set, usage = GROUPS[name].working_set()
            readings[name].append({"working_set": working_set, "usage": usage, "rss": rss(process.pid)})
        time.sleep(1)
    result = {"layout": layout, "registered_after_s": round(registered, 2), "processes": {}}
    for name, values in readings.items():
        result["processes"][name] = {key: statistics.median(v[key] for v in values) for key in ("working_set", "usage", "rss")}
    result["total"] = {key: sum(p[key] for p in result["processes"].values()) for key in ("working_set", "usage", "rss")}
    if layout == "sidecars":
        processes["livenessprobe"].stop()
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--settle", type=int, default=20, help="seconds after start before sampling")
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--out", default=os.path.join(HERE, "node-footprint"))
    args = parser.parse_args()

    kube_dir = harness.find_kube_binaries()
    driver, emulator = harness.find_product_binaries()
    suite = conftest.Suite(kube_dir, driver, emulator)
    results = []
    try:
        suite.start()
        namespace = suite.new_namespace()
        objects = [
            {"objectName": "db-pass", "objectType": "secret"},
            {"objectName": "api-key", "objectType": "secret"},
            {"objectName": "web", "objectType": "cert"},
        ]
        workloads.create_spc(suite.cluster, namespace, "footprint", objects)
        workloads.create_deployment(suite.cluster, namespace, "footprint", "footprint", replicas=args.pods)
        workloads.wait_running(suite.cluster, namespace, "footprint", args.pods, timeout=120)
        for round_number in range(args.rounds):
            for layout in ("builtin", "sidecars"):
                result = measure_layout(suite, layout, args.settle, args.samples)
                result["round"] = round_number + 1
                results.append(result)
                print(f"round {round_number + 1} {layout}: working set {result['total']['working_set'] / MIB:.1f} MiB, "
                      f"RSS {result['total']['rss'] / MIB:.1f} MiB", flush=True)
    finally:
        for group in list(GROUPS.values()):
            group.remove()
        suite.stop(keep=False)

    lines = [
        f"node footprint, {args.pods} pods mounted ({len(objects)} objects each), driver {os.path.basename(driver)} "
        f"({os.path.getsize(driver) / 1e6:.1f} MB), median of {args.samples} samples after {args.settle} s",
        f"{'round':>5} {'layout':<9} {'containers':>10} {'process':<22} {'working set MiB':>16} {'RSS MiB':>8}",
    ]
    for result in results:
        count = len(result["processes"])
        for name, figures in result["processes"].items():
            lines.append(f"{result['round']:>5} {result['layout']:<9} {count:>10} {name:<22} {figures['working_set'] / MIB:>16.1f} {figures['rss'] / MIB:>8.1f}")
        lines.append(f"{result['round']:>5} {result['layout']:<9} {count:>10} {'= node total':<22} {result['total']['working_set'] / MIB:>16.1f} {result['total']['rss'] / MIB:>8.1f}")
    text = "\n".join(lines)
    print(text)
    with open(args.out + ".txt", "w") as file:
        file.write(text + "\n")
    with open(args.out + ".json", "w") as file:
        json.dump({"pods": args.pods, "driver": driver, "results": results}, file, indent=1)


if __name__ == "__main__":
    main()
