"""The node plugin driven by the real kubelet: workload-identity mounts with fsGroup, pod statuses and synced
Secrets garbage-collected by the real controller-manager, a class created after its pod, and rotation through
kubelet's RequiresRepublish with restart-on-rotation rolled by the real deployment controller."""
import base64
import os
import re
import uuid

import pytest

from expected import digest, files_for
from harness import DRIVER_NAME, REDACT, eventually, mountinfo
from workloads import (
    create_deployment, create_pod, create_spc, no_mounts_for, pod_statuses, pods_of, read_as,
    read_tree, volume_path, wait_running,
)

MOUNT_OBJECTS = [
    {"objectName": "db-pass", "objectType": "secret", "objectAlias": "DB_PASSWORD"},
    {"objectName": "web", "objectType": "secret"},
    {"objectName": "web", "objectType": "cert", "objectAlias": "tls.crt"},
    {"objectName": "signing", "objectType": "key"},
    {"objectName": "wrapping", "objectType": "key"},
    {"objectName": "api-key", "objectType": "secret", "objectVersionHistory": 2},
    # Group-only readable: what a non-root pod reads only through its fsGroup (upstream #858).
    {"objectName": "blob", "objectType": "secret", "objectEncoding": "base64", "filePermission": "0640"},
]
SYNCED = [{
    "secretName": "mount-synced", "type": "Opaque",
    "data": [{"objectName": "DB_PASSWORD", "key": "password"}, {"objectName": "tls.crt", "key": "tls.crt"}],
}]
RUN_AS_USER, FS_GROUP = 1000, 2000


def same_files(actual, expected, where):
    """Equal file sets and bytes; a failure shows names, lengths and hash prefixes, never contents."""
    assert sorted(actual) == sorted(expected), f"{where}: files {sorted(actual)}, expected {sorted(expected)}"
    wrong = {p: (digest(actual[p]), digest(expected[p])) for p in expected if actual[p] != expected[p]}
    assert not wrong, f"{where}: bytes differ (actual, expected): {wrong}"


@pytest.fixture(scope="module")
def mounted(suite):
    """A Deployment of two pods (runAsUser 1000, fsGroup 2000) with an Azure workload-identity class that also
    syncs a Secret, Running."""
    namespace = suite.new_namespace()
    cluster = suite.cluster
    create_spc(cluster, namespace, "mount-spc", MOUNT_OBJECTS, secret_objects=SYNCED)
    offset = suite.release.driver.log_offset()
    create_deployment(cluster, namespace, "web", "mount-spc", replicas=2, run_as_user=RUN_AS_USER, fs_group=FS_GROUP)
    pods = wait_running(cluster, namespace, "web", 2, timeout=60)
    return {"namespace": namespace, "pods": pods, "log_offset": offset}


def test_deployment_pods_mount_the_providers_bytes_readable_through_fsgroup(suite, mounted):
    """Every file of both pods has the upstream provider's bytes; the target is a tmpfs with gid=<fsGroup>; uid
    1000 with only group 2000 reads every file, and without that group not the 0640 one. Seen red with the
    expected chain left in PFX order (`web` differs) and with gid=2001 expected."""
    cluster, emulator = suite.cluster, suite.emulator
    expected = files_for(emulator, MOUNT_OBJECTS)
    assert len(mounted["pods"]) == 2
    for pod in mounted["pods"]:
        target = volume_path(cluster, pod)
        where = f"pod {pod.metadata.name}"
        same_files(read_tree(target), expected, where)

        mounts = [m for m in mountinfo() if m[0] == target]
        assert len(mounts) == 1, f"{where}: {len(mounts)} mounts at the target path"
        _, fs_type, super_options, _ = mounts[0]
        assert fs_type == "tmpfs", f"{where}: mounted as {fs_type}"
        assert f"gid={FS_GROUP}" in super_options.split(","), f"{where}: tmpfs options {super_options}"

        for path in expected:
            assert os.stat(os.path.join(target, path)).st_gid == FS_GROUP, f"{where}: {path} not group-owned by the fsGroup"
        as_pod = read_as(target, sorted(expected), RUN_AS_USER, [FS_GROUP])
        unreadable = {p: r for p, r in as_pod.items() if isinstance(r, str)}
        assert not unreadable, f"{where}: uid {RUN_AS_USER} with group {FS_GROUP} cannot read {unreadable}"
        same_files(as_pod, expected, f"{where}, read as uid {RUN_AS_USER}")
        # The control: without the fsGroup, the group-only file is refused (so the read above went through it).
        stranger = read_as(target, ["blob"], RUN_AS_USER, [FS_GROUP + 1])
        assert isinstance(stranger["blob"], str) and "ermission denied" in stranger["blob"], f"{where}: a stranger read blob"


def test_service_account_token_reaches_the_driver_in_publish_secrets(suite, mounted):
    """Seen red with serviceAccountTokenInSecrets=false in the values. On this server the chart's CSIDriver asks
    for the tokens in NodePublishVolumeRequest.secrets; the
    driver's trace log of each publish (values stripped) shows the key among `csi.secrets` and not in the
    volume context, and the workload-identity fetch it fed succeeded (the files above)."""
    csidriver = suite.cluster.storage.read_csi_driver(DRIVER_NAME)
    assert csidriver.spec.service_account_token_in_secrets is True
    assert [r.audience for r in csidriver.spec.token_requests] == ["api://AzureADTokenExchange"]
    log = suite.release.driver.log_since(mounted["log_offset"])
    for pod in mounted["pods"]:
        target = volume_path(suite.cluster, pod)
        requests = [line for line in log.splitlines() if "NodePublishVolume request" in line and target in line]
        assert requests, f"no NodePublishVolume request logged for {pod.metadata.name} (is -v=5 in the chart's args?)"
        for line in requests:
            secrets = re.search(r'csi\.secrets=("(?:[^"\\]|\\.)*"|\S+)', line)
            context = re.search(r'csi\.volume_context=("(?:[^"\\]|\\.)*"|\S+)', line)
            assert secrets and context, f"unexpected log line shape: {REDACT(line)[:300]}"
            assert "csi.storage.k8s.io/serviceAccount.tokens" in secrets.group(1), REDACT(line)[:400]
            assert "csi.storage.k8s.io/serviceAccount.tokens" not in context.group(1), REDACT(line)[:400]


def test_pod_statuses_and_synced_secret_are_garbage_collected_with_the_pods(suite, mounted):
    """One SecretProviderClassPodStatus per pod (node label, owned by the pod), the synced Secret (managed label,
    owned by the ReplicaSet), all collected by the real garbage collector once the Deployment is deleted, no
    mount left. Seen red with syncSecret.enabled=false. (The statuses go about 20 s after their pods on the
    first run: the garbage collector learns the CRD's resource at its next discovery resync.)"""
    cluster, namespace = suite.cluster, mounted["namespace"]
    pods = {p.metadata.name: p for p in mounted["pods"]}
    statuses = pod_statuses(cluster, namespace)
    assert sorted(s["metadata"]["name"] for s in statuses) == sorted(f"{name}-{namespace}-mount-spc" for name in pods)
    for status in statuses:
        pod = pods[status["status"]["podName"]]
        assert status["metadata"]["labels"].get("internal.secrets-store.csi.k8s.io/node-name") == cluster.node_name
        owners = status["metadata"].get("ownerReferences") or []
        assert [(o["kind"], o["name"], o["uid"]) for o in owners] == [("Pod", pod.metadata.name, pod.metadata.uid)]
        assert status["status"]["secretProviderClassName"] == "mount-spc" and status["status"]["mounted"] is True
        assert status["status"]["targetPath"] == volume_path(cluster, pod)

    secret = cluster.core.read_namespaced_secret("mount-synced", namespace)
    assert (secret.metadata.labels or {}).get("secrets-store.csi.k8s.io/managed") == "true"
    expected = files_for(suite.emulator, MOUNT_OBJECTS)
    data = {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}
    same_files(data, {"password": expected["DB_PASSWORD"], "tls.crt": expected["tls.crt"]}, "synced Secret")
    replica_sets = {o.uid for p in pods.values() for o in p.metadata.owner_references or [] if o.kind == "ReplicaSet"}
    secret_owners = {o.uid for o in secret.metadata.owner_references or []}
    assert replica_sets and replica_sets <= secret_owners, f"Secret owners {secret_owners}, pods' ReplicaSets {replica_sets}"

    uids = [p.metadata.uid for p in pods.values()]
    cluster.apps.delete_namespaced_deployment("web", namespace, propagation_policy="Background")

    def collected():
        left_pods = [p.metadata.name for p in cluster.core.list_namespaced_pod(namespace).items]
        left_statuses = [s["metadata"]["name"] for s in pod_statuses(cluster, namespace)]
        left_secrets = [s.metadata.name for s in cluster.core.list_namespaced_secret(namespace).items if s.metadata.name == "mount-synced"]
        assert not (left_pods or left_statuses or left_secrets), f"pods {left_pods}, statuses {left_statuses}, secrets {left_secrets}"
        return no_mounts_for(cluster, uids)

    eventually(collected, 60, "pods, their SecretProviderClassPodStatuses and the synced Secret to be garbage-collected, mounts gone")


def test_pod_waits_for_its_missing_class_then_starts_by_kubelet_retry(suite, namespace):
    """The hollow kubelet records no events: the refusal is read in the driver's log and in the kubelet's
    (`MountVolume.SetUp failed ... FailedPrecondition ... <ns>/<class>`). Seen red expecting upstream's
    `Unknown`."""
    cluster, release = suite.cluster, suite.release
    spc = f"late-{uuid.uuid4().hex[:6]}"
    driver_mark, kubelet_mark = release.driver.log_offset(), cluster.kubelet.log_offset()
    pod = create_pod(cluster, namespace, "late", spc)

    def refused():
        driver_log = release.driver.log_since(driver_mark)
        kubelet_log = cluster.kubelet.log_since(kubelet_mark)
        driver_lines = [line for line in driver_log.splitlines() if spc in line and ("fail" in line.lower() or "error" in line.lower())]
        kubelet_lines = [line for line in kubelet_log.splitlines() if spc in line and "MountVolume.SetUp failed" in line]
        assert driver_lines, "the driver has logged no error naming the class"
        assert kubelet_lines, "the kubelet has logged no MountVolume.SetUp failure naming the class"
        return kubelet_lines

    lines = eventually(refused, 30, f"the publish for the missing class {spc} to be refused")
    assert "FailedPrecondition" in lines[0], f"kubelet saw: {REDACT(lines[0])[:400]}"
    current = cluster.core.read_namespaced_pod("late", namespace)
    assert current.status.phase == "Pending", f"pod phase {current.status.phase} while its volume is refused"

    create_spc(cluster, namespace, spc, [{"objectName": "db-pass", "objectType": "secret"}])

    def started():
        current = cluster.core.read_namespaced_pod("late", namespace)
        assert current.metadata.uid == pod.metadata.uid
        assert current.status.phase == "Running", f"phase {current.status.phase}"
        return current

    eventually(started, 60, "the same pod to start once its class exists (kubelet's retry)")
    same_files(read_tree(volume_path(cluster, pod)), files_for(suite.emulator, [{"objectName": "db-pass", "objectType": "secret"}]), "late pod")


def test_rotation_reaches_running_pods_and_synced_secret_and_rolls_opted_in_deployment_once(suite, namespace):
    """A new version reaches a running pod's files and the synced Secret; the kubelet republishes the running
    volume (RequiresRepublish, fresh tokens); the opted-in Deployment is rolled once by the deployment
    controller, the other never. With the chart's settings the driver's own rotation loop (same period) usually
    fetches before the kubelet's next republish; which of the two fetched is not observable. Seen red with the
    other Deployment annotated too, and with rotationRestart.enabled=false."""
    cluster, emulator, release = suite.cluster, suite.emulator, suite.release
    name = f"rot-{uuid.uuid4().hex[:8]}"
    emulator.set_secret(name, f"first-{uuid.uuid4().hex}")
    objects = [{"objectName": name, "objectType": "secret", "objectAlias": "value"}]
    create_spc(cluster, namespace, "rot-spc", objects,
               secret_objects=[{"secretName": "rot-synced", "type": "Opaque", "data": [{"objectName": "value", "key": "value"}]}])
    restart_annotation = {"secrets-store.csi.k8s.io/restart-on-rotation": "true"}
    create_deployment(cluster, namespace, "restarting", "rot-spc", replicas=2, annotations=restart_annotation)
    create_deployment(cluster, namespace, "steady", "rot-spc", replicas=1)
    old_restarting = wait_running(cluster, namespace, "restarting", 2)
    steady = wait_running(cluster, namespace, "steady", 1)[0]
    before = files_for(emulator, objects)
    same_files(read_tree(volume_path(cluster, steady)), before, "steady pod before rotation")

    def revision(deployment):
        return cluster.apps.read_namespaced_deployment(deployment, namespace).metadata.annotations.get("deployment.kubernetes.io/revision")

    assert revision("restarting") == "1" and revision("steady") == "1"
    steady_target = volume_path(cluster, steady)
    publishes_mark = release.driver.log_offset()

    emulator.set_secret(name, f"second-{uuid.uuid4().hex}")
    after = files_for(emulator, objects)
    assert after != before

    def steady_rotated():
        same_files(read_tree(steady_target), after, "steady pod")
        return True

    eventually(steady_rotated, 60, "the new version in the running steady pod's files")
    eventually(lambda: base64.b64decode(cluster.core.read_namespaced_secret("rot-synced", namespace).data["value"]) == after["value"],
               30, "the new version in the synced Secret")
    # RequiresRepublish is live: the kubelet calls NodePublishVolume again on the running pod's volume (with
    # fresh tokens in `secrets`), which is what keeps the driver's rotation supplied with valid tokens.
    def steady_republished():
        assert revision("steady") == "1", "the Deployment without the annotation was rolled"
        assert [p.metadata.uid for p in pods_of(cluster, namespace, "steady")] == [steady.metadata.uid], "the steady pod was replaced"
        return any("NodePublishVolume request" in l and steady_target in l and "serviceAccount.tokens" in l
                   for l in release.driver.log_since(publishes_mark).splitlines())

    eventually(steady_republished, 40, "the kubelet to republish the steady pod's volume (RequiresRepublish)")

    def rolled():
        assert revision("restarting") == "2", f"revision {revision('restarting')}"
        pods = wait_running(cluster, namespace, "restarting", 2, timeout=1)
        assert not {p.metadata.uid for p in pods} & {p.metadata.uid for p in old_restarting}, "old pods still there"
        for pod in pods:
            same_files(read_tree(volume_path(cluster, pod)), after, f"new pod {pod.metadata.name}")
        return pods

    new_restarting = eventually(rolled, 90, "one rollout of the opted-in Deployment, new pods with the new version")

    # Give a second rollout its chance: a rotation pass over the new pods' volumes (their republish by the
    # kubelet), then the revisions must not have moved.
    mark = release.driver.log_offset()
    targets = [volume_path(cluster, p) for p in new_restarting]

    def new_pods_republished():
        log = release.driver.log_since(mark)
        missing = [t for t in targets if not any("NodePublishVolume request" in l and t in l for l in log.splitlines())]
        assert not missing, f"not republished yet: {missing}"
        return True

    eventually(new_pods_republished, 60, "the kubelet to republish the new pods' volumes")
    assert revision("restarting") == "2", "a second rollout of the opted-in Deployment"
    assert revision("steady") == "1", "the Deployment without the annotation was rolled"
    assert [p.metadata.uid for p in pods_of(cluster, namespace, "steady")] == [steady.metadata.uid]
    replica_sets = cluster.apps.list_namespaced_replica_set(namespace, label_selector="app=restarting").items
    assert len(replica_sets) == 2, f"{len(replica_sets)} ReplicaSets of the opted-in Deployment"
