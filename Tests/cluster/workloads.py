"""Objects the tests create (SecretProviderClass, Deployment, Pod) and what they read back (pods, the volume on
the kubelet's disk, SecretProviderClassPodStatus), with the official Kubernetes client."""
import json
import os
import struct

from harness import DRIVER_NAME, TENANT, VAULT, WI_CLIENT, WORKLOAD_SA, eventually, mounts_under
from expected import objects_parameter

SPC_GROUP, SPC_VERSION = "secrets-store.csi.x-k8s.io", "v1"
VOLUME = "secrets-store"
IMAGE = "registry.example/app:1"


def create_spc(cluster, namespace, name, objects, secret_objects=None, extra_parameters=None):
    """An Azure SecretProviderClass with workload identity (clientID of the emulator's federated app)."""
    parameters = {
        "usePodIdentity": "false",
        "clientID": WI_CLIENT,
        "keyvaultName": VAULT,
        "tenantId": TENANT,
        "objects": objects_parameter(objects),
    }
    parameters.update(extra_parameters or {})
    body = {
        "apiVersion": f"{SPC_GROUP}/{SPC_VERSION}", "kind": "SecretProviderClass",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"provider": "azure", "parameters": parameters},
    }
    if secret_objects:
        body["spec"]["secretObjects"] = secret_objects
    return cluster.custom.create_namespaced_custom_object(SPC_GROUP, SPC_VERSION, namespace, "secretproviderclasses", body)


def pod_spec(spc, run_as_user=None, fs_group=None):
    spec = {
        "serviceAccountName": WORKLOAD_SA,
        "containers": [{
            "name": "app", "image": IMAGE,
            "volumeMounts": [{"name": VOLUME, "mountPath": "/mnt/secrets-store", "readOnly": True}],
        }],
        "volumes": [{
            "name": VOLUME,
            "csi": {"driver": DRIVER_NAME, "readOnly": True, "volumeAttributes": {"secretProviderClass": spc}},
        }],
        "terminationGracePeriodSeconds": 1,
    }
    security = {}
    if run_as_user is not None:
        security["runAsUser"] = run_as_user
    if fs_group is not None:
        security["fsGroup"] = fs_group
    if security:
        spec["securityContext"] = security
    return spec


def create_deployment(cluster, namespace, name, spc, replicas=1, annotations=None, **pod):
    body = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations or {}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec(spc, **pod)},
        },
    }
    return cluster.apps.create_namespaced_deployment(namespace, body)


def create_pod(cluster, namespace, name, spc, **pod):
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace}, "spec": pod_spec(spc, **pod)}
    return cluster.core.create_namespaced_pod(namespace, body)


def pods_of(cluster, namespace, app):
    return [p for p in cluster.core.list_namespaced_pod(namespace, label_selector=f"app={app}").items if p.metadata.deletion_timestamp is None]


def wait_running(cluster, namespace, app, count, timeout=60):
    def running():
        pods = pods_of(cluster, namespace, app)
        phases = {p.metadata.name: p.status.phase for p in pods}
        assert len(pods) == count and all(phase == "Running" for phase in phases.values()), f"pods {phases}"
        return pods

    return eventually(running, timeout, f"{count} Running pod(s) of {namespace}/{app}")


def volume_path(cluster, pod, volume=VOLUME):
    """The CSI target path the kubelet gives the driver for `pod`'s volume."""
    return os.path.join(cluster.kubelet_root, "pods", pod.metadata.uid, "volumes", "kubernetes.io~csi", volume, "mount")


def read_tree(directory):
    """{relative path: bytes} of the files a container sees: everything but the atomic writer's `..` entries,
    symlinks followed."""
    files = {}
    for entry in sorted(os.listdir(directory)):
        if entry.startswith(".."):
            continue
        path = os.path.join(directory, entry)
        if os.path.isdir(path):
            for sub, data in read_tree(path).items():
                files[f"{entry}/{sub}"] = data
        else:
            with open(path, "rb") as file:
                files[entry] = file.read()
    return files


def read_as(directory, paths, uid, groups):
    """Forks a child that drops to `uid` with only `groups` (setgroups, setgid, setuid), changes into
    `directory` and reads each of `paths` (relative). The directory is opened before the privileges are
    dropped, as a container runtime's bind mount makes it reachable; the parents on the kubelet's disk are
    not part of what a container sees. Returns {path: bytes | "error text"}."""
    directory_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: os calls only
        try:
            os.close(read_end)
            os.setgroups(list(groups))
            os.setgid(groups[0])
            os.setuid(uid)
            os.fchdir(directory_fd)
            results = {}
            for path in paths:
                try:
                    fd = os.open(path, os.O_RDONLY)
                    chunks = []
                    while True:
                        chunk = os.read(fd, 65536)
                        if not chunk:
                            break
                        chunks.append(chunk)
                    os.close(fd)
                    results[path] = {"data": b"".join(chunks).hex()}
                except OSError as error:
                    results[path] = {"error": f"{error.strerror} (errno {error.errno})"}
            payload = json.dumps({"ids": [os.getuid(), os.getgid(), os.getgroups()], "results": results}).encode()
            os.write(write_end, struct.pack("!I", len(payload)))
            view = memoryview(payload)
            while view:
                written = os.write(write_end, view)
                view = view[written:]
        finally:
            os._exit(0)
    os.close(write_end)
    os.close(directory_fd)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    assert len(data) >= 4, "the reading child wrote nothing"
    payload = json.loads(data[4:4 + struct.unpack("!I", data[:4])[0]])
    assert payload["ids"] == [uid, groups[0], sorted(groups)], f"child ran as {payload['ids']}"
    return {p: bytes.fromhex(r["data"]) if "data" in r else r["error"] for p, r in payload["results"].items()}


def pod_statuses(cluster, namespace):
    return cluster.custom.list_namespaced_custom_object(SPC_GROUP, SPC_VERSION, namespace, "secretproviderclasspodstatuses")["items"]


def no_mounts_for(cluster, pod_uids):
    """True when no mount is left under the kubelet's directories of these pods."""
    left = [m[0] for uid in pod_uids for m in mounts_under(os.path.join(cluster.kubelet_root, "pods", uid))]
    assert not left, f"mounts left: {left}"
    return True
