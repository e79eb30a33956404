"""Session fixtures of the cluster suite (see HARNESS.md): one cluster, emulator, release and node plugin per run;
a per-test time guard; component log tails on failure; the whole suite skipped with one line when a
prerequisite is missing."""
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import harness  # noqa: E402

SETUP_TIMEOUT = int(os.environ.get("SSCSI_SETUP_TIMEOUT", "240"))   # the first setup starts the cluster
TEST_TIMEOUT = int(os.environ.get("SSCSI_TEST_TIMEOUT", "180"))
STATE = {"unavailable": None, "prerequisites": None, "suite": None, "failed": False}


def pytest_configure(config):
    config.addinivalue_line("markers", "swaps_release: uninstalls or upgrades the suite's release; run after the others")

    # A SIGTERM (a CI job's timeout) ends the run like Ctrl-C, so the session's finalizers stop every process.
    def interrupted(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    if threading_is_main():
        signal.signal(signal.SIGTERM, interrupted)


def threading_is_main():
    import threading

    return threading.current_thread() is threading.main_thread()


def pytest_collection_modifyitems(session, config, items):
    ours = [item for item in items if str(item.fspath).startswith(os.path.dirname(__file__))]
    if not ours:
        return
    # Tests that replace the release run last, in file order.
    items.sort(key=lambda item: 1 if item.get_closest_marker("swaps_release") else 0)
    try:
        kube_dir = harness.find_kube_binaries()
        driver, emulator = harness.find_product_binaries()
        if not shutil.which("openssl"):
            raise harness.Unavailable("openssl is not on PATH (the test certificate's PFX is written with it)")
        if os.geteuid() != 0:
            raise harness.Unavailable("not root (the node plugin mounts tmpfs volumes and the kubelet needs root)")
        STATE["prerequisites"] = (kube_dir, driver, emulator)
    except harness.Unavailable as error:
        STATE["unavailable"] = str(error)
        marker = pytest.mark.skip(reason=f"cluster suite skipped: {error}")
        for item in ours:
            item.add_marker(marker)


def pytest_terminal_summary(terminalreporter):
    if STATE["unavailable"]:
        terminalreporter.write_line(f"cluster suite skipped: {STATE['unavailable']}", yellow=True)
    suite = STATE["suite"]
    if suite is not None and suite.kept:
        terminalreporter.write_line(f"cluster suite: logs kept in {suite.cluster.logs}")


class Suite:
    """Everything one run starts. Attributes: `cluster` (harness.Cluster), `emulator` (harness.Emulator),
    `release` (harness.Release), `dir` (the run's temporary directory)."""

    def __init__(self, kube_dir, driver, emulator_binary):
        self.dir = tempfile.mkdtemp(prefix="sscsi-cluster-")
        os.chmod(self.dir, 0o755)
        self.kube_dir, self.driver_binary, self.emulator_binary = kube_dir, driver, emulator_binary
        self.cluster = harness.Cluster(kube_dir, self.dir)
        self.emulator = None
        self.release = None
        self.kept = False
        self._namespaces = list(harness.NAMESPACE_POOL)
        self.timings = {}

    def start(self):
        started = time.monotonic()
        self.cluster.start()
        self.timings["cluster"] = time.monotonic() - started
        emulator_dir = os.path.join(self.dir, "emulator")
        os.makedirs(emulator_dir)
        seed = harness.emulator_seed(emulator_dir)
        # The emulator verifies service account tokens (RS256, this cluster's key) once it can.
        help_text = harness.binary_help(self.emulator_binary)
        trust = (harness.ISSUER, self.cluster.pki.sa_pub_path) if "--trust-issuer" in help_text else None
        self.emulator = harness.Emulator(self.emulator_binary, emulator_dir, seed, trust_issuer=trust).start()
        release_dir = os.path.join(self.dir, "release")
        os.makedirs(release_dir)
        self.release = harness.Release(self.cluster, self.emulator, self.driver_binary, release_dir)
        self.install_main_release()
        self.timings["ready"] = time.monotonic() - started
        return self

    def install_main_release(self, **overrides):
        """Installs the chart with `release.base_values()` (merged with `overrides`) and starts the node plugin."""
        self.release.install(self.release.base_values(**overrides))
        self.release.start_driver()

    def new_namespace(self):
        """A fresh namespace of the pool (the emulator's federated credentials name their `workload`
        ServiceAccount), with that ServiceAccount."""
        assert self._namespaces, "namespace pool exhausted (harness.NAMESPACE_POOL)"
        name = self._namespaces.pop(0)
        core = self.cluster.core
        core.create_namespace({"metadata": {"name": name}})
        core.create_namespaced_service_account(name, {"metadata": {"name": harness.WORKLOAD_SA}})
        harness.eventually(lambda: core.read_namespaced_config_map("kube-root-ca.crt", name), 30, f"kube-root-ca.crt in {name}")
        return name

    def processes(self):
        extra = [self.emulator.process] if self.emulator else []
        return self.cluster.processes() + (self.release.processes() if self.release else []) + extra

    def log_tails(self, lines=12, width=300):
        """The last lines of every component's log, long lines cut (the files hold everything)."""
        parts = []
        for process in self.processes():
            with contextlib.suppress(Exception):
                state = "running" if process.running else f"exited {process.returncode}"
                tail = "\n".join(line if len(line) <= width else line[:width] + " ..." for line in process.tail(lines).splitlines())
                parts.append(f"----- {process.name} (pid {process.pid}, {state}) {process.log_path}\n{tail}")
        return harness.REDACT("\n".join(parts))

    def stop(self, keep):
        if self.release:
            self.release.stop_components()
        if self.emulator:
            self.emulator.stop()
        self.cluster.stop()
        harness.HostProcess.stop_all()
        for mount_point, *_ in reversed(harness.mounts_under(self.dir)):
            subprocess.run(["umount", "-l", mount_point], capture_output=True)
        self.kept = keep or bool(os.environ.get("SSCSI_KEEP_TMP"))
        if not self.kept:
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def suite():
    if STATE["prerequisites"] is None:
        pytest.skip(f"cluster suite skipped: {STATE['unavailable']}")
    suite = Suite(*STATE["prerequisites"])
    STATE["suite"] = suite
    try:
        suite.start()
    except BaseException:
        STATE["failed"] = True
        sys.stderr.write(harness.REDACT(suite.log_tails(40)) + "\n")
        suite.stop(keep=True)
        raise
    yield suite
    suite.stop(keep=STATE["failed"])


@pytest.fixture
def namespace(suite):
    name = suite.new_namespace()
    yield name
    with contextlib.suppress(Exception):
        suite.cluster.core.delete_namespace(name)


# -- time guard: one alarm per phase of each test


class PhaseTimeout(Exception):
    pass


@contextlib.contextmanager
def _alarm(seconds, what):
    def expired(signum, frame):
        raise PhaseTimeout(f"{what} exceeded {seconds} s (time guard)")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    with _alarm(SETUP_TIMEOUT, f"setup of {item.name}"):
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    with _alarm(TEST_TIMEOUT, item.name):
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item):
    with _alarm(SETUP_TIMEOUT, f"teardown of {item.name}"):
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        STATE["failed"] = True
        suite = STATE["suite"]
        if suite is not None:
            report.sections.append(("component logs (tail, redacted)", suite.log_tails()))
        # Assertion texts may quote what a test compared; keep secrets and tokens out of them too.
        if hasattr(report, "longrepr") and report.longrepr is not None:
            with contextlib.suppress(Exception):
                report.longrepr = harness.REDACT(str(report.longrepr))
