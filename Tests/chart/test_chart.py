"""Chart checks with real Helm 4 (helm-python-sdk) and kubernetes-validate: lint, render, validate every
manifest for a current Kubernetes version, and assert what matters."""
import copy
import json
import os

import helm_python
import jsonschema
import kubernetes_validate
import pytest
import yaml
from helm_python import _native

CHART = os.path.join(os.path.dirname(__file__), "..", "..", "charts", "secrets-store-csi-driver")
# The Kubernetes version every test renders for (.Capabilities.KubeVersion) and validates against, unless it
# names another one.
KUBE = "1.33.0"


def render_files(chart_path, values=None, kube=KUBE):
    """Every file the chart at chart_path renders (path -> text), as `helm template --kube-version v<kube>` would.

    helm-python-sdk's Chart.render takes no Kubernetes version and renders for Helm's built-in one (v1.36.0 in
    helm-python-sdk 0.2.2). The native helm_render it calls does take kube_version in its options (the same
    option struct as the SDK's lint), so this calls it directly. If the SDK ever ignored the option, the
    serviceAccountTokenInSecrets tests for 1.34 would fail.
    """
    chart = helm_python.Chart.load(chart_path)
    try:
        options = {"name": "csi", "namespace": "kube-system", "is_install": True, "kube_version": "v" + kube}
        rendered = _native.call_string("helm_render", chart._raw(), json.dumps(values or {}), json.dumps(options))
    finally:
        chart.close()
    return json.loads(rendered)


def render(values=None, kube=KUBE):
    documents = []
    for path, text in sorted(render_files(CHART, values, kube).items()):
        if path.endswith("NOTES.txt"):
            continue
        documents += [doc for doc in yaml.safe_load_all(text) if doc]
    return documents


def containers_by_name(documents):
    return {c["name"]: c for c in by_kind(documents, "DaemonSet")[0]["spec"]["template"]["spec"]["containers"]}


SIDECARS = {"linux": {"builtinRegistrar": False}}


def by_kind(documents, kind):
    return [doc for doc in documents if doc["kind"] == kind]


def crd(name):
    with open(os.path.join(CHART, "crds", name)) as file:
        return yaml.safe_load(file)


@pytest.mark.parametrize("kube", [KUBE, "1.36.0"])
@pytest.mark.parametrize("values", [{}, SIDECARS])
def test_lint_is_clean(values, kube):
    report = helm_python.lint(CHART, values, strict=True, kube_version="v" + kube)
    assert report["errors"] == [], report
    assert [m for m in report["messages"] if m["severity"] >= 2] == [], report


# 1.36: the CSIDriver has serviceAccountTokenInSecrets, which the schemas of 1.34 and older do not know.
@pytest.mark.parametrize("kube", [KUBE, "1.36.0"])
@pytest.mark.parametrize("values", [
    {},
    SIDECARS,
    {"syncSecret": {"enabled": True}, "enableSecretRotation": True, "rotationPollInterval": "30s", "logVerbosity": 5},
])
def test_every_manifest_validates(values, kube):
    documents = render(values, kube) + [crd("secretproviderclass.yaml"), crd("secretproviderclasspodstatus.yaml")]
    for document in documents:
        kubernetes_validate.validate(document, kube, strict=True)


def test_no_secrets_rbac_by_default():
    rules = [rule for role in by_kind(render(), "ClusterRole") for rule in role["rules"]]
    assert not any("secrets" in rule["resources"] for rule in rules)
    synced = render({"syncSecret": {"enabled": True}})
    secret_rules = [rule for role in by_kind(synced, "ClusterRole") for rule in role["rules"] if "secrets" in rule["resources"]]
    assert secret_rules and set(secret_rules[0]["verbs"]) == {"create", "get", "update"}
    args = containers_by_name(synced)["secrets-store"]["args"]
    assert "--enable-secret-sync=true" in args


@pytest.mark.parametrize("rotation", [True, False])
def test_requires_republish_follows_rotation(rotation):
    documents = render({"enableSecretRotation": rotation})
    assert by_kind(documents, "CSIDriver")[0]["spec"]["requiresRepublish"] is rotation
    args = containers_by_name(documents)["secrets-store"]["args"]
    assert ("--enable-secret-rotation=true" in args) is rotation


@pytest.mark.parametrize("values", [{}, SIDECARS], ids=["builtin-registrar", "sidecars"])
def test_csidriver_and_sockets_agree(values):
    documents = render(values)
    driver = by_kind(documents, "CSIDriver")[0]
    assert driver["metadata"]["name"] == "secrets-store.csi.k8s.io"
    assert driver["spec"]["podInfoOnMount"] is True and driver["spec"]["attachRequired"] is False
    assert driver["spec"]["volumeLifecycleModes"] == ["Ephemeral"]
    assert driver["spec"]["tokenRequests"] == [{"audience": "api://AzureADTokenExchange"}]
    pod = by_kind(documents, "DaemonSet")[0]["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in pod["containers"]}
    env = {e["name"]: e.get("value") for e in containers["secrets-store"]["env"]}
    assert env["CSI_ENDPOINT"] == "unix:///csi/csi.sock"
    registration = "--kubelet-registration-path=/var/lib/kubelet/plugins/csi-secrets-store/csi.sock"
    if values:
        assert "--csi-address=/csi/csi.sock" in containers["node-driver-registrar"]["args"]
        assert "--csi-address=/csi/csi.sock" in containers["liveness-probe"]["args"]
        assert registration in containers["node-driver-registrar"]["args"]
    else:
        assert registration in containers["secrets-store"]["args"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["plugin-dir"]["hostPath"]["path"] == "/var/lib/kubelet/plugins/csi-secrets-store/"
    mounts = {m["name"]: m for m in containers["secrets-store"]["volumeMounts"]}
    assert mounts["mountpoint-dir"]["mountPropagation"] == "Bidirectional"
    assert containers["secrets-store"]["securityContext"]["privileged"] is True


def test_kubelet_root_dir_moves_every_path():
    pod = by_kind(render({"linux": {"kubeletRootDir": "/var/snap/microk8s/common/var/lib/kubelet"}}), "DaemonSet")[0]["spec"]["template"]["spec"]
    paths = [v["hostPath"]["path"] for v in pod["volumes"]]
    assert "/var/snap/microk8s/common/var/lib/kubelet/pods" in paths
    assert "/var/snap/microk8s/common/var/lib/kubelet/plugins/csi-secrets-store/" in paths


UPSTREAM_EXAMPLE = yaml.safe_load("""
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: azure-kvname-wi}
spec:
  provider: azure
  parameters:
    usePodIdentity: "false"
    clientID: "00000000-0000-0000-0000-000000000000"
    keyvaultName: kvname
    cloudName: ""
    objects: |
      array:
        - |
          objectName: secret1
          objectType: secret
    tenantId: "11111111-1111-1111-1111-111111111111"
  secretObjects:
    - secretName: foosecret
      type: Opaque
      labels: {environment: test}
      data:
        - objectName: secret1
          key: username
""")


def schema():
    return crd("secretproviderclass.yaml")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_crd_accepts_the_upstream_examples():
    jsonschema.validate(UPSTREAM_EXAMPLE, schema())
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "examples", "secretproviderclass.yaml")) as file:
        jsonschema.validate(yaml.safe_load(file), schema())


@pytest.mark.parametrize("breakage", ["no provider", "empty parameters", "bad provider name", "secret without type"])
def test_crd_rejects_broken_classes(breakage):
    broken = copy.deepcopy(UPSTREAM_EXAMPLE)
    if breakage == "no provider":
        del broken["spec"]["provider"]
    elif breakage == "empty parameters":
        broken["spec"]["parameters"] = {}
    elif breakage == "bad provider name":
        broken["spec"]["provider"] = "../azure"
    else:
        del broken["spec"]["secretObjects"][0]["type"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema())
