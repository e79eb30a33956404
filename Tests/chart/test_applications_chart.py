"""Chart values for what applications need: the CSIDriver's fsGroupPolicy and restart on rotation."""
import kubernetes_validate
import pytest

from test_chart import KUBE, by_kind, render


def driver_args(documents):
    daemonset = by_kind(documents, "DaemonSet")[0]
    container = next(c for c in daemonset["spec"]["template"]["spec"]["containers"] if c["name"] == "secrets-store")
    return container["args"]


def test_fs_group_policy_defaults_to_file():
    csidriver = by_kind(render(), "CSIDriver")[0]
    assert csidriver["spec"]["fsGroupPolicy"] == "File"


def test_fs_group_policy_none_keeps_root_owned_files():
    csidriver = by_kind(render({"fsGroupPolicy": "None"}), "CSIDriver")[0]
    assert csidriver["spec"]["fsGroupPolicy"] == "None"


def test_fs_group_policy_rejects_what_a_tmpfs_cannot_do():
    with pytest.raises(Exception, match="fsGroupPolicy"):
        render({"fsGroupPolicy": "ReadWriteOnceWithFSType"})


def test_rotation_restart_is_off_by_default():
    documents = render()
    assert not any(arg.startswith("--enable-rotation-restart") for arg in driver_args(documents))
    for role in by_kind(documents, "ClusterRole"):
        for rule in role["rules"]:
            assert not set(rule["resources"]) & {"deployments", "statefulsets", "daemonsets", "replicasets"}


def test_rotation_restart_adds_the_flag_and_least_privilege_rbac():
    documents = render({"rotationRestart": {"enabled": True}})
    assert "--enable-rotation-restart=true" in driver_args(documents)
    role = next(r for r in by_kind(documents, "ClusterRole") if r["metadata"]["name"] == "secretprovider-rotation-restart-role")
    rules = {tuple(rule["resources"]): rule["verbs"] for rule in role["rules"]}
    assert rules == {("replicasets",): ["get"], ("deployments", "statefulsets", "daemonsets"): ["get", "patch"]}
    binding = next(b for b in by_kind(documents, "ClusterRoleBinding") if b["roleRef"]["name"] == role["metadata"]["name"])
    assert binding["subjects"][0]["kind"] == "ServiceAccount"
    for document in documents:
        kubernetes_validate.validate(document, KUBE, strict=True)


def test_rotation_restart_renders_no_rbac_without_rbac_install():
    documents = render({"rotationRestart": {"enabled": True}, "rbac": {"install": False}})
    assert not any(r["metadata"]["name"] == "secretprovider-rotation-restart-role" for r in by_kind(documents, "ClusterRole"))
