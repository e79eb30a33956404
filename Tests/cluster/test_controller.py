"""The sync controller (`secrets-store-csi-driver controller`) under the real API server, from the chart's own
Deployment (`controller.enabled: true`, installed with `helm upgrade`), as two host-process replicas with tokens of
the chart's controller ServiceAccount (so the chart's RBAC is exactly what they get):

- a SecretProviderClass with `spec.sync` gets its Secret (the provider's bytes, managed label, owned by the class)
  while its namespace has no pod at all, and reports `Ready=True` (`Synced`, observedGeneration, the objects'
  versions, the synced Secret) through the status subresource;
- one replica leads on the real `coordination.k8s.io/v1` Lease, the other stands by and syncs nothing;
- the leader killed with SIGKILL (no release of the Lease): the standby waits out the Lease (15 s, not sooner),
  takes it (holderIdentity becomes its own), and keeps the Secret following the vault within the class's
  `refreshInterval` (5 s, where the controller's default would be 2 min), notices a hand edit of the Secret
  through its watch and writes it back, and, stopped with SIGTERM, releases the Lease (empty holder).

Which replica leads is read from the Lease and matched against the identity each replica logs when it becomes
leader (`<hostname>_<random>`, the same for both host processes but for the random part).

Seen failing: the Lease expected to name the other replica (red at the first wait); the takeover expected within
5 s (red: the standby had not taken over); the class's `refreshInterval` set to 30 s against the same bound (red:
no refresh within 8.2 s); and, unplanned, a build from before the Secret list fix (red at the restore: the new
leader's Secret informer failed on every list, `DecodingError.keyNotFound: apiVersion ... items[0]`, because the
real API server leaves `apiVersion`/`kind` out of the items of a list of a built-in type).
"""
import base64
import os
import re
import signal
import time
import uuid

import pytest

from expected import digest, files_for, objects_parameter
from harness import RELEASE_NAMESPACE, REDACT, TENANT, VAULT, WI_CLIENT, WORKLOAD_SA, eventually
from workloads import SPC_GROUP, SPC_VERSION

LEASE = "secrets-store-csi-driver-controller"  # the chart's --leader-election-id
REFRESH_SECONDS = 5                            # the class's spec.refreshInterval (the documented minimum)
# The controller refreshes a class `refreshInterval` after its last sync plus up to 10 % jitter, checked on a
# 200 ms tick; the sync itself (TokenRequest, token exchange, Key Vault GET, Secret PUT) takes well under a
# second here even with the machine busy. So a change in the vault reaches the Secret within this bound, while a
# controller falling back to its default (`controller.rotationPollInterval`, 2 min) would not.
FOLLOW_BOUND = REFRESH_SECONDS * 1.1 + 0.2 + 2.5
LEASE_SECONDS = 15                             # client-go's lease duration, which the controller uses


def controller_values(suite):
    """The suite's values with the sync controller on: two replicas, leader election (the chart's default), the
    emulator's CA mounted as the node plugin's is, a default refresh far longer than the class's."""
    ca = suite.emulator.ca_path
    return suite.release.base_values(controller={
        "enabled": True,
        "replicas": 2,
        "rotationPollInterval": "2m",
        "logVerbosity": 4,
        "volumes": [{"name": "keyvault-ca", "hostPath": {"path": ca, "type": "File"}}],
        "volumeMounts": [{"name": "keyvault-ca", "mountPath": "/etc/keyvault-ca/ca.pem", "readOnly": True}],
    })


def create_sync_spc(cluster, namespace, name, objects, secret_objects):
    body = {
        "apiVersion": f"{SPC_GROUP}/{SPC_VERSION}", "kind": "SecretProviderClass",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "provider": "azure",
            "refreshInterval": f"{REFRESH_SECONDS}s",
            "sync": {"serviceAccountName": WORKLOAD_SA},
            "parameters": {
                "usePodIdentity": "false", "clientID": WI_CLIENT, "keyvaultName": VAULT, "tenantId": TENANT,
                "objects": objects_parameter(objects),
            },
            "secretObjects": secret_objects,
        },
    }
    return cluster.custom.create_namespaced_custom_object(SPC_GROUP, SPC_VERSION, namespace, "secretproviderclasses", body)


def lease(cluster):
    """The controller's Lease (the chart passes --leader-election-namespace=<release namespace>)."""
    import kubernetes

    return kubernetes.client.CoordinationV1Api(cluster.api_client).read_namespaced_lease(LEASE, RELEASE_NAMESPACE)


def leader_identity(process, offset=0):
    """The identity a controller process logged when it became leader (after `offset`), or None."""
    found = re.findall(r'became leader .*?leader\.identity="?([^"\s]+)', process.log_since(offset))
    return found[-1] if found else None


def synced_data(cluster, namespace, name):
    secret = cluster.core.read_namespaced_secret(name, namespace)
    return secret, {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}


def class_status(cluster, namespace, name):
    """The class as read through its status subresource (GET .../secretproviderclasses/<name>/status)."""
    return cluster.custom.get_namespaced_custom_object_status(SPC_GROUP, SPC_VERSION, namespace, "secretproviderclasses", name)


@pytest.fixture(scope="module")
def controller_release(suite):
    """The suite's release upgraded with the controller on; afterwards the controllers stopped, the suite's
    release back (the Deployment, its RBAC and the Lease's Role gone) and the node plugin as it was."""
    release = suite.release
    _, _, driver_container = release.container("DaemonSet", "secrets-store")
    release.upgrade(controller_values(suite))
    try:
        _, _, container = release.container("DaemonSet", "secrets-store")
        assert container["args"] == driver_container["args"], "controller.enabled changed the node plugin's arguments"
        yield release
    finally:
        for name in list(release.controllers):
            release.stop_controller(name)
        release.upgrade(release.base_values())
        _, _, container = release.container("DaemonSet", "secrets-store")
        # controller.enabled leaves the DaemonSet alone (asserted above), so the running node plugin is still
        # the suite's; it is restarted only if its flags differ or something stopped it.
        if container["args"] != driver_container["args"] or not release.driver.running:
            release.restart_driver()


@pytest.mark.swaps_release
def test_controller_syncs_before_any_pod_reports_ready_and_fails_over_on_the_lease(suite, controller_release, namespace):
    cluster, emulator, release = suite.cluster, suite.emulator, controller_release
    _, _, container = release.container("Deployment", "controller")
    assert f"--leader-election-id={LEASE}" in container["args"] and "--leader-elect=true" in container["args"]

    name = f"ctl-{uuid.uuid4().hex[:8]}"
    emulator.set_secret(name, f"first-{uuid.uuid4().hex}")
    objects = [{"objectName": name, "objectType": "secret", "objectAlias": "value"},
               {"objectName": "db-pass", "objectType": "secret", "objectAlias": "DB_PASSWORD"}]
    secret_objects = [{"secretName": "ctl-synced", "type": "Opaque",
                       "data": [{"objectName": "value", "key": "value"}, {"objectName": "DB_PASSWORD", "key": "password"}]}]

    # Both replicas, started together: one creates the Lease, the other finds it held.
    replicas = ["controller-0", "controller-1"]
    # Where each replica's log starts (a process of the same name may have written to the file before).
    marks = {}
    for replica in replicas:
        log_path = os.path.join(cluster.logs, f"{replica}.log")
        marks[replica] = os.path.getsize(log_path) if os.path.exists(log_path) else 0
        release.start_controller(replica)

    def one_leader():
        for replica in replicas:
            process = release.controllers[replica]
            assert process.running, f"{replica} exited {process.returncode}: {REDACT(process.tail(10))}"
        leaders = {r: leader_identity(release.controllers[r], marks[r]) for r in replicas}
        elected = [r for r, identity in leaders.items() if identity]
        assert len(elected) == 1, f"replicas that logged 'became leader': {elected}"
        holder = lease(cluster).spec.holder_identity
        assert holder == leaders[elected[0]], f"Lease holder {holder!r}, {elected[0]} leads as {leaders[elected[0]]!r}"
        return elected[0], holder

    leader, leader_id = eventually(one_leader, 30, f"one replica to lead on the Lease {LEASE}")
    standby = next(r for r in replicas if r != leader)

    spc = create_sync_spc(cluster, namespace, "ctl-spc", objects, secret_objects)
    expected = files_for(emulator, objects)

    def synced():
        _, data = synced_data(cluster, namespace, "ctl-synced")
        assert data.get("value") == expected["value"], f"value {digest(data.get('value', b''))}, expected {digest(expected['value'])}"
        return True

    eventually(synced, 20, "the controller to create the class's Secret")
    assert cluster.core.list_namespaced_pod(namespace).items == [], "a pod exists in the namespace"
    secret, data = synced_data(cluster, namespace, "ctl-synced")
    assert sorted(data) == ["password", "value"] and data["password"] == expected["DB_PASSWORD"]
    assert secret.type == "Opaque"
    assert (secret.metadata.labels or {}).get("secrets-store.csi.k8s.io/managed") == "true"
    owners = [(o.kind, o.name, o.uid) for o in secret.metadata.owner_references or []]
    assert owners == [("SecretProviderClass", "ctl-spc", spc["metadata"]["uid"])], f"owners {owners}"

    versions = {item[0] for item in emulator.secret_versions(name)}

    def ready():
        current = class_status(cluster, namespace, "ctl-spc")
        status = current.get("status") or {}
        conditions = status.get("conditions") or []
        assert [c["type"] for c in conditions] == ["Ready"], f"conditions {conditions}"
        condition = conditions[0]
        assert (condition["status"], condition["reason"]) == ("True", "Synced"), f"Ready {condition}"
        assert condition["observedGeneration"] == current["metadata"]["generation"]
        assert status.get("syncedSecrets") == ["ctl-synced"], f"syncedSecrets {status.get('syncedSecrets')}"
        assert status.get("lastSyncTime"), "no lastSyncTime"
        by_id = {o["id"]: o["version"] for o in status.get("objects") or []}
        assert len(by_id) == 2 and any(v in versions for v in by_id.values()), f"objects {by_id}"
        return status

    eventually(ready, 15, "Ready=True on the class's status subresource")
    events = cluster.core.list_namespaced_event(namespace, field_selector="involvedObject.name=ctl-spc").items
    assert "SecretSynced" in {e.reason for e in events}, f"events {[e.reason for e in events]}"

    # The standby had its chance to sync (the leader refreshed the class since) and did nothing.
    refreshes_mark = release.controllers[leader].log_offset()
    eventually(lambda: "secret provider class synced" in release.controllers[leader].log_since(refreshes_mark),
               FOLLOW_BOUND, "the leader to refresh the class")
    standby_log = release.controllers[standby].log_since(marks[standby])
    assert leader_identity(release.controllers[standby], marks[standby]) is None, f"{standby} also logged 'became leader'"
    assert "secret provider class synced" not in standby_log, f"the standby {standby} synced a class"
    assert lease(cluster).spec.holder_identity == leader_id

    # The leader dies without releasing the Lease.
    standby_mark = release.controllers[standby].log_offset()
    killed_at = time.monotonic()
    release.stop_controller(leader, timeout=5, sig=signal.SIGKILL)
    assert release.controllers[leader].returncode == -signal.SIGKILL

    def taken_over():
        identity = leader_identity(release.controllers[standby], standby_mark)
        assert identity, f"{standby} has not logged 'became leader'"
        holder = lease(cluster).spec.holder_identity
        assert holder == identity, f"Lease holder {holder!r}, {standby} leads as {identity!r}"
        return identity

    # The standby last saw the Lease renewed at most one retry period (2 s) before the kill, and waits a full
    # lease duration from then; a retry period of its own and a busy machine on top.
    new_id = eventually(taken_over, LEASE_SECONDS + 10, f"{standby} to take the Lease over from the killed {leader}")
    took = time.monotonic() - killed_at
    assert new_id != leader_id
    assert took >= LEASE_SECONDS - 2 - 1, f"{standby} took a Lease renewed {LEASE_SECONDS} s before only {took:.1f} s after the kill"

    # The new leader lists the class and syncs it; then a new version in the vault follows within the class's
    # refreshInterval.
    eventually(lambda: "secret provider class synced" in release.controllers[standby].log_since(standby_mark), 15,
               f"the new leader {standby} to sync the class")
    emulator.set_secret(name, f"second-{uuid.uuid4().hex}")
    changed_at = time.monotonic()
    after = files_for(emulator, objects)
    assert after["value"] != expected["value"]

    def followed():
        _, data = synced_data(cluster, namespace, "ctl-synced")
        assert data.get("value") == after["value"], f"value {digest(data.get('value', b''))}, expected {digest(after['value'])}"
        return True

    eventually(followed, FOLLOW_BOUND, f"the Secret to follow the vault within the refreshInterval ({REFRESH_SECONDS} s)")
    followed_in = time.monotonic() - changed_at
    new_version = emulator.secret(name)["id"].rsplit("/", 1)[1]
    eventually(lambda: new_version in {o["version"] for o in class_status(cluster, namespace, "ctl-spc")["status"]["objects"]},
               5, "the status to name the new version")

    # The new leader watches the Secrets it keeps (its informer listed them while they existed, which the old
    # leader's never had to): an edit is noticed and written back from the last good content.
    restore_mark = release.controllers[standby].log_offset()
    cluster.core.patch_namespaced_secret("ctl-synced", namespace, {"data": {"value": base64.b64encode(b"edited by hand").decode()}})

    def restored():
        log = release.controllers[standby].log_since(restore_mark)
        assert "a synced secret was edited; restoring it" in log, f"{standby} has not noticed the edit"
        _, data = synced_data(cluster, namespace, "ctl-synced")
        assert data.get("value") == after["value"], f"value {digest(data.get('value', b''))}, expected {digest(after['value'])}"
        return True

    eventually(restored, 10, "the leader to restore the edited Secret (its Secret watch)")
    failures = {r: [REDACT(line)[:300] for line in release.controllers[r].log_since(marks[r]).splitlines() if "list or watch failed" in line]
                for r in replicas}
    assert not any(failures.values()), f"informers failed against the real API server: {failures}"

    # A leader that shuts down gives the Lease up (empty holder) instead of making a successor wait 15 s.
    release.stop_controller(standby)
    eventually(lambda: lease(cluster).spec.holder_identity in ("", None), 5, "the stopped leader to release the Lease")
    print(f"takeover after {took:.1f} s, followed the vault in {followed_in:.1f} s")
