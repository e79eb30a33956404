"""Values files of both upstream charts' shapes install this chart and mean what they meant upstream (real Helm 4
render, kubernetes-validate on every manifest, assertions on the rendered objects); unknown keys and keys that
cannot apply are refused with a message that names them."""
import copy
import os

import helm_python
import kubernetes_validate
import pytest
import yaml

from test_chart import CHART, KUBE, by_kind, render, render_files

HERE = os.path.dirname(__file__)


def load(name):
    with open(os.path.join(HERE, name)) as file:
        return yaml.safe_load(file)


DRIVER = load("values-upstream-driver.yaml")
AZURE = load("values-upstream-azure.yaml")


def render_error(values):
    """The message Helm gives when it refuses the values (schema) or a template fails."""
    with pytest.raises(helm_python.HelmError) as failure:
        render(values)
    return str(failure.value)


def pod_of(documents):
    return by_kind(documents, "DaemonSet")[0]["spec"]["template"]["spec"]


def containers_of(documents):
    return {c["name"]: c for c in pod_of(documents)["containers"]}


def job_of(documents):
    return by_kind(documents, "Job")[0]


def with_changes(values, path, value):
    values = copy.deepcopy(values)
    node = values
    keys = path.split(".")
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value
    return values


def upstream_keys(chart):
    with open(os.path.join(HERE, "upstream-keys.txt")) as file:
        return [line.split()[1] for line in file if line.startswith(chart + " ")]


# The same files with the sidecars (linux.builtinRegistrar: false), the only mode in which the sidecar keys render;
# in the Azure file's shape the key goes in the driver block, where that file sets the sidecar images.
DRIVER_SIDECARS = with_changes(DRIVER, "linux.builtinRegistrar", False)
AZURE_SIDECARS = with_changes(AZURE, "secrets-store-csi-driver.linux.builtinRegistrar", False)


# The Azure chart's provider image is refused (tested below), so its file leaves it out.
REFUSED_IN_AZURE_FILE = {"linux.image.repository", "linux.image.tag", "linux.image.pullPolicy"}


@pytest.mark.parametrize("chart, values", [("driver", DRIVER), ("azure", AZURE)])
def test_upstream_files_set_every_upstream_key(chart, values):
    missing = []
    for path in upstream_keys(chart):
        node = values
        for key in path.split("."):
            node = node.get(key, KeyError) if isinstance(node, dict) else KeyError
        if node is KeyError and not (chart == "azure" and path in REFUSED_IN_AZURE_FILE):
            missing.append(path)
    assert len(upstream_keys(chart)) > 90 and missing == []


@pytest.mark.parametrize("kube", [KUBE, "1.36.0"])
@pytest.mark.parametrize("values", [DRIVER, AZURE, DRIVER_SIDECARS, AZURE_SIDECARS],
                         ids=["driver-chart", "azure-chart", "driver-chart-sidecars", "azure-chart-sidecars"])
def test_upstream_files_lint_and_validate(values, kube):
    report = helm_python.lint(CHART, values, strict=True, kube_version="v" + kube)
    assert report["errors"] == [], report
    assert [m for m in report["messages"] if m["severity"] >= 2] == [], report
    for document in render(values, kube):
        kubernetes_validate.validate(document, kube, strict=True)


# Driver chart shape (secrets-store-csi-driver 1.6.0)

def test_driver_file_images_digest_wins_over_tag():
    documents = render(DRIVER_SIDECARS)
    containers = containers_of(documents)
    assert containers["secrets-store"]["image"] == "registry.example.com/mirror/secrets-store-csi-driver-swift@sha256:" + "1" * 64
    assert containers["secrets-store"]["imagePullPolicy"] == "Always"
    assert containers["node-driver-registrar"]["image"] == "registry.example.com/mirror/csi-node-driver-registrar@sha256:" + "2" * 64
    assert containers["node-driver-registrar"]["imagePullPolicy"] == "Always"
    assert containers["liveness-probe"]["image"] == "registry.example.com/mirror/livenessprobe:v2.17.0"
    assert containers["liveness-probe"]["imagePullPolicy"] == "Never"
    # With the built-in registrar (the default) the sidecar images are accepted and pulled nowhere.
    default = containers_of(render(DRIVER))
    assert list(default) == ["secrets-store"]
    assert default["secrets-store"]["image"] == containers["secrets-store"]["image"]
    assert not any("csi-node-driver-registrar" in text or "livenessprobe" in text for text in render_files(CHART, DRIVER).values())
    hook = job_of(documents)["spec"]["template"]["spec"]["containers"][0]
    assert hook["image"] == "registry.example.com/mirror/secrets-store-csi-driver-crds:v0.1.0-crds"
    assert hook["imagePullPolicy"] == "Always"


def test_driver_file_flags():
    args = containers_of(render(DRIVER))["secrets-store"]["args"]
    for flag in [
        "--provider-volume=/var/run/csi-providers",
        "--additional-provider-volume-paths=/etc/csi-providers,/opt/csi-providers",
        "--metrics-addr=:9095",
        "--max-call-recv-msg-size=8388608",
        "-v=4",
        "--log-format-json=true",
        "--enable-secret-rotation=true",
        "--rotation-poll-interval=90s",
        "--enable-secret-sync=true",
        "--provider-health-check=true",
        "--provider-health-check-interval=5m",
        "--builtin-azure-provider=true",
    ]:
        assert flag in args, (flag, args)


def test_driver_file_pod_volumes_and_scheduling():
    documents = render(DRIVER)
    daemonset = by_kind(documents, "DaemonSet")[0]
    pod = pod_of(documents)
    containers = containers_of(documents)
    assert daemonset["metadata"]["annotations"] == {"owner": "platform"}
    assert daemonset["spec"]["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%"}}
    template = daemonset["spec"]["template"]["metadata"]
    assert template["labels"]["team"] == "platform" and template["labels"]["cost-center"] == "42"
    assert template["annotations"]["prometheus.io/scrape"] == "true"
    assert pod["automountServiceAccountToken"] is False
    assert pod["priorityClassName"] == "system-node-critical"
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux", "pool": "apps"}
    assert pod["tolerations"] == DRIVER["linux"]["tolerations"]
    assert pod["affinity"] == DRIVER["linux"]["affinity"]
    assert pod["imagePullSecrets"] == [{"name": "mirror-pull"}]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["ca-bundle"] == {"name": "ca-bundle", "configMap": {"name": "corporate-ca"}}
    assert volumes["mountpoint-dir"]["hostPath"]["path"] == "/var/lib/k0s/kubelet/pods"
    assert volumes["providers-dir-1"]["hostPath"]["path"] == "/opt/csi-providers"
    mounts = {m["name"]: m for m in containers["secrets-store"]["volumeMounts"]}
    assert mounts["ca-bundle"] == {"name": "ca-bundle", "mountPath": "/etc/ssl/corporate", "readOnly": True}
    driver = containers["secrets-store"]
    assert driver["resources"] == DRIVER["linux"]["driver"]["resources"]
    assert {"name": "HTTPS_PROXY", "value": "http://proxy.internal:3128"} in driver["env"]
    # The built-in registrar: the metrics port, the liveness probe's, whatever livenessProbe.port says.
    assert {p["name"]: p["containerPort"] for p in driver["ports"]} == {"metrics": 9095}
    assert "--kubelet-registration-path=/var/lib/k0s/kubelet/plugins/csi-secrets-store/csi.sock" in driver["args"]
    containers = containers_of(render(DRIVER_SIDECARS))
    assert {p["name"]: p["containerPort"] for p in containers["secrets-store"]["ports"]} == {"healthz": 9810, "metrics": 9095}
    registrar = containers["node-driver-registrar"]
    assert "--v=3" in registrar["args"] and registrar["resources"] == DRIVER["linux"]["registrar"]["resources"]
    assert "--kubelet-registration-path=/var/lib/k0s/kubelet/plugins/csi-secrets-store/csi.sock" in registrar["args"]
    probe = containers["liveness-probe"]
    assert "--http-endpoint=0.0.0.0:9810" in probe["args"] and "-v=4" in probe["args"]
    assert probe["resources"] == DRIVER["linux"]["livenessProbe"]["resources"]


def test_driver_file_csidriver_rbac_and_no_psp():
    documents = render(DRIVER)
    csidriver = by_kind(documents, "CSIDriver")[0]
    assert csidriver["spec"]["requiresRepublish"] is True
    assert csidriver["spec"]["tokenRequests"] == DRIVER["tokenRequests"]
    assert by_kind(documents, "PodSecurityPolicy") == []
    assert not any("podsecuritypolicies" in rule["resources"] for role in by_kind(documents, "ClusterRole") for rule in role["rules"])
    roles = {role["metadata"]["name"]: role for role in by_kind(documents, "ClusterRole")}
    assert roles["secretprovidersyncing-role"]["rules"] == [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["create", "get", "update"]}]
    assert all(doc["metadata"]["labels"]["cost-center"] == "42" for doc in documents)


def test_crd_hook_job_least_privilege():
    documents = render(DRIVER)
    hooks = [doc for doc in documents if "helm.sh/hook" in doc["metadata"].get("annotations", {})]
    assert sorted(doc["kind"] for doc in hooks) == ["ClusterRole", "ClusterRoleBinding", "Job", "ServiceAccount"]
    for doc in hooks:
        annotations = doc["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert set(annotations["helm.sh/hook-delete-policy"].split(",")) == {"before-hook-creation", "hook-succeeded"}
        assert doc["metadata"]["name"] == "secrets-store-csi-driver-upgrade-crds"
    role = next(doc for doc in hooks if doc["kind"] == "ClusterRole")
    assert role["rules"] == [{
        "apiGroups": ["apiextensions.k8s.io"],
        "resources": ["customresourcedefinitions"],
        "resourceNames": ["secretproviderclasses.secrets-store.csi.x-k8s.io", "secretproviderclasspodstatuses.secrets-store.csi.x-k8s.io"],
        "verbs": ["get", "create", "patch"],
    }]
    binding = next(doc for doc in hooks if doc["kind"] == "ClusterRoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "secrets-store-csi-driver-upgrade-crds", "namespace": "kube-system"}]
    assert binding["roleRef"]["name"] == "secrets-store-csi-driver-upgrade-crds"
    job = job_of(documents)
    template = job["spec"]["template"]
    assert template["metadata"]["annotations"] == {"sidecar.istio.io/inject": "false"}
    assert template["metadata"]["labels"]["job-team"] == "platform"
    spec = template["spec"]
    assert spec["serviceAccountName"] == "secrets-store-csi-driver-upgrade-crds"
    assert spec["restartPolicy"] == "Never"
    assert spec["imagePullSecrets"] == [{"name": "mirror-pull"}]
    assert spec["securityContext"]["runAsNonRoot"] is True
    (container,) = spec["containers"]
    assert container["args"] == ["crds", "apply"] and "command" not in container
    assert container["resources"] == DRIVER["linux"]["crds"]["resources"]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    # The driver's own ServiceAccount gains nothing on CRDs.
    driver_rules = [rule for role in by_kind(documents, "ClusterRole") if role not in hooks for rule in role["rules"]]
    assert not any("customresourcedefinitions" in rule["resources"] for rule in driver_rules)


def test_crd_hook_defaults_to_the_driver_image_and_can_be_turned_off():
    job = job_of(render({"linux": {"image": {"digest": "sha256:" + "5" * 64}}}))
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/example/secrets-store-csi-driver-swift@sha256:" + "5" * 64
    job = job_of(render())
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/example/secrets-store-csi-driver-swift:0.1.0"
    assert by_kind(render({"linux": {"crds": {"enabled": False}}}), "Job") == []


def test_crds_are_kept_on_uninstall():
    for name in ["secretproviderclass.yaml", "secretproviderclasspodstatus.yaml"]:
        with open(os.path.join(CHART, "crds", name)) as file:
            assert yaml.safe_load(file)["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


# Azure provider chart shape (csi-secrets-store-provider-azure 1.8.2)

def test_azure_file_names_images_and_driver_block():
    documents = render(AZURE)
    daemonset = by_kind(documents, "DaemonSet")[0]
    assert daemonset["metadata"]["name"] == "csi-driver"  # secrets-store-csi-driver.fullnameOverride wins
    pod = pod_of(documents)
    assert pod["serviceAccountName"] == "csi-driver"
    assert by_kind(documents, "ServiceAccount")[0]["metadata"]["name"] in {"csi-driver", "csi-driver-upgrade-crds"}
    assert daemonset["spec"]["selector"]["matchLabels"] == {"app": "kv"}
    containers = containers_of(documents)
    assert containers["secrets-store"]["image"] == "myacr.azurecr.io/mirror/secrets-store-csi-driver-swift@sha256:" + "3" * 64
    assert list(containers) == ["secrets-store"]
    containers = containers_of(render(AZURE_SIDECARS))
    assert containers["node-driver-registrar"]["image"] == "mcr.microsoft.com/oss/v2/kubernetes-csi/csi-node-driver-registrar:v2.14.1"
    assert containers["liveness-probe"]["image"] == "mcr.microsoft.com/oss/v2/kubernetes-csi/livenessprobe@sha256:" + "4" * 64
    assert job_of(documents)["spec"]["template"]["spec"]["containers"][0]["image"] == "myacr.azurecr.io/mirror/secrets-store-csi-driver-swift:v0.1.0"
    csidriver = by_kind(documents, "CSIDriver")[0]
    assert [t["audience"] for t in csidriver["spec"]["tokenRequests"]] == ["api://AzureADTokenExchange", "api://AKSIdentityBinding", "vault"]
    assert csidriver["spec"]["requiresRepublish"] is True
    assert any(role["metadata"]["name"] == "secretprovidersyncing-role" for role in by_kind(documents, "ClusterRole"))
    assert by_kind(documents, "PodSecurityPolicy") == []


def test_azure_file_flags_configure_driver_and_builtin_provider():
    args = containers_of(render(AZURE))["secrets-store"]["args"]
    for flag in [
        "--construct-pem-chain=false",
        "--write-cert-and-key-in-separate-files=true",
        "--custom-user-agent=contoso-aks/1.0",
        "-v=3",  # the higher of logVerbosity (provider, 2) and secrets-store-csi-driver.logVerbosity (3)
        "--log-format-json=true",
        "--enable-secret-rotation=true",
        "--rotation-poll-interval=5m",
        "--enable-secret-sync=true",
        "--metrics-addr=:8081",
        "--provider-volume=/var/run/csi-providers",
        "--builtin-azure-provider=true",
    ]:
        assert flag in args, (flag, args)
    assert not any("8899" in arg or "healthz" in arg for arg in args)


def test_azure_file_provider_pod_keys_join_the_one_daemonset():
    documents = render(AZURE)
    pod = pod_of(documents)
    containers = containers_of(documents)
    driver = containers["secrets-store"]
    # Requests add up (ours 10m/48Mi + the provider's 100m/200Mi); so do limits (200m/128Mi + 0.2/256Mi).
    assert driver["resources"] == {"requests": {"cpu": "110m", "memory": "248Mi"}, "limits": {"cpu": "400m", "memory": "384Mi"}}
    volumes = [v["name"] for v in pod["volumes"]]
    assert volumes[-2:] == ["custom-cloud", "ca-bundle"]
    mounts = {m["name"]: m["mountPath"] for m in driver["volumeMounts"]}
    assert mounts["custom-cloud"] == "/etc/kubernetes/custom-cloud.json" and mounts["ca-bundle"] == "/etc/ssl/corporate"
    assert pod["imagePullSecrets"] == [{"name": "provider-pull"}, {"name": "driver-pull"}]
    assert pod["dnsPolicy"] == "Default"
    assert pod["priorityClassName"] == "system-node-critical"
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux", "pool": "apps"}
    assert pod["tolerations"] == AZURE["linux"]["tolerations"]
    labels = by_kind(documents, "DaemonSet")[0]["spec"]["template"]["metadata"]["labels"]
    assert labels["team"] == "provider" and labels["app"] == "kv"
    assert "securityContext" not in pod or "privileged" not in pod.get("securityContext", {})
    assert driver["securityContext"]["privileged"] is True


def test_documented_resources_example():
    # docs/migration.md: ours plus the Azure chart's provider defaults written into a values file.
    provider = {"requests": {"cpu": "50m", "memory": "100Mi"}, "limits": {"cpu": "50m", "memory": "100Mi"}}
    resources = containers_of(render({"linux": {"resources": provider}}))["secrets-store"]["resources"]
    assert resources == {"requests": {"cpu": "60m", "memory": "148Mi"}, "limits": {"cpu": "250m", "memory": "228Mi"}}
    assert containers_of(render())["secrets-store"]["resources"] == {"requests": {"cpu": "10m", "memory": "48Mi"}, "limits": {"cpu": "200m", "memory": "128Mi"}}


@pytest.mark.parametrize("a, b, total", [
    ({"requests": {"cpu": "0.5", "memory": "1Gi"}}, {"requests": {"cpu": "250m", "memory": "512Mi"}}, {"requests": {"cpu": "750m", "memory": "1536Mi"}}),
    ({"requests": {"memory": "1G"}, "limits": {"cpu": 1}}, {"requests": {"memory": "1M"}, "limits": {"cpu": 2}}, {"requests": {"memory": "1001M"}, "limits": {"cpu": "3"}}),
    # A limit only one side sets is unbounded on the other, so the sum is unbounded too.
    ({"requests": {"cpu": "10m"}, "limits": {"cpu": "200m", "memory": "128Mi"}}, {"requests": {"ephemeral-storage": "1Ki"}, "limits": {"cpu": "50m"}}, {"requests": {"cpu": "10m", "ephemeral-storage": "1Ki"}, "limits": {"cpu": "250m"}}),
])
def test_provider_resources_add_to_the_driver_container(a, b, total):
    # Null out the chart's default driver resources so that .a replaces them instead of merging into them.
    driver = {field: {"cpu": None, "memory": None, **a.get(field, {})} for field in ["requests", "limits"]}
    values = {"linux": {"driver": {"resources": driver}, "resources": b}}
    assert containers_of(render(values))["secrets-store"]["resources"] == total


def test_unparseable_provider_resources_fail():
    assert "1.5e3" in render_error({"linux": {"resources": {"requests": {"cpu": "1.5e3"}}}})


# Keys that are ours

def test_builtin_azure_provider_overrides():
    args = containers_of(render({"builtinAzureProvider": {
        "cloudName": "AzureUSGovernmentCloud",
        "keyVaultURLTemplate": "https://kv.internal/{vault}",
        "authorityHost": "https://login.internal/",
        "imdsEndpoint": "http://169.254.169.254:8080",
        "caBundle": "/etc/ssl/corporate/ca.pem",
    }}))["secrets-store"]["args"]
    for flag in [
        "--azure-cloud-name=AzureUSGovernmentCloud",
        "--azure-keyvault-url-template=https://kv.internal/{vault}",
        "--azure-authority-host=https://login.internal/",
        "--azure-imds-endpoint=http://169.254.169.254:8080",
        "--azure-ca-bundle=/etc/ssl/corporate/ca.pem",
    ]:
        assert flag in args
    default = containers_of(render())["secrets-store"]["args"]
    assert not any(arg.startswith(("--azure-keyvault-url-template", "--azure-authority-host", "--azure-imds-endpoint", "--azure-ca-bundle", "--custom-user-agent", "--provider-health-check")) for arg in default)
    off = containers_of(render({"builtinAzureProvider": {"enabled": False}}))["secrets-store"]["args"]
    assert "--builtin-azure-provider=false" in off
    assert not any(arg.startswith(("--azure-", "--construct-pem-chain", "--write-cert-and-key")) for arg in off)


# Refusals

@pytest.mark.parametrize("values, key", [
    ({"enableSecretRotaton": True}, "enableSecretRotaton"),
    ({"linux": {"registrarImage": {"tagg": "v1"}}}, "tagg"),
    ({"linux": {"crds": {"podLabel": {}}}}, "podLabel"),
    ({"linux": {"driver": {"resource": {}}}}, "resource"),
    ({"rbac": {"pspEnable": True}}, "pspEnable"),
    ({"builtinAzureProvider": {"cloudname": "x"}}, "cloudname"),
    ({"secrets-store-csi-driver": {"syncSecrets": {"enabled": True}}}, "syncSecrets"),
    ({"secrets-store-csi-driver": {"linux": {"registrarImage": {"repo": "x"}}}}, "repo"),
    ({"windows": {"enable": False}}, "enable"),
    # The renamed keys of earlier versions of this chart are gone: upstream names only.
    ({"linux": {"registrar": {"image": {"tag": "v1"}}}}, "image"),
    ({"linux": {"livenessProbe": {"image": {"tag": "v1"}}}}, "image"),
])
def test_misspelt_key_fails_with_its_name(values, key):
    message = render_error(values)
    assert "additional properties" in message and f"'{key}'" in message, message


def test_free_form_kubernetes_blocks_stay_open():
    render({"linux": {"podAnnotations": {"any/key": "x"}, "affinity": {"podAntiAffinity": {}}, "driver": {"resources": {"claims": []}},
                      "tolerations": [{"operator": "Exists", "anything": 1}]}})


@pytest.mark.parametrize("values", [
    {"windows": {"enabled": True}},
    {"secrets-store-csi-driver": {"windows": {"enabled": True}}},
], ids=["driver-chart", "azure-chart"])
def test_windows_enabled_fails_with_message(values):
    assert "Windows nodes are not supported" in render_error(values)


@pytest.mark.parametrize("path, repository", [
    ("linux.image.repository", "registry.k8s.io/csi-secrets-store/driver"),
    ("linux.image.repository", "mcr.microsoft.com/oss/v2/azure/secrets-store/provider-azure"),
    ("linux.crds.image.repository", "registry.k8s.io/csi-secrets-store/driver-crds"),
    ("secrets-store-csi-driver.linux.image.repository", "mcr.microsoft.com/oss/v2/kubernetes-csi/secrets-store/driver"),
    ("secrets-store-csi-driver.linux.crds.image.repository", "mcr.microsoft.com/oss/v2/kubernetes-csi/secrets-store/driver-crds"),
])
def test_upstream_driver_and_provider_images_are_refused(path, repository):
    message = render_error(with_changes({}, path, repository))
    shown = path.removeprefix("secrets-store-csi-driver.")
    assert f"{shown}={repository}" in message and "upstream" in message, message


def test_azure_provider_image_replaced_by_the_driver_block_is_not_refused():
    values = {"linux": {"image": {"repository": "mcr.microsoft.com/oss/v2/azure/secrets-store/provider-azure", "tag": "v1.8.2"}},
              "secrets-store-csi-driver": {"linux": {"image": {"repository": "myacr.azurecr.io/secrets-store-csi-driver-swift", "tag": "v0.1.0"}}}}
    assert containers_of(render(values))["secrets-store"]["image"] == "myacr.azurecr.io/secrets-store-csi-driver-swift:v0.1.0"


def test_arc_extension_and_driverless_install_are_refused():
    assert "enableArcExtension" in render_error({"enableArcExtension": True})
    assert "secrets-store-csi-driver.install=false" in render_error({"secrets-store-csi-driver": {"install": False}})


def test_volume_name_clash_fails():
    message = render_error({"linux": {"volumes": [{"name": "plugin-dir", "emptyDir": {}}]}})
    assert '"plugin-dir"' in message
    message = render_error({"linux": {"volumes": [{"name": "ca", "emptyDir": {}}]},
                            "secrets-store-csi-driver": {"linux": {"volumes": [{"name": "ca", "configMap": {"name": "x"}}]}}})
    assert '"ca"' in message
    # The same volume in both places is kept once.
    pod = pod_of(render({"linux": {"volumes": [{"name": "ca", "emptyDir": {}}]},
                         "secrets-store-csi-driver": {"linux": {"volumes": [{"name": "ca", "emptyDir": {}}]}}}))
    assert [v["name"] for v in pod["volumes"]].count("ca") == 1


def test_driver_block_false_and_empty_override_the_top_level():
    documents = render({"secrets-store-csi-driver": {"rbac": {"install": False}, "linux": {"crds": {"enabled": False}}}})
    assert by_kind(documents, "ServiceAccount") == [] and by_kind(documents, "Job") == []
    assert by_kind(render({"secrets-store-csi-driver": {"linux": {"enabled": False}}}), "DaemonSet") == []
    pod = pod_of(render({"secrets-store-csi-driver": {"linux": {"tolerations": [], "nodeSelector": {"pool": "x"}}}}))
    assert "tolerations" not in pod and pod["nodeSelector"] == {"kubernetes.io/os": "linux", "pool": "x"}
