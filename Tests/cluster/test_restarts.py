"""Restarts under running pods: the hollow kubelet stopped and started again, then the node plugin stopped
(SIGTERM, as a DaemonSet rollout does) and started again, while a Deployment's pods keep their CSI volumes.

After each restart, and while the restarted component is down: each volume is still the same mount (same mount
ID: nothing unmounted, remounted or stacked on it) with the same bytes; the kubelet registers the driver again
(its verdict in the driver's log after the restart, the CSINode entry); the kubelet republishes the volumes at
its usual pace and no faster (NodePublishVolume calls in the driver's debug log over a window of more than one
republish period, every one answered OK; see `republish_bound`); and rotation carries on: a new version in the
vault reaches the running pods' files (after a driver restart the driver has no token until the kubelet's
first republish hands it one, so this also shows the republish feeding rotation).

The registration is checked from the driver's log after a mark taken before the restart (the harness's
`wait_driver_registered` looks from the driver's last start, which a kubelet restart does not move).

Seen failing: `republish_bound` cut to 1 call per volume (red: the restarted kubelet publishes each volume twice
at once); a target unmounted while the driver was down (red: "mounts [], were [(id, 'tmpfs')]"); the driver
restarted without `--enable-secret-rotation=true` (red: the old bytes after the rotation bound); the driver's
registration socket removed while the kubelet was down (red: no verdict within 60 s); and, unplanned, a build of
the driver whose GetInfo announced the driver name as its endpoint (red at the registration wait: the kubelet
dialled `secrets-store.csi.k8s.io`).
"""
import re
import time
import uuid

import pytest

from expected import digest, files_for
from harness import DRIVER_NAME, eventually
from workloads import create_deployment, create_spc, pods_of, read_tree, volume_path, wait_running

PODS = 2
PUBLISH_CALL = re.compile(r"DEBUG gRPC call grpc\.method=/?csi\.v1\.Node/NodePublishVolume\b")
PUBLISH_OK = re.compile(r"DEBUG gRPC call finished .*?grpc\.code=OK grpc\.method=/?csi\.v1\.Node/NodePublishVolume\b")
PUBLISH_REQUEST = re.compile(r"NodePublishVolume request .*?csi\.target_path=\"?([^\"\s]+)")
# The hollow kubelet's syncFrequency (kubemark's configuration): each pod is synced again at least this long after
# its last sync (the pod worker adds up to 50 % jitter on top; measured here: 11-15 s), and every sync of a pod
# whose CSI driver asks for RequiresRepublish calls NodePublishVolume for its volume again.
SYNC_PERIOD = 10
# The window over which publishes are counted: longer than one republish period, so the kubelet's own pace shows.
WINDOW = SYNC_PERIOD + 3


def republish_bound(seconds):
    """The most NodePublishVolume calls one volume may get in `seconds` after a restart: one per sync period,
    one sync in flight at the window's edge, and the two calls a kubelet restart makes at once (measured: the
    reconstructed volume's remount and the pod's first sync, within half a second; a driver restart adds none).
    A kubelet or driver looping on a volume (a failing publish retried with kubelet's 0.5 s doubling back-off,
    a remount loop) exceeds it within the window."""
    return 2 + int(seconds // SYNC_PERIOD) + 1


def same_files(actual, expected, where):
    assert sorted(actual) == sorted(expected), f"{where}: files {sorted(actual)}, expected {sorted(expected)}"
    wrong = {p: (digest(actual[p]), digest(expected[p])) for p in expected if actual[p] != expected[p]}
    assert not wrong, f"{where}: bytes differ (actual, expected): {wrong}"


def mounts_at(path):
    """[(mount ID, fs type)] of the mounts at exactly `path` (/proc/self/mountinfo), bottom first."""
    found = []
    with open("/proc/self/mountinfo") as file:
        for line in file:
            left, right = line.rstrip("\n").split(" - ", 1)
            fields = left.split(" ")
            if fields[4].encode().decode("unicode_escape") == path:
                found.append((fields[0], right.split(" ", 1)[0]))
    return found


@pytest.fixture(scope="module")
def running(suite):
    """A Deployment of PODS pods mounting a class whose first object rotates, Running; their mounts."""
    cluster, emulator = suite.cluster, suite.emulator
    namespace = suite.new_namespace()
    name = f"rst-{uuid.uuid4().hex[:8]}"
    emulator.set_secret(name, f"v1-{uuid.uuid4().hex}")
    objects = [{"objectName": name, "objectType": "secret", "objectAlias": "value"},
               {"objectName": "db-pass", "objectType": "secret", "objectAlias": "DB_PASSWORD"}]
    create_spc(cluster, namespace, "rst-spc", objects)
    create_deployment(cluster, namespace, "app", "rst-spc", replicas=PODS)
    pods = wait_running(cluster, namespace, "app", PODS)
    targets = {p.metadata.name: volume_path(cluster, p) for p in pods}
    expected = files_for(emulator, objects)
    mounts = {}
    for pod, target in targets.items():
        same_files(read_tree(target), expected, f"pod {pod} before any restart")
        mounts[pod] = mounts_at(target)
        assert [kind for _, kind in mounts[pod]] == ["tmpfs"], f"pod {pod}: mounts at its target path {mounts[pod]}"
    yield {"namespace": namespace, "secret": name, "objects": objects, "pods": pods, "targets": targets, "mounts": mounts}
    suite.cluster.core.delete_namespace(namespace)


def check_volumes(suite, running, where):
    """Each pod's volume: the same single tmpfs mount at its target path, the provider's current bytes; the same
    pods, Running."""
    expected = files_for(suite.emulator, running["objects"])
    for pod, target in running["targets"].items():
        assert mounts_at(target) == running["mounts"][pod], f"{where}: pod {pod}: mounts {mounts_at(target)}, were {running['mounts'][pod]}"
        same_files(read_tree(target), expected, f"{where}: pod {pod}")
    pods = pods_of(suite.cluster, running["namespace"], "app")
    assert sorted(p.metadata.uid for p in pods) == sorted(p.metadata.uid for p in running["pods"]), f"{where}: pods replaced"
    assert all(p.status.phase == "Running" for p in pods), f"{where}: phases {[p.status.phase for p in pods]}"


def wait_registered_since(suite, offset, what):
    """The kubelet's registration verdict in the driver's log after `offset`, and the CSINode entry."""
    release, storage = suite.release, suite.cluster.storage

    def registered():
        assert release.driver.running, f"node plugin exited {release.driver.returncode}"
        assert "registered with kubelet" in release.driver.log_since(offset), "no registration verdict from the kubelet since the restart"
        names = [d.name for d in storage.read_csi_node(suite.cluster.node_name).spec.drivers or []]
        assert DRIVER_NAME in names, f"CSINode drivers {names}"
        return True

    eventually(registered, 60, what)


def publishes_by_target(log):
    by_target = {}
    for match in PUBLISH_REQUEST.finditer(log):
        by_target[match.group(1)] = by_target.get(match.group(1), 0) + 1
    return by_target


def rotation_and_pace(suite, running, mark, restarted_at, what):
    """A new version reaches every pod's files; then, once the window has passed and every volume has been
    republished since the restart (the chance for a storm to show), the publishes since `mark` stay within the
    kubelet's pace, every one answered OK, and the volumes are still the same mounts."""
    emulator, release = suite.emulator, suite.release
    emulator.set_secret(running["secret"], f"v-{uuid.uuid4().hex}")
    rotated_from = time.monotonic()
    expected = files_for(emulator, running["objects"])

    def rotated():
        for pod, target in running["targets"].items():
            same_files(read_tree(target), expected, f"pod {pod}")
        return True

    # The rotation poll is 5 s; after a driver restart the first token arrives with the kubelet's first
    # republish (within a sync period and its jitter).
    eventually(rotated, 5 + SYNC_PERIOD * 1.5 + 5, f"the new version in the running pods' files after the {what}")
    rotated_in = time.monotonic() - rotated_from

    def window_passed():
        elapsed = time.monotonic() - restarted_at
        by_target = publishes_by_target(release.driver.log_since(mark))
        missing = [pod for pod, target in running["targets"].items() if not by_target.get(target)]
        assert not missing, f"volumes not republished since the {what}: {missing}"
        assert elapsed >= WINDOW, f"{elapsed:.1f} s of the {WINDOW} s window"
        return True

    eventually(window_passed, WINDOW + SYNC_PERIOD * 1.5 + 5, f"every volume republished and {WINDOW} s passed since the {what}")
    elapsed = time.monotonic() - restarted_at
    log = release.driver.log_since(mark)
    by_target = publishes_by_target(log)
    calls, answered = len(PUBLISH_CALL.findall(log)), len(PUBLISH_OK.findall(log))
    bound = republish_bound(elapsed)
    ours = {pod: by_target.get(target, 0) for pod, target in running["targets"].items()}
    print(f"{what}: {calls} NodePublishVolume calls in {elapsed:.1f} s, ours {ours}, bound {bound} per volume; rotation after {rotated_in:.1f} s")
    # Every volume on the node (ours, and any other test's still there) keeps the pace.
    fast = {target.split("/pods/")[-1][:8]: count for target, count in by_target.items() if count > bound}
    assert not fast, f"republish storm after the {what}: volumes (pod uid prefix: calls) {fast} in {elapsed:.1f} s, at most {bound} expected"
    assert calls == sum(by_target.values()), f"{calls} NodePublishVolume calls, {sum(by_target.values())} requests logged"
    assert answered == calls, f"{calls - answered} of {calls} NodePublishVolume calls since the {what} not answered OK"
    check_volumes(suite, running, f"{WINDOW} s after the {what}")


def test_kubelet_restart_keeps_volumes_registration_and_rotation(suite, running):
    cluster, release = suite.cluster, suite.release
    mark = release.driver.log_offset()
    cluster.stop_kubelet()
    try:
        check_volumes(suite, running, "kubelet stopped")
    finally:
        cluster.start_kubelet()
    restarted_at = time.monotonic()
    wait_registered_since(suite, mark, "the restarted kubelet to register the driver again")
    check_volumes(suite, running, "kubelet restarted")
    rotation_and_pace(suite, running, mark, restarted_at, "kubelet restart")


def test_driver_restart_keeps_volumes_registration_and_rotation(suite, running):
    release = suite.release
    release.stop_driver()
    mark = release.driver.log_offset()
    try:
        check_volumes(suite, running, "node plugin stopped")
    finally:
        release.start_driver(wait_registered=False)
    restarted_at = time.monotonic()
    wait_registered_since(suite, mark, "the kubelet to register the restarted driver")
    recovered = re.findall(r"recovered published volumes volumes\.count=(\d+)", release.driver.log_since(mark))
    assert recovered and int(recovered[0]) >= PODS, f"the restarted driver recovered {recovered} published volumes"
    check_volumes(suite, running, "node plugin restarted")
    rotation_and_pace(suite, running, mark, restarted_at, "driver restart")
