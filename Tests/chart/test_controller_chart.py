"""The sync controller in the chart (controller.*): off by default; on, a schema-valid Deployment running
`secrets-store-csi-driver controller` with the flags it needs, its own ServiceAccount and least-privilege RBAC
(cluster-wide or one namespace), provider sidecars on a shared emptyDir; and the SecretProviderClass CRD's new
spec fields and status subresource."""
import copy
import os

import helm_python
import jsonschema
import kubernetes_validate
import pytest
import yaml

from test_chart import CHART, KUBE, UPSTREAM_EXAMPLE, by_kind, crd, render, schema

ON = {"controller": {"enabled": True}}
NAME = "secrets-store-csi-driver-controller"
PROVIDERS = "/var/run/secrets-store-csi-providers"


def controller_objects(documents):
    return [doc for doc in documents if doc["metadata"]["name"].startswith(NAME)]


def deployment(documents):
    deployments = by_kind(documents, "Deployment")
    assert len(deployments) == 1
    return deployments[0]


def container(documents):
    return {c["name"]: c for c in deployment(documents)["spec"]["template"]["spec"]["containers"]}["controller"]


def args_of(values):
    return container(render(values))["args"]


def controller_values(**keys):
    return {"controller": {"enabled": True, **keys}}


def rules_of(role):
    return {(tuple(rule["apiGroups"]), tuple(rule["resources"]), tuple(rule.get("resourceNames", []))): set(rule["verbs"]) for rule in role["rules"]}


def test_off_by_default_renders_nothing_new():
    documents = render()
    assert controller_objects(documents) == []
    assert by_kind(documents, "Deployment") == [] and by_kind(documents, "Role") == [] and by_kind(documents, "PodDisruptionBudget") == []


@pytest.mark.parametrize("values", [
    ON,
    controller_values(namespace="apps", tokenRequests=["api://AzureADTokenExchange", "vault"], replicas=1),
    controller_values(providerSidecars=[{"name": "vault", "image": "hashicorp/vault-csi-provider:1.5.0", "args": ["--endpoint=/provider/vault.sock"]}]),
])
def test_every_manifest_validates_with_the_controller(values):
    for document in render(values):
        kubernetes_validate.validate(document, KUBE, strict=True)


@pytest.mark.parametrize("values", [ON, controller_values(namespace="apps")])
def test_lint_is_clean_with_the_controller(values):
    report = helm_python.lint(CHART, values, strict=True, kube_version="v" + KUBE)
    assert report["errors"] == [], report
    assert [m for m in report["messages"] if m["severity"] >= 2] == [], report


def test_deployment_runs_the_controller_subcommand_with_its_flags():
    documents = render(ON)
    pod = deployment(documents)["spec"]["template"]["spec"]
    controller = container(documents)
    daemonset = by_kind(documents, "DaemonSet")[0]["spec"]["template"]["spec"]
    driver = {c["name"]: c for c in daemonset["containers"]}["secrets-store"]
    assert deployment(documents)["spec"]["replicas"] == 2
    assert controller["image"] == driver["image"]
    args = controller["args"]
    assert args[0] == "controller"
    for flag in [
        "--provider-volume=" + PROVIDERS,
        "--rotation-poll-interval=2m",
        "--drivername=secrets-store.csi.k8s.io",
        "--leader-elect=true",
        "--leader-election-namespace=kube-system",
        "--leader-election-id=secrets-store-csi-driver-controller",
        "--metrics-addr=:8096",
        "--log-format-json=false",
        "-v=0",
    ]:
        assert flag in args
    assert not any(a.startswith("--namespace=") or a.startswith("--token-requests=") for a in args)
    assert by_kind(documents, "CSIDriver")[0]["metadata"]["name"] == "secrets-store.csi.k8s.io"
    # The built-in Azure provider gets the node plugin's flags.
    assert [a for a in args if a.startswith(("--builtin-azure-provider", "--azure-", "--construct-pem-chain", "--write-cert"))] == \
        [a for a in driver["args"] if a.startswith(("--builtin-azure-provider", "--azure-", "--construct-pem-chain", "--write-cert"))]
    assert pod["serviceAccountName"] == NAME
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in controller["env"]}
    assert env == {"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"}
    security = controller["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["runAsNonRoot"] is True and "privileged" not in security
    assert controller["ports"] == [{"name": "metrics", "containerPort": 8096, "protocol": "TCP"}]
    for probe in ("readinessProbe", "livenessProbe"):
        assert controller[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert by_kind(documents, "PodDisruptionBudget")[0]["spec"]["maxUnavailable"] == 1


def test_controller_pods_are_not_selected_by_the_daemonset():
    documents = render(ON)
    daemonset_selector = by_kind(documents, "DaemonSet")[0]["spec"]["selector"]["matchLabels"]
    template_labels = deployment(documents)["spec"]["template"]["metadata"]["labels"]
    assert not all(template_labels.get(key) == value for key, value in daemonset_selector.items())
    selector = deployment(documents)["spec"]["selector"]["matchLabels"]
    assert all(template_labels[key] == value for key, value in selector.items())
    assert by_kind(documents, "PodDisruptionBudget")[0]["spec"]["selector"]["matchLabels"] == selector


def test_flags_follow_the_values():
    args = args_of(controller_values(
        rotationPollInterval="30s", namespace="apps", tokenRequests=["api://AzureADTokenExchange", "vault"],
        leaderElection={"enabled": False}, replicas=1, metricsPort=9100, logVerbosity=4, logFormatJSON=True,
        extraArgs=["--kube-api-qps=20"], builtinAzureProvider={"enabled": False},
    ))
    for flag in ["--rotation-poll-interval=30s", "--namespace=apps", "--token-requests=api://AzureADTokenExchange,vault",
                 "--leader-elect=false", "--metrics-addr=:9100", "-v=4", "--log-format-json=true", "--kube-api-qps=20",
                 "--builtin-azure-provider=false"]:
        assert flag in args
    assert not any(a.startswith("--azure-") for a in args)


def test_controller_azure_overrides_merge_over_the_top_level():
    args = args_of({"builtinAzureProvider": {"cloudName": "AzureUSGovernmentCloud", "imdsEndpoint": "http://imds"},
                    "controller": {"enabled": True, "builtinAzureProvider": {"caBundle": "/etc/ssl/ca.pem"}}})
    assert "--azure-cloud-name=AzureUSGovernmentCloud" in args
    assert "--azure-imds-endpoint=http://imds" in args
    assert "--azure-ca-bundle=/etc/ssl/ca.pem" in args


def test_image_defaults_to_the_driver_image_and_can_be_set():
    driver = {"linux": {"image": {"repository": "mirror.example/driver", "tag": "1.2.3", "pullPolicy": "Always"}}}
    controller = container(render({**driver, **ON}))
    assert controller["image"] == "mirror.example/driver:1.2.3" and controller["imagePullPolicy"] == "Always"
    own = container(render({**driver, "controller": {"enabled": True, "image": {"tag": "9.9.9", "pullPolicy": "Never"}}}))
    assert own["image"] == "mirror.example/driver:9.9.9" and own["imagePullPolicy"] == "Never"
    digest = "sha256:" + "a" * 64
    pinned = container(render({"controller": {"enabled": True, "image": {"repository": "other/controller", "digest": digest}}}))
    assert pinned["image"] == "other/controller@" + digest


def test_cluster_wide_rbac_is_least_privilege():
    documents = render(ON)
    service_accounts = [sa for sa in by_kind(documents, "ServiceAccount") if sa["metadata"]["name"] == NAME]
    assert len(service_accounts) == 1 and service_accounts[0]["metadata"]["namespace"] == "kube-system"
    roles = {r["metadata"]["name"]: r for r in by_kind(documents, "ClusterRole") if r["metadata"]["name"].startswith(NAME)}
    assert rules_of(roles[NAME]) == {
        (("secrets-store.csi.x-k8s.io",), ("secretproviderclasses",), ()): {"get", "list", "watch"},
        (("secrets-store.csi.x-k8s.io",), ("secretproviderclasses/status",), ()): {"patch", "update"},
        (("",), ("secrets",), ()): {"get", "list", "watch", "create", "update", "patch", "delete"},
        (("",), ("serviceaccounts",), ()): {"get"},
        (("",), ("serviceaccounts/token",), ()): {"create"},
        (("",), ("events",), ()): {"create", "patch"},
    }
    assert rules_of(roles[NAME + "-csidriver"]) == {(("storage.k8s.io",), ("csidrivers",), ("secrets-store.csi.k8s.io",)): {"get"}}
    bindings = {b["metadata"]["name"]: b for b in by_kind(documents, "ClusterRoleBinding") if b["metadata"]["name"].startswith(NAME)}
    assert set(bindings) == set(roles)
    for name, binding in bindings.items():
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": NAME, "namespace": "kube-system"}]
    leases = [r for r in by_kind(documents, "Role") if r["metadata"]["name"] == NAME + "-leader-election"]
    assert len(leases) == 1 and leases[0]["metadata"]["namespace"] == "kube-system"
    assert rules_of(leases[0]) == {
        (("coordination.k8s.io",), ("leases",), ()): {"create"},
        (("coordination.k8s.io",), ("leases",), ("secrets-store-csi-driver-controller",)): {"get", "update"},
    }
    lease_binding = [b for b in by_kind(documents, "RoleBinding") if b["metadata"]["name"] == NAME + "-leader-election"][0]
    assert lease_binding["metadata"]["namespace"] == "kube-system"
    assert lease_binding["roleRef"]["kind"] == "Role"
    assert lease_binding["subjects"] == [{"kind": "ServiceAccount", "name": NAME, "namespace": "kube-system"}]


def test_namespace_mode_uses_a_role_in_that_namespace():
    documents = render(controller_values(namespace="apps"))
    assert "--namespace=apps" in container(documents)["args"]
    cluster_roles = [r["metadata"]["name"] for r in by_kind(documents, "ClusterRole") if r["metadata"]["name"].startswith(NAME)]
    assert cluster_roles == [NAME + "-csidriver"]
    role = [r for r in by_kind(documents, "Role") if r["metadata"]["name"] == NAME][0]
    assert role["metadata"]["namespace"] == "apps"
    assert rules_of(role) == rules_of([r for r in by_kind(render(ON), "ClusterRole") if r["metadata"]["name"] == NAME][0])
    binding = [b for b in by_kind(documents, "RoleBinding") if b["metadata"]["name"] == NAME][0]
    assert binding["metadata"]["namespace"] == "apps"
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": NAME}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": NAME, "namespace": "kube-system"}]
    lease = [r for r in by_kind(documents, "Role") if r["metadata"]["name"] == NAME + "-leader-election"][0]
    assert lease["metadata"]["namespace"] == "kube-system"


def test_no_lease_rbac_or_budget_without_leader_election():
    documents = render(controller_values(leaderElection={"enabled": False}, replicas=1))
    assert [r for r in by_kind(documents, "Role") if "leader-election" in r["metadata"]["name"]] == []
    assert by_kind(documents, "PodDisruptionBudget") == []
    assert "--leader-elect=false" in container(documents)["args"]


def test_several_replicas_need_leader_election():
    with pytest.raises(helm_python.HelmError, match="leaderElection"):
        render(controller_values(leaderElection={"enabled": False}))


def test_provider_sidecars_share_the_providers_emptydir():
    sidecar = {"name": "vault", "image": "hashicorp/vault-csi-provider:1.5.0", "args": ["--endpoint=" + PROVIDERS + "/vault.sock"],
               "volumeMounts": [{"name": "vault-config", "mountPath": "/etc/vault"}]}
    documents = render(controller_values(providerSidecars=[sidecar], volumes=[{"name": "vault-config", "configMap": {"name": "vault"}}]))
    pod = deployment(documents)["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in pod["containers"]}
    assert list(containers) == ["controller", "vault"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["providers-dir"] == {"name": "providers-dir", "emptyDir": {}}
    assert "vault-config" in volumes
    for name in ("controller", "vault"):
        mounts = {m["name"]: m["mountPath"] for m in containers[name]["volumeMounts"]}
        assert mounts["providers-dir"] == PROVIDERS
    assert {m["name"] for m in containers["vault"]["volumeMounts"]} == {"providers-dir", "vault-config"}
    assert containers["vault"]["args"] == sidecar["args"]


@pytest.mark.parametrize("values", [
    {"controller": {"enabled": True, "replica": 2}},
    {"controller": {"leaderElection": {"enabled": True, "leaseDuration": "15s"}}},
    {"controller": {"image": {"repo": "x"}}},
    {"controller": {"tokenRequests": [{"audience": "x"}]}},
    {"controller": {"rotationPollInterval": "soon"}},
    {"controller": {"builtinAzureProvider": {"cloud": "x"}}},
])
def test_values_schema_rejects_unknown_or_malformed_controller_keys(values):
    with pytest.raises(helm_python.HelmError, match="/controller"):
        render(values)


def spc_with_sync():
    spc = copy.deepcopy(UPSTREAM_EXAMPLE)
    spc["spec"]["refreshInterval"] = "90s"
    spc["spec"]["sync"] = {"serviceAccountName": "workload", "nodePublishSecretRef": {"name": "secrets-store-creds"}}
    spc["status"] = {
        "conditions": [{"type": "Ready", "status": "True", "reason": "Synced", "message": "synced 1 secret(s)",
                        "lastTransitionTime": "2026-01-02T03:04:05Z", "observedGeneration": 3}],
        "lastSyncTime": "2026-01-02T03:04:05Z",
        "objects": [{"id": "secret/secret1", "version": "abc"}],
        "syncedSecrets": ["foosecret"],
    }
    return spc


def test_crd_has_the_status_subresource_and_the_new_fields():
    document = crd("secretproviderclass.yaml")
    kubernetes_validate.validate(document, KUBE, strict=True)
    for version in document["spec"]["versions"]:
        assert version["subresources"] == {"status": {}}
        columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
        assert columns["Ready"] == '.status.conditions[?(@.type=="Ready")].status'
        assert columns["Reason"] == '.status.conditions[?(@.type=="Ready")].reason'
        assert columns["Last Sync"] == ".status.lastSyncTime"
    spec = schema()["properties"]["spec"]["properties"]
    assert spec["refreshInterval"]["type"] == "string"
    assert spec["sync"]["required"] == ["serviceAccountName"]
    assert spec["sync"]["properties"]["nodePublishSecretRef"]["properties"]["name"]["type"] == "string"
    status = schema()["properties"]["status"]
    assert status["x-kubernetes-preserve-unknown-fields"] is True
    condition = status["properties"]["conditions"]["items"]["properties"]
    assert set(condition) == {"type", "status", "reason", "message", "lastTransitionTime", "observedGeneration"}
    assert condition["lastTransitionTime"]["format"] == "date-time"
    assert condition["observedGeneration"] == {"type": "integer", "format": "int64", "minimum": 0}
    assert status["properties"]["lastSyncTime"]["format"] == "date-time"
    assert set(status["properties"]["objects"]["items"]["properties"]) == {"id", "version"}
    assert status["properties"]["syncedSecrets"]["items"] == {"type": "string"}


def test_crd_accepts_a_class_with_sync_and_status():
    jsonschema.validate(spc_with_sync(), schema())
    example = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "secretproviderclass-sync.yaml")
    if os.path.exists(example):
        with open(example) as file:
            jsonschema.validate(yaml.safe_load(file), schema())
    without_sync = copy.deepcopy(UPSTREAM_EXAMPLE)
    without_sync["status"] = {"byPod": [{"id": "x"}]}   # upstream's old status field is still kept
    jsonschema.validate(without_sync, schema())


@pytest.mark.parametrize("breakage", ["sync without service account", "secret ref without name", "bad refresh interval", "bad condition status"])
def test_crd_rejects_broken_sync_classes(breakage):
    broken = spc_with_sync()
    if breakage == "sync without service account":
        del broken["spec"]["sync"]["serviceAccountName"]
    elif breakage == "secret ref without name":
        broken["spec"]["sync"]["nodePublishSecretRef"] = {}
    elif breakage == "bad refresh interval":
        broken["spec"]["refreshInterval"] = "5 minutes"
    else:
        broken["status"]["conditions"][0]["status"] = "Yes"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema())
