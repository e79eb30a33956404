"""The chart as users install it, against the real API server: no warning on any object, `helm upgrade` with
changed values (the pre-upgrade hook's `crds apply` with the hook ServiceAccount's own RBAC, the node plugin
restarted with the new flags), and an install with each upstream values shape."""
import json
import os

import pytest
import requests
import yaml

from harness import DRIVER_NAME, REDACT, deep_merge, eventually, manifest_documents

UPSTREAM_VALUES = os.path.join(os.path.dirname(__file__), "..", "chart")
CRDS = ["secretproviderclasses.secrets-store.csi.x-k8s.io", "secretproviderclasspodstatuses.secrets-store.csi.x-k8s.io"]


def release_documents(release):
    """Every object of the installed release, its hooks included."""
    stored = release.helm().get_all(release.name)
    documents = list(release.manifest)
    for hook in stored.get("hooks") or []:
        documents += manifest_documents(hook.get("manifest", ""))
    return documents


def dry_run_warnings(cluster, documents):
    """Server-side-applies each object with dryRun=All as the admin and returns the API server's Warning
    headers, by object."""
    from kubernetes.dynamic import DynamicClient

    dynamic = DynamicClient(cluster.api_client)
    cert = (os.path.join(cluster.pki.directory, "admin.crt"), os.path.join(cluster.pki.directory, "admin.key"))
    warnings = {}
    for document in documents:
        resource = dynamic.resources.get(api_version=document["apiVersion"], kind=document["kind"])
        namespace = document["metadata"].get("namespace") or ("kube-system" if resource.namespaced else None)
        path = resource.path(name=document["metadata"]["name"], namespace=namespace)
        response = requests.patch(
            cluster.server + path, params={"dryRun": "All", "fieldManager": "warning-check", "force": "true"},
            data=json.dumps(document), headers={"Content-Type": "application/apply-patch+yaml"},
            cert=cert, verify=cluster.pki.ca_path, timeout=10,
        )
        assert response.status_code in (200, 201), f"{document['kind']}/{document['metadata']['name']}: HTTP {response.status_code} {response.text[:300]}"
        if response.headers.get("Warning"):
            warnings[f"{document['kind']}/{document['metadata']['name']}"] = response.headers["Warning"]
    return warnings


def test_chart_objects_raise_no_api_warnings(suite):
    """Seen red with a deprecated `beta.kubernetes.io/os` nodeSelector in the values (both checks)."""
    release = suite.release
    assert release.warnings == [], f"Helm's client logged API warnings during install: {release.warnings}"
    documents = release_documents(release)
    kinds = sorted({d["kind"] for d in documents})
    assert {"DaemonSet", "CSIDriver", "Job", "ServiceAccount", "ClusterRole"} <= set(kinds), kinds
    assert dry_run_warnings(suite.cluster, documents) == {}


def crd_description(cluster, name):
    crd = cluster.apiextensions.read_custom_resource_definition(name)
    return crd.spec.versions[0].schema.open_apiv3_schema.description


@pytest.mark.swaps_release
def test_upgrade_reapplies_crds_through_the_hook_and_restarts_the_driver_with_new_flags(suite, namespace):
    """The CRDs drifted by another field manager come back through the pre-upgrade hook's `crds apply` (run
    with the hook ServiceAccount's own RBAC); the restarted driver has the new flags and mounts. Seen red with
    the hook's command replaced by a no-op."""
    cluster, release = suite.cluster, suite.release
    installed = {name: crd_description(cluster, name) for name in CRDS}
    revision = release.helm().status(release.name)["revision"]
    hooks_before = len(release.hook_runs)
    changed = release.base_values(rotationPollInterval="7s", linux={"customUserAgent": "cluster-suite/2"})
    try:
        # Drift the CRDs (another field manager): the upgrade's hook must bring them back.
        for name in CRDS:
            cluster.apiextensions.patch_custom_resource_definition(
                name, [{"op": "replace", "path": "/spec/versions/0/schema/openAPIV3Schema/description", "value": "drifted"}],
                field_manager="drift",
            )
        assert all(crd_description(cluster, name) == "drifted" for name in CRDS)
        release.upgrade(changed)
        assert release.helm().status(release.name)["revision"] == revision + 1
        runs = release.hook_runs[hooks_before:]
        assert [r["exit"] for r in runs] == [0], f"hook runs: {[(r['job'], r['exit'], REDACT(r['output'])[-300:]) for r in runs]}"
        assert runs[0]["argv"][1:3] == ["crds", "apply"]
        for name in CRDS:
            assert name in runs[0]["output"], f"crds apply did not report {name}"
            assert crd_description(cluster, name) == installed[name], f"{name} still drifted after the upgrade's hook"
        assert release.warnings == [], f"API warnings during upgrade: {release.warnings}"

        _, _, container = release.container("DaemonSet", "secrets-store")
        assert "--rotation-poll-interval=7s" in container["args"] and "--custom-user-agent=cluster-suite/2" in container["args"]
        release.restart_driver()
        assert "--rotation-poll-interval=7s" in release.driver.argv and "--custom-user-agent=cluster-suite/2" in release.driver.argv
        # The restarted driver serves new pods.
        from workloads import create_pod, create_spc, read_tree, volume_path
        from expected import files_for

        objects = [{"objectName": "db-pass", "objectType": "secret"}]
        create_spc(cluster, namespace, "after-upgrade", objects)
        pod = create_pod(cluster, namespace, "after-upgrade", "after-upgrade")
        eventually(lambda: cluster.core.read_namespaced_pod("after-upgrade", namespace).status.phase == "Running", 60,
                   "a pod to mount with the upgraded driver")
        assert read_tree(volume_path(cluster, pod)) == files_for(suite.emulator, objects)
    finally:
        release.upgrade(release.base_values())
        release.restart_driver()


def upstream_values(name):
    with open(os.path.join(UPSTREAM_VALUES, name)) as file:
        return yaml.safe_load(file)


@pytest.mark.swaps_release
@pytest.mark.parametrize("values_file, expected_args, audiences", [
    ("values-upstream-driver.yaml",
     ["--rotation-poll-interval=90s", "--enable-secret-sync=true", "--enable-secret-rotation=true", "--metrics-addr=:9095",
      "--provider-health-check=true", "--max-call-recv-msg-size=8388608"],
     ["api://AzureADTokenExchange", "vault"]),
    ("values-upstream-azure.yaml",
     ["--rotation-poll-interval=5m", "--enable-secret-sync=true", "--custom-user-agent=contoso-aks/1.0",
      "--construct-pem-chain=false", "--write-cert-and-key-in-separate-files=true"],
     ["api://AzureADTokenExchange", "api://AKSIdentityBinding", "vault"]),
])
def test_upstream_values_shape_installs_and_its_driver_registers(suite, values_file, expected_args, audiences):
    """Uninstalls the suite's release, installs with an upstream chart's values file as is (the node labelled as
    its nodeSelector and affinity ask, so the hook Job can be scheduled), runs the node plugin with that
    release's flags (its kubeletRootDir mapped to this kubelet's), then puts the suite's release back. Seen red
    with a wrong expected flag value."""
    cluster, release = suite.cluster, suite.release
    values = upstream_values(values_file)
    release.uninstall()
    labels = {"pool": "apps", "kubernetes.azure.com/mode": "user"}
    cluster.core.patch_node(cluster.node_name, {"metadata": {"labels": labels}})
    effective_linux = deep_merge(values.get("linux", {}), values.get("secrets-store-csi-driver", {}).get("linux", {}))
    hooks_before = len(release.hook_runs)
    try:
        release.install(values)
        assert release.helm().status(release.name)["status"] == "deployed"
        runs = release.hook_runs[hooks_before:]
        assert [r["exit"] for r in runs] == [0], f"hook runs: {[(r['job'], r['exit'], REDACT(r['output'])[-300:]) for r in runs]}"
        assert release.warnings == [], f"API warnings: {release.warnings}"
        assert dry_run_warnings(cluster, release_documents(release)) == {}
        csidriver = cluster.storage.read_csi_driver(DRIVER_NAME)
        assert [r.audience for r in csidriver.spec.token_requests] == audiences
        _, _, container = release.container("DaemonSet", "secrets-store")
        missing = [a for a in expected_args if a not in container["args"]]
        assert not missing, f"DaemonSet args lack {missing}: {container['args']}"

        release.host_path_map = {effective_linux["kubeletRootDir"]: cluster.kubelet_root}
        for index, directory in enumerate([effective_linux.get("providersDir")] + list(effective_linux.get("additionalProvidersDirs") or [])):
            if directory:
                release.host_path_map[directory] = os.path.join(release.dir, f"upstream-providers-{index}")
        release.start_driver()
        health = requests.get(release.driver_metrics + "/healthz", timeout=5)
        assert health.status_code == 200
    finally:
        release.host_path_map = {}
        release.uninstall()
        cluster.core.patch_node(cluster.node_name, {"metadata": {"labels": {k: None for k in labels}}})
        suite.install_main_release()
