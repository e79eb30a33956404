"""linux.builtinRegistrar (issue #22): true (the default) renders one container per node, the driver registering
itself with kubelet and its own /healthz as the liveness probe; false renders the node-driver-registrar and
livenessprobe sidecars exactly as the chart did before the key existed (compared byte for byte with the chart at
a pinned commit)."""
import io
import os
import subprocess
import tarfile

import pytest

from test_chart import CHART, KUBE, by_kind, containers_by_name, render, render_files
from test_upstream_values import AZURE, DRIVER, render_error, with_changes

REPOSITORY = os.path.join(os.path.dirname(__file__), "..", "..")
# The last commit that changed the chart before linux.builtinRegistrar and serviceAccountTokenInSecrets existed.
BEFORE = "3224702bba4394f8b925aa9aeeeabbc9d1a0c34d"
CHART_PATH = "charts/secrets-store-csi-driver"


def pod_of(documents):
    return by_kind(documents, "DaemonSet")[0]["spec"]["template"]["spec"]


def port_named(container, name):
    (port,) = [p["containerPort"] for p in container.get("ports", []) if p["name"] == name]
    return port


@pytest.mark.parametrize("values", [{}, {"linux": {"builtinRegistrar": True}}], ids=["default", "true"])
def test_builtin_registrar_is_one_container(values):
    documents = render(values)
    pod = pod_of(documents)
    assert [c["name"] for c in pod["containers"]] == ["secrets-store"]
    driver = pod["containers"][0]
    registration = [a for a in driver["args"] if a.startswith(("--plugin-registration-dir", "--kubelet-registration-path"))]
    assert registration == [
        "--plugin-registration-dir=/registration",
        "--kubelet-registration-path=/var/lib/kubelet/plugins/csi-secrets-store/csi.sock",
    ]
    mounts = [m for m in driver["volumeMounts"] if m["name"] == "registration-dir"]
    assert mounts == [{"name": "registration-dir", "mountPath": "/registration"}]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["registration-dir"]["hostPath"] == {"path": "/var/lib/kubelet/plugins_registry/", "type": "Directory"}
    # The CSI socket the driver serves is the one it announces: /csi is the plugin-dir hostPath.
    assert {e["name"]: e.get("value") for e in driver["env"]}["CSI_ENDPOINT"] == "unix:///csi/csi.sock"
    assert volumes["plugin-dir"]["hostPath"]["path"] == "/var/lib/kubelet/plugins/csi-secrets-store/"
    # Liveness: the driver's own /healthz on the --metrics-addr port, same timing as with the sidecar.
    assert driver["ports"] == [{"name": "metrics", "containerPort": 8095, "protocol": "TCP"}]
    assert driver["livenessProbe"] == {
        "failureThreshold": 5,
        "httpGet": {"path": "/healthz", "port": "metrics"},
        "initialDelaySeconds": 30,
        "timeoutSeconds": 10,
        "periodSeconds": 15,
    }
    assert "--metrics-addr=:8095" in driver["args"]


@pytest.mark.parametrize("values, registration_path, port", [
    ({"linux": {"kubeletRootDir": "/var/lib/k0s/kubelet"}}, "/var/lib/k0s/kubelet/plugins/csi-secrets-store/csi.sock", 8095),
    ({"linux": {"metricsAddr": "0.0.0.0:9095"}}, "/var/lib/kubelet/plugins/csi-secrets-store/csi.sock", 9095),
    # metrics.enabled: false leaves the port declared: the liveness probe needs it.
    ({"metrics": {"enabled": False}, "linux": {"metricsAddr": ":9097"}}, "/var/lib/kubelet/plugins/csi-secrets-store/csi.sock", 9097),
    # The sidecar's port is not the probe's any more.
    ({"livenessProbe": {"port": 9999}}, "/var/lib/kubelet/plugins/csi-secrets-store/csi.sock", 8095),
])
def test_builtin_registrar_follows_kubelet_root_and_metrics_addr(values, registration_path, port):
    documents = render(values)
    driver = containers_by_name(documents)["secrets-store"]
    assert f"--kubelet-registration-path={registration_path}" in driver["args"]
    assert port_named(driver, "metrics") == port
    assert [p["name"] for p in driver["ports"]] == ["metrics"]
    assert driver["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    root = values.get("linux", {}).get("kubeletRootDir", "/var/lib/kubelet")
    volumes = {v["name"]: v for v in pod_of(documents)["volumes"]}
    assert volumes["registration-dir"]["hostPath"]["path"] == root + "/plugins_registry/"


def test_sidecars_when_false():
    documents = render({"linux": {"builtinRegistrar": False}})
    containers = containers_by_name(documents)
    assert list(containers) == ["node-driver-registrar", "secrets-store", "liveness-probe"]
    driver = containers["secrets-store"]
    assert not any(a.startswith(("--plugin-registration-dir", "--kubelet-registration-path")) for a in driver["args"])
    assert "registration-dir" not in [m["name"] for m in driver["volumeMounts"]]
    assert driver["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    assert {p["name"]: p["containerPort"] for p in driver["ports"]} == {"healthz": 9808, "metrics": 8095}
    registrar = containers["node-driver-registrar"]
    assert registrar["image"] == "registry.k8s.io/sig-storage/csi-node-driver-registrar:v2.16.0"
    assert "--kubelet-registration-path=/var/lib/kubelet/plugins/csi-secrets-store/csi.sock" in registrar["args"]
    assert {m["name"]: m["mountPath"] for m in registrar["volumeMounts"]} == {"plugin-dir": "/csi", "registration-dir": "/registration"}
    probe = containers["liveness-probe"]
    assert probe["image"] == "registry.k8s.io/sig-storage/livenessprobe:v2.18.0"
    assert "--http-endpoint=0.0.0.0:9808" in probe["args"]


def test_azure_driver_block_decides_like_any_linux_key():
    # The block wins over the top level, as for every other linux key.
    values = {"linux": {"builtinRegistrar": False}, "secrets-store-csi-driver": {"linux": {"builtinRegistrar": True}}}
    assert list(containers_by_name(render(values))) == ["secrets-store"]
    values = with_changes(AZURE, "secrets-store-csi-driver.linux.builtinRegistrar", False)
    assert list(containers_by_name(render(values))) == ["node-driver-registrar", "secrets-store", "liveness-probe"]


def test_notes_say_which_mode():
    notes = lambda values: next(text for path, text in render_files(CHART, values).items() if path.endswith("NOTES.txt"))
    assert "Kubelet registration: by the driver itself, one container per node" in notes({})
    assert "Kubelet registration: node-driver-registrar and livenessprobe sidecars" in notes({"linux": {"builtinRegistrar": False}})


@pytest.mark.parametrize("value", ["false", "yes", 0])
def test_builtin_registrar_must_be_a_boolean(value):
    message = render_error({"linux": {"builtinRegistrar": value}})
    assert "builtinRegistrar" in message, message


# Byte for byte: the chart before the key existed, and this one with linux.builtinRegistrar: false.

@pytest.fixture(scope="module")
def chart_before(tmp_path_factory):
    archive = subprocess.run(["git", "-C", REPOSITORY, "archive", "--format=tar", BEFORE, CHART_PATH], capture_output=True)
    if archive.returncode != 0:
        pytest.fail(f"this test compares with the chart at commit {BEFORE} and needs the repository's history "
                    f"(a full clone): git archive failed: {archive.stderr.decode(errors='replace').strip()}")
    target = tmp_path_factory.mktemp("chart-before")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(target, filter="data")
    return os.path.join(target, CHART_PATH)


def without_notes(files):
    return {path: text for path, text in files.items() if not path.endswith("NOTES.txt")}


SIDECAR_CASES = {
    "defaults": ({}, {"linux": {"builtinRegistrar": False}}),
    "driver-chart-file": (DRIVER, with_changes(DRIVER, "linux.builtinRegistrar", False)),
    "azure-chart-file": (AZURE, with_changes(AZURE, "secrets-store-csi-driver.linux.builtinRegistrar", False)),
    "metrics-off": ({"metrics": {"enabled": False}}, {"metrics": {"enabled": False}, "linux": {"builtinRegistrar": False}}),
    "controller": ({"controller": {"enabled": True}}, {"controller": {"enabled": True}, "linux": {"builtinRegistrar": False}}),
}


@pytest.mark.parametrize("kube, extra", [
    (KUBE, {}),  # serviceAccountTokenInSecrets auto on a server older than 1.35: no field
    ("1.36.0", {"serviceAccountTokenInSecrets": False}),
], ids=["auto-1.33", "false-1.36"])
@pytest.mark.parametrize("case", list(SIDECAR_CASES))
def test_false_renders_exactly_what_the_chart_rendered_before(chart_before, case, kube, extra):
    before_values, values = SIDECAR_CASES[case]
    before = without_notes(render_files(chart_before, before_values, kube))
    now = without_notes(render_files(CHART, {**values, **extra}, kube))
    assert sorted(now) == sorted(before)
    for path in before:
        assert now[path] == before[path], path
