"""serviceAccountTokenInSecrets (issue #22, Kubernetes KEP-5538): the CSIDriver asks kubelet to pass the
tokenRequests tokens in NodePublishVolumeRequest.secrets. auto (the default) sets the field for Kubernetes 1.35
or newer (.Capabilities.KubeVersion, rendered here with Helm's kube_version option), true and false force it.
kubernetes-validate's 1.35+ schemas know the field; 1.34's does not, which is why auto leaves it out there."""
import kubernetes_validate
import pytest

from test_chart import by_kind, render
from test_upstream_values import AZURE, render_error


def csidriver_spec(values, kube):
    return by_kind(render(values, kube), "CSIDriver")[0]["spec"]


def token_in_secrets(values, kube):
    spec = csidriver_spec(values, kube)
    return spec.get("serviceAccountTokenInSecrets", "absent")


@pytest.mark.parametrize("kube, expected", [
    ("1.30.0", "absent"),
    ("1.34.0", "absent"),
    ("1.34.9", "absent"),
    ("1.35.0", True),
    ("1.35.1-gke.1047000", True),  # vendor builds carry a pre-release suffix; >=1.35.0-0 counts them
    ("1.36.0", True),
])
@pytest.mark.parametrize("values", [{}, {"serviceAccountTokenInSecrets": "auto"}], ids=["default", "auto"])
def test_auto_follows_the_kubernetes_version(values, kube, expected):
    assert token_in_secrets(values, kube) == expected


@pytest.mark.parametrize("value", [True, "true"], ids=["bool", "string"])
@pytest.mark.parametrize("kube", ["1.34.0", "1.35.0", "1.36.0"])
def test_true_forces_the_field(value, kube):
    assert token_in_secrets({"serviceAccountTokenInSecrets": value}, kube) is True


@pytest.mark.parametrize("value", [False, "false"], ids=["bool", "string"])
@pytest.mark.parametrize("kube", ["1.34.0", "1.35.0", "1.36.0"])
def test_false_leaves_it_out(value, kube):
    assert token_in_secrets({"serviceAccountTokenInSecrets": value}, kube) == "absent"


def test_the_field_sits_with_the_token_requests():
    spec = csidriver_spec({}, "1.36.0")
    assert spec["tokenRequests"] == [{"audience": "api://AzureADTokenExchange"}]
    assert spec["serviceAccountTokenInSecrets"] is True


def test_auto_without_token_requests_leaves_it_out():
    # The API server refuses the field on a CSIDriver without tokenRequests.
    spec = csidriver_spec({"tokenRequests": []}, "1.36.0")
    assert "tokenRequests" not in spec and "serviceAccountTokenInSecrets" not in spec


def test_true_without_token_requests_is_refused():
    message = render_error({"serviceAccountTokenInSecrets": True, "tokenRequests": []})
    assert "serviceAccountTokenInSecrets=true with no tokenRequests" in message, message


def test_azure_chart_file_token_requests_count():
    # Its tokenRequests come from the secrets-store-csi-driver block.
    spec = csidriver_spec(AZURE, "1.36.0")
    assert [t["audience"] for t in spec["tokenRequests"]] == ["api://AzureADTokenExchange", "api://AKSIdentityBinding", "vault"]
    assert spec["serviceAccountTokenInSecrets"] is True
    assert "serviceAccountTokenInSecrets" not in csidriver_spec(AZURE, "1.34.0")


@pytest.mark.parametrize("kube", ["1.35.0", "1.36.0", "1.37.0"])
def test_csidriver_with_the_field_validates(kube):
    csidriver = by_kind(render({}, kube), "CSIDriver")[0]
    assert csidriver["spec"]["serviceAccountTokenInSecrets"] is True
    kubernetes_validate.validate(csidriver, kube, strict=True)


def test_a_1_34_schema_does_not_know_the_field():
    # What auto avoids: the same object is unknown to Kubernetes 1.34.
    csidriver = by_kind(render({"serviceAccountTokenInSecrets": True}, "1.34.0"), "CSIDriver")[0]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(csidriver, "1.34.0", strict=True)
    del csidriver["spec"]["serviceAccountTokenInSecrets"]
    kubernetes_validate.validate(csidriver, "1.34.0", strict=True)


@pytest.mark.parametrize("value", ["yes", "True", "on", 1, {}])
def test_other_values_are_refused(value):
    message = render_error({"serviceAccountTokenInSecrets": value})
    assert "serviceAccountTokenInSecrets" in message, message


def test_null_means_auto():
    # null removes the key in Helm's values merge, so the default applies.
    assert token_in_secrets({"serviceAccountTokenInSecrets": None}, "1.36.0") is True
    assert token_in_secrets({"serviceAccountTokenInSecrets": None}, "1.34.0") == "absent"
