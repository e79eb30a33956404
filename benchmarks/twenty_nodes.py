#!/usr/bin/env python3
"""Twenty nodes (#25 item 2): the API cost and the working set of the node plugin per node, ours against upstream's,
on the real Kubernetes of ../shared/kube driven through the cluster harness of Tests/cluster.

One cluster: etcd, kube-apiserver (with an audit log at Metadata level for the node plugins and the kubelets),
kube-controller-manager, kube-scheduler and N hollow kubelets (default 20), each its own node name, root dir, port
and node client certificate. Then, one kind at a time, a node plugin per node:

- ours: the release driver (default /work/relbin-base/secrets-store-csi-driver), one process per node with its
  built-in registrar, its command line built from the chart's DaemonSet (Release.host_command) with that node's
  kubelet root and node id;
- upstream: driver v1.6.0 + Azure provider v1.8.2 + node-driver-registrar per node, from ../shared/upstream.

Each node plugin authenticates as its own ServiceAccount (kube-system/sscsi-plugin-<node>, bound to the kind's
ClusterRoles: the chart's for ours, upstream's chart rules for upstream's), so the audit log attributes every
request to a node. Both kinds run with --enable-secret-rotation and the same --rotation-poll-interval.

Key Vault and Entra: our keyvault-emulator. Upstream's Azure provider reaches them only by their real names on 443:
this script serves login.microsoftonline.com and <vault>.vault.azure.net on <--front-address>:443 (127.0.0.3, apart
from the 127.0.0.1:443 of scripts/bench-upstream.sh and the 127.0.0.2:443 of benchmarks/node_footprint.py) with a
TLS proxy of its own CA that forwards every connection, bytes unchanged, to the emulator; the provider runs in a
private mount namespace whose /etc/hosts (a copy with the two names on the front) sends it there, and trusts that
CA through SSL_CERT_FILE. The host's /etc/hosts is never changed. Ours reaches the emulator as the cluster suite
installs it (the chart's keyVaultURLTemplate, authorityHost and caBundle).

Per kind: start the plugins (page cache dropped first; each process in a memory cgroup v1 of its own), create the
pods (spread over the nodes by nodeName; C classes of 3 objects, workload identity, each used by many pods), wait
for them to run, then count from the audit log (by user x verb x resource) and from the API server's /metrics:
requests at start, per pod start, per node per minute idle, during a rotation (one secret gets a new version),
watches held per node; sample each process's working set (usage - total_inactive_file) and RSS; then create the
--classes SecretProviderClasses (spread over namespaces, concurrently) and measure the idle rate and working set
again. Pods, classes and status objects are removed before the next kind.

Usage (root; cgroup v1 memory; the front's port 443 free or waited for):
    python3 benchmarks/twenty_nodes.py [--nodes 20] [--pods 500] [--classes 10000] [--idle-seconds 120]
    python3 benchmarks/twenty_nodes.py --quick     (4 nodes, 40 pods, 500 classes, 60 s windows)
Prints a table (ours, upstream, ours/upstream) and writes benchmarks/twenty-nodes.{txt,json} (--out).
A measurement, not a test: it asserts nothing about figures.
"""
import argparse
import collections
import concurrent.futures
import contextlib
import json
import os
import signal
import statistics
import subprocess
import threading
import time
import uuid

import requests

from benchkit import (  # first: puts Tests/cluster on the import path
    AZURE_NAMES, HERE, MEMORY_CGROUP_V1, MIB, TLSProxy, MemoryGroup, drop_caches, log, private_hosts_file, rss,
    upstream_dir, wait_for_port_free, with_private_hosts,
)
import harness
import workloads

PLUGIN_SA_PREFIX = "sscsi-plugin-"
PLUGIN_USER_PREFIX = f"system:serviceaccount:kube-system:{PLUGIN_SA_PREFIX}"
SPC = ("secrets-store.csi.x-k8s.io", "v1")
OBJECTS = [
    {"objectName": "db-pass", "objectType": "secret"},
    {"objectName": "api-key", "objectType": "secret"},
    {"objectName": "web", "objectType": "cert"},
]
ROTATED_SECRET = "db-pass"
# What upstream's chart v1.6.0 grants its node plugin (role.yaml, role-rotation, role-tokenrequest; sync off).
UPSTREAM_RULES = [
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"]},
    {"apiGroups": ["secrets-store.csi.x-k8s.io"], "resources": ["secretproviderclasses"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["secrets-store.csi.x-k8s.io"], "resources": ["secretproviderclasspodstatuses"],
     "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]},
    {"apiGroups": ["secrets-store.csi.x-k8s.io"], "resources": ["secretproviderclasspodstatuses/status"], "verbs": ["get", "patch", "update"]},
    {"apiGroups": ["storage.k8s.io"], "resources": ["csidrivers"], "verbs": ["get", "list", "watch"]},
]


# --------------------------------------------------------------------------------------------------------------
# CPU time of host processes (their memory cgroups, /etc/hosts and port 443: benchkit)


def cpu_seconds(pid):
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        with open(f"/proc/{pid}/stat") as file:
            fields = file.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


# --------------------------------------------------------------------------------------------------------------
# The API server's view: audit log (by client) and /metrics


class AuditLog:
    """Reads the API server's audit log as it grows: requests per user x verb x resource since the last `take()`,
    and the watches open now per user (ResponseStarted without ResponseComplete)."""

    def __init__(self, path):
        self.path = path
        self.offset = 0
        self.partial = b""
        self.counts = collections.Counter()     # (user, verb, resource) -> requests since the last take()
        self.open_watches = {}                  # auditID -> (user, resource)
        self.lock = threading.Lock()

    def _read(self):
        try:
            with open(self.path, "rb") as file:
                file.seek(self.offset)
                data = file.read()
        except FileNotFoundError:
            return
        self.offset += len(data)
        data = self.partial + data
        lines = data.split(b"\n")
        self.partial = lines.pop()
        for line in lines:
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue
            user = event.get("user", {}).get("username", "")
            verb = event.get("verb", "")
            ref = event.get("objectRef") or {}
            resource = ref.get("resource", event.get("requestURI", "").split("?")[0])
            if ref.get("subresource"):
                resource += "/" + ref["subresource"]
            stage = event.get("stage")
            audit_id = event.get("auditID")
            if verb == "watch":
                if stage == "ResponseStarted":
                    self.counts[(user, verb, resource)] += 1
                    self.open_watches[audit_id] = (user, resource)
                elif stage in ("ResponseComplete", "Panic"):
                    if audit_id in self.open_watches:
                        self.open_watches.pop(audit_id)
                    else:  # a watch refused before it started
                        self.counts[(user, verb, resource)] += 1
            elif stage in ("ResponseComplete", "Panic"):
                self.counts[(user, verb, resource)] += 1

    def take(self):
        """The requests since the last take(), and resets them."""
        with self.lock:
            self._read()
            counts, self.counts = self.counts, collections.Counter()
            return counts

    def watches(self):
        with self.lock:
            self._read()
            return collections.Counter(self.open_watches.values())


def apiserver_metrics(cluster):
    """{(name, frozenset(labels)): value} of the metrics this bench reads from the API server's /metrics."""
    wanted = ("apiserver_request_total{", "apiserver_longrunning_requests{", "apiserver_watch_events_total{",
              "apiserver_watch_events_sizes_sum{")
    text = requests.get(cluster.server + "/metrics", verify=cluster.pki.ca_path,
                        cert=(os.path.join(cluster.pki.directory, "admin.crt"), os.path.join(cluster.pki.directory, "admin.key")),
                        timeout=30).text
    samples = {}
    for line in text.splitlines():
        if not line.startswith(wanted):
            continue
        head, _, value = line.rpartition(" ")
        name, _, labels = head.partition("{")
        pairs = []
        for part in labels.rstrip("}").split('",'):
            if "=" in part:
                key, _, val = part.partition("=")
                pairs.append((key.strip(), val.strip('"')))
        with contextlib.suppress(ValueError):
            samples[(name, frozenset(pairs))] = float(value)
    return samples


def metric_delta(before, after, name, by):
    """Increases of counter `name` between two snapshots, summed by the label names `by`."""
    result = collections.Counter()
    for key, value in after.items():
        if key[0] != name:
            continue
        labels = dict(key[1])
        delta = value - before.get(key, 0.0)
        if delta:
            result[tuple(labels.get(b, "") for b in by)] += delta
    return result


def metric_now(samples, name, by, where=None):
    result = collections.Counter()
    for key, value in samples.items():
        if key[0] != name:
            continue
        labels = dict(key[1])
        if where and any(labels.get(k) != v for k, v in where.items()):
            continue
        result[tuple(labels.get(b, "") for b in by)] += value
    return result


AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    userGroups: ["system:serviceaccounts:kube-system", "system:nodes"]
  - level: None
"""


# --------------------------------------------------------------------------------------------------------------
# The cluster: the harness's, with N hollow kubelets


class Node:
    def __init__(self, name, root, kubelet=None):
        self.name = name
        self.root = root
        self.kubelet = kubelet
        self.service_account = PLUGIN_SA_PREFIX + name
        self.processes = {}   # process name -> HostProcess (the current kind's)
        self.groups = {}      # process name -> MemoryGroup


class Bench:
    def __init__(self, args):
        self.args = args
        self.kube_dir = harness.find_kube_binaries()
        self.driver = args.driver
        _, self.emulator_binary = harness.find_product_binaries()
        self.upstream_dir = upstream_dir()
        self.dir = None
        self.cluster = None
        self.emulator = None
        self.release = None
        self.proxy = None
        self.hosts = None
        self.nodes = []
        self.results = {}
        self.timings = {}
        self.pod_namespaces = []
        self.session = None

    # -- setup

    def start(self):
        import tempfile

        started = time.monotonic()
        self.dir = tempfile.mkdtemp(prefix="sscsi-twenty-")
        os.chmod(self.dir, 0o755)
        self.cluster = cluster = harness.Cluster(self.kube_dir, self.dir)
        self.audit_path = os.path.join(self.dir, "audit.log")
        policy = os.path.join(self.dir, "audit-policy.yaml")
        with open(policy, "w") as file:
            file.write(AUDIT_POLICY)
        cluster.apiserver_extra_args += [
            "--audit-policy-file", policy, "--audit-log-path", self.audit_path, "--audit-log-maxsize", "0",
            "--audit-log-format", "json",
        ]
        cluster.start()
        self.audit = AuditLog(self.audit_path)
        log(f"cluster up ({time.monotonic() - started:.0f} s): {cluster.server}, logs in {cluster.logs}")
        emulator_dir = os.path.join(self.dir, "emulator")
        os.makedirs(emulator_dir)
        self.emulator = harness.Emulator(self.emulator_binary, emulator_dir, harness.emulator_seed(emulator_dir),
                                         trust_issuer=(harness.ISSUER, cluster.pki.sa_pub_path)).start()
        # The Azure names on 443: our own CA and server certificate, the proxy in front of the emulator.
        self.proxy_pki = harness.PKI(os.path.join(self.dir, "proxy-pki"))
        front = self.args.front_address
        cert, key = self.proxy_pki.issue("azure", AZURE_NAMES[0], server_dns=AZURE_NAMES + ["localhost"], server_ips=[front],
                                         client=False, server=True)
        wait_for_port_free(front, 443, self.args.wait_443)
        self.proxy = TLSProxy(front, cert, key, int(self.emulator.base_url.rsplit(":", 1)[1]), self.emulator.ca_path).start()
        self.hosts = private_hosts_file(os.path.join(self.dir, "hosts"), front, AZURE_NAMES)
        # The chart (CRDs by its hook Job, the CSIDriver, RBAC) while the harness's one node is the only node: the
        # hook runtime runs Job pods of that node.
        release_dir = os.path.join(self.dir, "release")
        os.makedirs(release_dir)
        self.release = harness.Release(cluster, self.emulator, self.driver, release_dir)
        # Ours reaches the emulator as the suite installs it (its URL template, authority host and CA bundle).
        self.release.install(self.release.base_values(
            logVerbosity=0, syncSecret={"enabled": False}, rotationRestart={"enabled": False},
            enableSecretRotation=True, rotationPollInterval=self.args.rotation_interval,
        ))
        log(f"chart installed ({self.release.helm_seconds:.0f} s)")
        self.nodes = [Node(cluster.node_name, cluster.kubelet_root, cluster.kubelet)]
        for index in range(1, self.args.nodes):
            self.nodes.append(self._add_node(f"{cluster.node_name}-{index:02d}"))
        for node in self.nodes:
            self._wait_node_ready(node)
            cluster.core.create_namespaced_service_account("kube-system", {"metadata": {"name": node.service_account}})
            node.kubeconfig = cluster.token_kubeconfig("kube-system", node.service_account,
                                                       os.path.join(self.dir, f"plugin-{node.name}.kubeconfig"))
        log(f"{len(self.nodes)} nodes Ready")
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.cert = (os.path.join(cluster.pki.directory, "admin.crt"), os.path.join(cluster.pki.directory, "admin.key"))
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=64)
        self.session.mount("https://", adapter)
        # The pods' namespaces: the pool the emulator federates (ServiceAccount `workload`), one class each.
        self.pod_namespaces = harness.NAMESPACE_POOL[:self.args.pod_classes]
        for namespace in self.pod_namespaces:
            cluster.core.create_namespace({"metadata": {"name": namespace}})
            cluster.core.create_namespaced_service_account(namespace, {"metadata": {"name": harness.WORKLOAD_SA}})
        for index, namespace in enumerate(self.pod_namespaces):
            harness.eventually(lambda: cluster.core.read_namespaced_config_map("kube-root-ca.crt", namespace), 60,
                               f"kube-root-ca.crt in {namespace}")
            workloads.create_spc(cluster, namespace, f"class-{index}", OBJECTS)
        self.timings["setup_s"] = round(time.monotonic() - started, 1)

    def _add_node(self, name):
        cluster = self.cluster
        root = os.path.join(self.dir, f"kubelet-{name}")
        os.makedirs(os.path.join(root, "plugins_registry"), exist_ok=True)
        cert, key = cluster.pki.issue(f"node-{name}", f"system:node:{name}", organizations=["system:nodes"])
        kubeconfig = harness.write_kubeconfig(os.path.join(self.dir, f"node-{name}.kubeconfig"), cluster.server,
                                              cluster.pki.ca_path, "node", cert, key)
        kubelet = harness.HostProcess(f"hollow-kubelet-{name}", [
            harness.kube_binary(self.kube_dir, "hollow-kubelet"), "--kubeconfig", kubeconfig, "--name", name,
            "--root-dir", root, "--kubelet-port", harness.free_port(),
        ], cluster.logs).start()
        return Node(name, root, kubelet)

    def _wait_node_ready(self, node):
        core = self.cluster.core

        def ready():
            assert node.kubelet.running, f"{node.kubelet.name} exited {node.kubelet.returncode}: {node.kubelet.tail(5)}"
            status = core.read_node(node.name)
            conditions = {c.type: c.status for c in status.status.conditions or []}
            taints = [t.key for t in status.spec.taints or [] if t.key.startswith("node.kubernetes.io/")]
            assert conditions.get("Ready") == "True" and not taints, f"Ready={conditions.get('Ready')} taints {taints}"
            return True

        harness.eventually(ready, 120, f"node {node.name} Ready without taints")

    # -- RBAC per kind

    def bind(self, kind):
        """ClusterRoleBindings of every node's ServiceAccount for `kind`: the chart's roles of its node plugin
        (ours) or upstream's chart rules (upstream). Returns the names, for `unbind`."""
        rbac = __import__("kubernetes").client.RbacAuthorizationV1Api(self.cluster.api_client)
        subjects = [{"kind": "ServiceAccount", "name": n.service_account, "namespace": "kube-system"} for n in self.nodes]
        names = []
        if kind == "ours":
            _, pod, _ = self.release.container("DaemonSet", "secrets-store")
            chart_sa = pod.get("serviceAccountName")
            roles = [d["roleRef"]["name"] for d in self.release.objects("ClusterRoleBinding")
                     if any(s.get("kind") == "ServiceAccount" and s.get("name") == chart_sa for s in d.get("subjects") or [])]
        else:
            rbac.create_cluster_role({"metadata": {"name": "sscsi-twenty-upstream-node"}, "rules": UPSTREAM_RULES})
            roles = ["sscsi-twenty-upstream-node"]
        for role in roles:
            name = f"sscsi-twenty-{kind}-{role}"
            rbac.create_cluster_role_binding({
                "metadata": {"name": name}, "subjects": subjects,
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            })
            names.append(name)
        return names, roles

    def unbind(self, kind, names):
        rbac = __import__("kubernetes").client.RbacAuthorizationV1Api(self.cluster.api_client)
        for name in names:
            with contextlib.suppress(Exception):
                rbac.delete_cluster_role_binding(name)
        if kind == "upstream":
            with contextlib.suppress(Exception):
                rbac.delete_cluster_role("sscsi-twenty-upstream-node")

    # -- node plugins

    def _group(self, kind, node, process):
        group = MemoryGroup(f"sscsi-twenty-{os.getpid()}-{kind}-{node.name}-{process}")
        node.groups[process] = group
        return group

    def start_ours(self, node):
        release = self.release
        release.host_path_map = {self.cluster.kubelet_root: node.root}
        try:
            argv, env, _ = release.host_command("DaemonSet", "secrets-store", harness.free_port())
        finally:
            release.host_path_map = {}
        argv = [f"--nodeid={node.name}" if a == f"--nodeid={self.cluster.node_name}" else a for a in argv]
        argv[0] = self.driver
        argv.append(f"--kubeconfig={node.kubeconfig}")
        env = {k: (node.name if v == self.cluster.node_name else v) for k, v in env.items()}
        os.makedirs(os.path.join(node.root, "plugins", "csi-secrets-store"), exist_ok=True)
        group = self._group("ours", node, "driver")
        node.processes["driver"] = harness.HostProcess(f"ours-{node.name}", group.wrap(argv), self.cluster.logs, env=env).start()

    def start_upstream(self, node):
        base = os.path.join(self.dir, "upstream", node.name)
        providers = os.path.join(base, "providers")
        os.makedirs(providers, exist_ok=True)
        socket_dir = os.path.join(node.root, "plugins", "csi-secrets-store")
        os.makedirs(socket_dir, exist_ok=True)
        sock = os.path.join(socket_dir, "csi.sock")
        env = dict(os.environ, SSL_CERT_FILE=self.proxy_pki.ca_path, KUBE_FEATURE_WatchListClient="false")
        binary = lambda name: os.path.join(self.upstream_dir, name)  # noqa: E731
        provider = [binary("secrets-store-csi-driver-provider-azure"), "--endpoint", f"unix://{providers}/azure.sock",
                    "--healthz-port", "0", "--metrics-backend", "prometheus", "--prometheus-port", "0", "--construct-pem-chain"]
        driver = [binary("secrets-store-csi-driver"), "--endpoint", f"unix://{sock}", "--nodeid", node.name,
                  "--provider-volume", providers, "--kubeconfig", node.kubeconfig,
                  "--metrics-addr", f"127.0.0.1:{harness.free_port()}",
                  "--enable-secret-rotation=true", f"--rotation-poll-interval={self.args.rotation_interval}"]
        registrar = [binary("csi-node-driver-registrar"), f"--csi-address={sock}", f"--kubelet-registration-path={sock}",
                     f"--plugin-registration-path={os.path.join(node.root, 'plugins_registry')}",
                     "--http-endpoint=127.0.0.1:0"]
        # The provider alone (it mounts nothing) sees the Azure names on the front through a private /etc/hosts.
        provider = with_private_hosts(self.hosts, provider)
        for name, argv in (("provider", provider), ("driver", driver), ("registrar", registrar)):
            group = self._group("upstream", node, name)
            node.processes[name] = harness.HostProcess(f"upstream-{name}-{node.name}", group.wrap(argv), self.cluster.logs, env=env).start()
            if name == "provider":
                harness.eventually(lambda: os.path.exists(os.path.join(providers, "azure.sock")), 60, f"azure.sock of {node.name}")

    def wait_registered(self):
        storage = self.cluster.storage

        def registered():
            missing = []
            for node in self.nodes:
                for name, process in node.processes.items():
                    assert process.running, f"{process.name} exited {process.returncode}: {harness.REDACT(process.tail(8))}"
                drivers = [d.name for d in storage.read_csi_node(node.name).spec.drivers or []] if self._csinode_exists(node) else []
                if harness.DRIVER_NAME not in drivers:
                    missing.append(node.name)
            assert not missing, f"not registered on {missing}"
            return True

        harness.eventually(registered, 180, "every node's CSINode to list the driver", interval=1)

    def _csinode_exists(self, node):
        try:
            self.cluster.storage.read_csi_node(node.name)
            return True
        except Exception:
            return False

    def stop_plugins(self):
        for node in self.nodes:
            for process in reversed(list(node.processes.values())):
                with contextlib.suppress(Exception):
                    process.stop(timeout=10)
            for group in node.groups.values():
                group.remove()
            node.processes, node.groups = {}, {}

    # -- samples

    def memory(self):
        """Per node: {process: (working set, usage, RSS, memory.stat)}, median of 3 samples 1 s apart."""
        readings = [[] for _ in self.nodes]
        for _ in range(3):
            for index, node in enumerate(self.nodes):
                sample = {}
                for name, group in node.groups.items():
                    working_set, usage = group.working_set()
                    composition = group.composition()
                    sample[name] = {"working_set": working_set, "usage": usage, "rss": rss(node.processes[name].pid),
                                    **{key: composition[key] for key in ("anon", "active_file", "mapped_file")}}
                readings[index].append(sample)
            time.sleep(1)
        per_node = []
        for node, samples in zip(self.nodes, readings):
            figures = {}
            for name in node.groups:
                figures[name] = {key: statistics.median(s[name][key] for s in samples) for key in samples[0][name]}
            per_node.append(figures)
        return per_node

    def cpu(self):
        return sum(cpu_seconds(p.pid) for node in self.nodes for p in node.processes.values())

    def window(self, seconds, label):
        """Requests and CPU over `seconds` of doing nothing."""
        log(f"  {label}: {seconds} s window")
        self.audit.take()
        before, cpu_before, started = apiserver_metrics(self.cluster), self.cpu(), time.monotonic()
        time.sleep(seconds)
        counts, after, cpu_after = self.audit.take(), apiserver_metrics(self.cluster), self.cpu()
        return self.summarize(counts, before, after, time.monotonic() - started, cpu_after - cpu_before)

    def summarize(self, counts, before, after, seconds, cpu):
        nodes = len(self.nodes)
        plugin = collections.Counter()
        plugin_by_user = collections.Counter()
        kubelet = 0
        for (user, verb, resource), count in counts.items():
            if user.startswith(PLUGIN_USER_PREFIX):
                plugin[f"{verb} {resource}"] += count
                plugin_by_user[user] += count
            elif user.startswith("system:node:"):
                kubelet += count
        total = sum(plugin.values())
        per_user = [plugin_by_user.get(PLUGIN_USER_PREFIX + n.name, 0) for n in self.nodes]
        minutes = seconds / 60
        all_clients = metric_delta(before, after, "apiserver_request_total", ("verb", "resource", "subresource"))
        watch_events = metric_delta(before, after, "apiserver_watch_events_total", ("group", "resource", "kind"))
        watch_bytes = metric_delta(before, after, "apiserver_watch_events_sizes_sum", ("group", "resource", "kind"))
        return {
            "seconds": round(seconds, 1),
            "plugin_requests": total,
            "plugin_requests_per_node_per_minute": total / nodes / minutes if minutes else None,
            "plugin_requests_per_node_min_max": [min(per_user), max(per_user)],
            "plugin_requests_by_verb_resource": dict(plugin.most_common()),
            "plugin_cpu_seconds_per_node_per_minute": cpu / nodes / minutes if minutes else None,
            "kubelet_requests_per_node_per_minute": kubelet / nodes / minutes if minutes else None,
            "apiserver_requests_all_clients": sum(all_clients.values()),
            "apiserver_requests_by_verb_resource": {" ".join(k).strip(): v for k, v in all_clients.most_common(25)},
            "watch_events_sent": {"/".join(p for p in k if p): v for k, v in watch_events.most_common(6)},
            "watch_event_bytes_sent": {"/".join(p for p in k if p): v for k, v in watch_bytes.most_common(6)},
        }

    def watches(self):
        open_watches = self.audit.watches()
        per_user = collections.Counter()
        by_resource = collections.Counter()
        for (user, resource), count in open_watches.items():
            if user.startswith(PLUGIN_USER_PREFIX):
                per_user[user] += count
                by_resource[resource] += count
        longrunning = metric_now(apiserver_metrics(self.cluster), "apiserver_longrunning_requests", ("resource",), {"verb": "WATCH"})
        return {
            "per_node": sum(per_user.values()) / len(self.nodes),
            "per_node_min_max": [min(per_user.get(PLUGIN_USER_PREFIX + n.name, 0) for n in self.nodes),
                                 max(per_user.get(PLUGIN_USER_PREFIX + n.name, 0) for n in self.nodes)],
            "plugin_watches_by_resource": dict(by_resource),
            "apiserver_longrunning_watches_all_clients": {k[0]: v for k, v in longrunning.items()},
        }

    # -- pods and classes

    def api(self, method, path, body=None, **params):
        # verify= on every request: a session attribute loses to $REQUESTS_CA_BUNDLE.
        response = self.session.request(method, self.cluster.server + path, json=body, params=params, timeout=60,
                                        verify=self.cluster.pki.ca_path)
        return response

    def post_until_created(self, path, body, attempts, what):
        """POSTs `body` to `path` until it is created (201) or found there already (409), `attempts` times 1 s
        apart at the most; raises with the last answer otherwise."""
        for _ in range(attempts):
            response = self.api("POST", path, body)
            if response.status_code in (201, 409):
                return
            time.sleep(1)
        raise RuntimeError(f"creating {what}: HTTP {response.status_code} {response.text[:200]}")

    def pods_of_run(self):
        pods = []
        for namespace in self.pod_namespaces:
            pods += self.cluster.core.list_namespaced_pod(namespace, label_selector="app=twenty").items
        return pods

    def create_pods(self, kind):
        count, nodes = self.args.pods, self.nodes
        classes = len(self.pod_namespaces)

        def create(index):
            namespace = self.pod_namespaces[index % classes]
            spec = workloads.pod_spec(f"class-{index % classes}")
            spec["nodeName"] = nodes[(index // classes) % len(nodes)].name
            body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"{kind}-{index}", "namespace": namespace,
                                                                    "labels": {"app": "twenty"}}, "spec": spec}
            self.post_until_created(f"/api/v1/namespaces/{namespace}/pods", body, 5, f"pod {index}")

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(create, range(count)))

        def running():
            pods = self.pods_of_run()
            phases = collections.Counter(p.status.phase for p in pods)
            assert phases.get("Running", 0) == count, f"phases {dict(phases)} of {count}"
            return pods

        return harness.eventually(running, max(300, count * 2), f"{count} pods Running", interval=2)

    def delete_pods(self):
        for namespace in self.pod_namespaces:
            self.api("DELETE", f"/api/v1/namespaces/{namespace}/pods", labelSelector="app=twenty", gracePeriodSeconds=1)
        try:
            harness.eventually(lambda: not self.pods_of_run(), max(240, self.args.pods), "the pods to be gone", interval=2)
        except AssertionError as error:
            log(f"  pods left after the deadline ({error}); forcing")
            for namespace in self.pod_namespaces:
                self.api("DELETE", f"/api/v1/namespaces/{namespace}/pods", labelSelector="app=twenty", gracePeriodSeconds=0)
            harness.eventually(lambda: not self.pods_of_run(), 120, "the pods to be gone (forced)", interval=2)
        for namespace in self.pod_namespaces:
            self.api("DELETE", f"/apis/{SPC[0]}/{SPC[1]}/namespaces/{namespace}/secretproviderclasspodstatuses")

    def create_classes(self, kind):
        """`--classes` SecretProviderClasses over `--class-namespaces` namespaces, created concurrently."""
        namespaces = [f"bulk-{kind}-{i}" for i in range(self.args.class_namespaces)]
        for namespace in namespaces:
            self.api("POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})
        from expected import objects_parameter

        parameters = {"usePodIdentity": "false", "clientID": harness.WI_CLIENT, "keyvaultName": harness.VAULT,
                      "tenantId": harness.TENANT, "objects": objects_parameter(OBJECTS)}

        def create(index):
            namespace = namespaces[index % len(namespaces)]
            body = {"apiVersion": f"{SPC[0]}/{SPC[1]}", "kind": "SecretProviderClass",
                    "metadata": {"name": f"bulk-{index}", "namespace": namespace},
                    "spec": {"provider": "azure", "parameters": parameters}}
            self.post_until_created(f"/apis/{SPC[0]}/{SPC[1]}/namespaces/{namespace}/secretproviderclasses", body, 10, f"class {index}")

        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(self.args.create_threads) as pool:
            list(pool.map(create, range(self.args.classes)))
        return namespaces, time.monotonic() - started

    def delete_namespaces(self, namespaces):
        for namespace in namespaces:
            self.api("DELETE", f"/api/v1/namespaces/{namespace}")  # 404 when never created

        def gone():
            left = [n for n in namespaces if self.api("GET", f"/api/v1/namespaces/{n}").status_code != 404]
            assert not left, f"{len(left)} namespaces left"
            return True

        harness.eventually(gone, 600, "the bulk namespaces to be gone", interval=3)

    def rotated_volumes(self, pods, value):
        """How many of `pods`' volumes hold `value` in the rotated secret's file."""
        done = 0
        roots = {n.name: n.root for n in self.nodes}
        for pod in pods:
            path = os.path.join(roots[pod.spec.node_name], "pods", pod.metadata.uid, "volumes", "kubernetes.io~csi",
                                workloads.VOLUME, "mount", ROTATED_SECRET)
            with contextlib.suppress(OSError):
                with open(path) as file:
                    done += file.read() == value
        return done

    # -- one kind

    def measure(self, kind):
        result = {"kind": kind}
        log(f"== {kind}: {len(self.nodes)} node plugins")
        bulk = [f"bulk-{kind}-{i}" for i in range(self.args.class_namespaces)]
        bindings, roles = self.bind(kind)
        result["cluster_roles"] = roles
        phase = time.monotonic()
        try:
            drop_caches()
            self.audit.take()
            before = apiserver_metrics(self.cluster)
            started = time.monotonic()
            for node in self.nodes:
                (self.start_ours if kind == "ours" else self.start_upstream)(node)
            self.wait_registered()
            result["registered_after_s"] = round(time.monotonic() - started, 1)
            time.sleep(self.args.settle)
            result["start"] = self.summarize(self.audit.take(), before, apiserver_metrics(self.cluster),
                                             time.monotonic() - started, self.cpu())
            result["memory_started"] = self.memory()
            log(f"  registered on every node after {result['registered_after_s']} s; "
                f"{result['start']['plugin_requests'] / len(self.nodes):.1f} requests per node at start")

            before, cpu_before, started = apiserver_metrics(self.cluster), self.cpu(), time.monotonic()
            pods = self.create_pods(kind)
            result["pods_running_after_s"] = round(time.monotonic() - started, 1)
            time.sleep(self.args.settle)
            start_window = self.summarize(self.audit.take(), before, apiserver_metrics(self.cluster),
                                          time.monotonic() - started, self.cpu() - cpu_before)
            start_window["plugin_requests_per_pod"] = start_window["plugin_requests"] / self.args.pods
            result["pod_start"] = start_window
            log(f"  {self.args.pods} pods Running after {result['pods_running_after_s']} s; "
                f"{start_window['plugin_requests_per_pod']:.2f} plugin requests per pod start")

            result["idle"] = self.window(self.args.idle_seconds, "idle with the pods")
            background = result["idle"]["plugin_requests_per_node_per_minute"] * len(self.nodes) * start_window["seconds"] / 60
            start_window["plugin_requests_per_pod_less_idle"] = (start_window["plugin_requests"] - background) / self.args.pods
            result["watches"] = self.watches()
            result["memory_pods"] = self.memory()
            log(f"  idle: {result['idle']['plugin_requests_per_node_per_minute']:.2f} requests per node per minute, "
                f"{result['watches']['per_node']:.1f} watches per node")

            # Rotation: one secret gets a new version; both kinds poll every --rotation-interval.
            value = f"rotated-{uuid.uuid4().hex}"
            self.audit.take()
            before, cpu_before, started = apiserver_metrics(self.cluster), self.cpu(), time.monotonic()
            self.emulator.set_secret(ROTATED_SECRET, value)
            sample = pods[:: max(1, len(pods) // 50)]
            window = self.args.rotation_window
            updated_after = None
            while time.monotonic() - started < window:
                if updated_after is None and self.rotated_volumes(sample, value) == len(sample):
                    updated_after = time.monotonic() - started
                time.sleep(2)
            rotation = self.summarize(self.audit.take(), before, apiserver_metrics(self.cluster),
                                      time.monotonic() - started, self.cpu() - cpu_before)
            rotation["sampled_volumes"] = len(sample)
            rotation["sampled_volumes_rotated"] = self.rotated_volumes(sample, value)
            rotation["all_sampled_rotated_after_s"] = None if updated_after is None else round(updated_after, 1)
            result["rotation"] = rotation
            log(f"  rotation: {rotation['plugin_requests_per_node_per_minute']:.2f} requests per node per minute over "
                f"{window} s; {rotation['sampled_volumes_rotated']}/{len(sample)} sampled volumes rotated")

            # The cluster's classes.
            log(f"  creating {self.args.classes} SecretProviderClasses")
            self.audit.take()
            before, cpu_before, started = apiserver_metrics(self.cluster), self.cpu(), time.monotonic()
            _, seconds = self.create_classes(kind)
            result["classes_created_in_s"] = round(seconds, 1)
            time.sleep(self.args.settle)
            creation = self.summarize(self.audit.take(), before, apiserver_metrics(self.cluster),
                                      time.monotonic() - started, self.cpu() - cpu_before)
            result["class_creation"] = creation
            result["memory_classes_settled"] = self.memory()
            log(f"  {self.args.classes} classes created in {seconds:.0f} s; plugin CPU "
                f"{creation['plugin_cpu_seconds_per_node_per_minute']:.2f} s per node per minute meanwhile")
            result["idle_classes"] = self.window(self.args.idle_seconds, f"idle with {self.args.classes} classes")
            result["watches_classes"] = self.watches()
            result["memory_classes"] = self.memory()
            for process in (p for n in self.nodes for p in n.processes.values()):
                if not process.running:
                    result.setdefault("exited", []).append(f"{process.name}: {process.returncode}")

            log("  cleaning up: pods, status objects, classes")
            self.delete_pods()
            self.delete_namespaces(bulk)
            bulk = []
        except Exception as error:
            result["failed"] = f"{type(error).__name__}: {harness.REDACT(str(error))[:2000]}"
            log(f"  {kind} failed: {result['failed']}")
            with contextlib.suppress(Exception):
                self.delete_pods()
            if bulk:
                with contextlib.suppress(Exception):
                    self.delete_namespaces(bulk)
        finally:
            self.stop_plugins()
            self.unbind(kind, bindings)
        result["phase_s"] = round(time.monotonic() - phase, 1)
        self.results[kind] = result
        return result

    def stop(self):
        with contextlib.suppress(Exception):
            self.stop_plugins()
        if self.proxy:
            self.proxy.stop()
        if self.emulator:
            with contextlib.suppress(Exception):
                self.emulator.stop()
        if self.cluster:
            for node in self.nodes[1:]:
                with contextlib.suppress(Exception):
                    node.kubelet.stop(timeout=10)
            self.cluster.stop()
        harness.HostProcess.stop_all()
        if self.dir:
            for mount_point, *_ in reversed(harness.mounts_under(self.dir)):
                subprocess.run(["umount", "-l", mount_point], capture_output=True)
            if self.args.keep:
                log(f"kept {self.dir}")
            else:
                import shutil

                shutil.rmtree(self.dir, ignore_errors=True)


# --------------------------------------------------------------------------------------------------------------
# Report


def node_sum(node, names, key):
    return sum(node[n][key] for n in names if n in node)


def memory_figures(per_node, names):
    """(mean working set, max working set, mean RSS, estimate on a node of its own) per node, MiB.

    The executables' page-cache pages are shared by the N processes of a kind here and charged to the cgroup that
    touched them first (one node carries them, the max); on a real node each node plugin has its own. The
    estimate adds every node's active file pages (the shared pages, counted once over all groups) to the mean
    working set without them."""
    totals = [node_sum(node, names, "working_set") for node in per_node]
    rsses = [node_sum(node, names, "rss") for node in per_node]
    active_file = [node_sum(node, names, "active_file") for node in per_node]
    own = statistics.mean(t - a for t, a in zip(totals, active_file)) + sum(active_file)
    return statistics.mean(totals) / MIB, max(totals) / MIB, statistics.mean(rsses) / MIB, own / MIB


def table(results, args):
    rows = []

    def get(kind, *path):
        value = results.get(kind)
        for key in path:
            if value is None:
                return None
            value = value.get(key) if isinstance(value, dict) else None
        return value

    def row(label, ours, theirs, fmt="{:.2f}"):
        ratio = ours / theirs if isinstance(ours, (int, float)) and isinstance(theirs, (int, float)) and theirs else None
        show = lambda v: "-" if v is None else fmt.format(v)  # noqa: E731
        rows.append((label, show(ours), show(theirs), "-" if ratio is None else f"{ratio:.2f}"))
        return {"figure": label, "ours": ours, "upstream": theirs, "ratio": ratio}

    figures = []
    for label, path in [
        ("requests per node at start (to registered + settle)", ("start", "plugin_requests")),
        ("requests per pod start (window's requests / pods)", ("pod_start", "plugin_requests_per_pod")),
        ("requests per node per minute, idle", ("idle", "plugin_requests_per_node_per_minute")),
        ("requests per node per minute, rotation window", ("rotation", "plugin_requests_per_node_per_minute")),
        ("watches held per node", ("watches", "per_node")),
        (f"requests per node during creation of {args.classes} classes", ("class_creation", "plugin_requests")),
        (f"requests per node per minute, idle with {args.classes} classes", ("idle_classes", "plugin_requests_per_node_per_minute")),
        ("watches held per node with the classes", ("watches_classes", "per_node")),
        ("CPU s per node per minute, idle", ("idle", "plugin_cpu_seconds_per_node_per_minute")),
        (f"CPU s per node per minute, creating {args.classes} classes", ("class_creation", "plugin_cpu_seconds_per_node_per_minute")),
    ]:
        ours, theirs = get("ours", *path), get("upstream", *path)
        if path[1] == "plugin_requests" and path[0] in ("start", "class_creation"):
            ours = None if ours is None else ours / args.nodes
            theirs = None if theirs is None else theirs / args.nodes
        figures.append(row(label, ours, theirs))
    plugin = {"ours": ["driver"], "upstream": ["driver", "provider"]}
    everything = {"ours": ["driver"], "upstream": ["driver", "provider", "registrar"]}
    for label, key in [("started, no pods", "memory_started"), (f"{args.pods} pods", "memory_pods"),
                       (f"{args.pods} pods + {args.classes} classes", "memory_classes")]:
        values = {}
        for kind in ("ours", "upstream"):
            per_node = get(kind, key)
            values[kind] = (memory_figures(per_node, plugin[kind]), memory_figures(per_node, everything[kind])) if per_node else None
        pick = lambda kind, which, index: values[kind][which][index] if values[kind] else None  # noqa: E731
        figures.append(row(f"working set MiB per node, {label} (driver+provider)", pick("ours", 0, 0), pick("upstream", 0, 0), "{:.1f}"))
        figures.append(row(f"  max over nodes", pick("ours", 0, 1), pick("upstream", 0, 1), "{:.1f}"))
        figures.append(row(f"  estimate on a node of its own (page cache not shared)", pick("ours", 0, 3), pick("upstream", 0, 3), "{:.1f}"))
        figures.append(row(f"  with the registrar (node total)", pick("ours", 1, 0), pick("upstream", 1, 0), "{:.1f}"))
        figures.append(row(f"  RSS MiB per node (driver+provider)", pick("ours", 0, 2), pick("upstream", 0, 2), "{:.1f}"))
    width = max(len(r[0]) for r in rows)
    lines = [f"{'figure':<{width}} {'ours':>10} {'upstream':>10} {'ratio':>7}"]
    lines += [f"{r[0]:<{width}} {r[1]:>10} {r[2]:>10} {r[3]:>7}" for r in rows]
    return "\n".join(lines), figures


def breakdown(results):
    lines = []
    for kind, result in results.items():
        for window in ("start", "pod_start", "idle", "rotation", "class_creation", "idle_classes"):
            data = result.get(window)
            if not data:
                continue
            parts = ", ".join(f"{k} {v}" for k, v in list(data["plugin_requests_by_verb_resource"].items())[:8])
            lines.append(f"{kind} {window} ({data['seconds']} s): plugin requests by verb/resource: {parts or 'none'}")
        for window in ("watches", "watches_classes"):
            data = result.get(window)
            if data:
                lines.append(f"{kind} {window}: per node {data['per_node']:.1f} (min/max {data['per_node_min_max']}), "
                             f"by resource {data['plugin_watches_by_resource']}")
        creation = result.get("class_creation")
        if creation:
            lines.append(f"{kind} class creation: watch events sent {creation['watch_events_sent']}, "
                         f"bytes {creation['watch_event_bytes_sent']}")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--pods", type=int, default=500)
    parser.add_argument("--classes", type=int, default=10000, help="SecretProviderClasses created in the cluster")
    parser.add_argument("--pod-classes", type=int, default=10, help="classes the pods use (one namespace each)")
    parser.add_argument("--class-namespaces", type=int, default=20)
    parser.add_argument("--idle-seconds", type=int, default=120)
    parser.add_argument("--rotation-interval", default="30s", help="--rotation-poll-interval of both kinds")
    parser.add_argument("--rotation-window", type=int, default=None, help="seconds counted after the new version (default 2 intervals + 30)")
    parser.add_argument("--settle", type=int, default=15, help="seconds after a phase before its window closes")
    parser.add_argument("--create-threads", type=int, default=16)
    parser.add_argument("--kinds", default="ours,upstream")
    parser.add_argument("--quick", action="store_true", help="4 nodes, 40 pods, 500 classes, 60 s windows")
    parser.add_argument("--driver", default=os.environ.get("SSCSI_DRIVER_BIN", "/work/relbin-base/secrets-store-csi-driver"))
    parser.add_argument("--front-address", default="127.0.0.3", help="loopback address of the TLS front on port 443")
    parser.add_argument("--wait-443", type=int, default=3600, help="seconds to wait for the front's port 443")
    parser.add_argument("--keep", action="store_true", help="keep the run's directory (logs)")
    parser.add_argument("--out", default=os.path.join(HERE, "twenty-nodes"))
    args = parser.parse_args()
    if args.quick:
        args.nodes, args.pods, args.classes, args.idle_seconds, args.class_namespaces = 4, 40, 500, 60, 5
    interval = args.rotation_interval
    seconds = int(interval[:-1]) * (60 if interval.endswith("m") else 1)
    args.rotation_window = args.rotation_window or 2 * seconds + 30
    if os.geteuid() != 0:
        raise SystemExit("run as root (mounts, cgroups, port 443, mount namespaces, drop_caches)")
    if not os.path.isdir(MEMORY_CGROUP_V1):
        raise SystemExit(f"needs the cgroup v1 memory controller at {MEMORY_CGROUP_V1}")

    def interrupted(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGHUP, interrupted)
    bench = Bench(args)
    started = time.monotonic()
    try:
        bench.start()
        for kind in args.kinds.split(","):
            bench.measure(kind)
    finally:
        bench.stop()
        if bench.results:
            write_report(bench, args, time.monotonic() - started)


def write_report(bench, args, total):
    text, figures = table(bench.results, args)
    header = (f"twenty nodes: {args.nodes} hollow kubelets, {args.pods} pods over them ({args.pod_classes} classes of "
              f"{len(OBJECTS)} objects, workload identity), then {args.classes} SecretProviderClasses; rotation on, "
              f"--rotation-poll-interval={args.rotation_interval} on both; idle windows {args.idle_seconds} s, rotation "
              f"window {args.rotation_window} s; ours {os.path.basename(args.driver)} ({os.path.getsize(args.driver) / 1e6:.0f} MB), "
              f"upstream driver v1.6.0 + Azure provider v1.8.2 + node-driver-registrar; requests are the node plugins' own "
              f"(audit log, one ServiceAccount per node); run took {total / 60:.1f} min")
    report = header + "\n" + text + "\n\n" + breakdown(bench.results)
    print(report)
    with open(args.out + ".txt", "w") as file:
        file.write(report + "\n")
    with open(args.out + ".json", "w") as file:
        json.dump({"args": vars(args), "total_s": round(total, 1), "timings": bench.timings, "figures": figures,
                   "results": bench.results}, file, indent=1, default=str)


if __name__ == "__main__":
    main()
