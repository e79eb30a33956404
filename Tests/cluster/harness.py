"""A real Kubernetes cluster on loopback for the cluster suite: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and one hollow-kubelet (the real kubelet over a fake container runtime), the chart installed with
real Helm, the node plugin (and, on request, the sync controller) as host processes of the built binary with the
chart's own ServiceAccount tokens, and the Key Vault emulator.

Nothing here imports the product: the checks talk to the components through their own interfaces (the Kubernetes
API with the official client, Helm through helm-python-sdk, the emulator over HTTPS, files and /proc).

Every process is started in its own process group, logged to a file under the run's temporary directory, and
stopped by its pid (finalizer, atexit, and a parent-death signal for the long-lived ones).
"""
from __future__ import annotations

import atexit
import base64
import contextlib
import ctypes
import datetime
import ipaddress
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid

import requests
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CHART = os.path.join(REPO, "charts", "secrets-store-csi-driver")
KUBE_BINARIES = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "hollow-kubelet"]
NODE_NAME = "sscsi-node"
RELEASE = "csi"
RELEASE_NAMESPACE = "kube-system"
DRIVER_NAME = "secrets-store.csi.k8s.io"
ISSUER = "https://kubernetes.default.svc"
WI_AUDIENCE = "api://AzureADTokenExchange"
TENANT = "9a1c6d8e-2b3f-4c5d-8e7f-0a1b2c3d4e5f"
VAULT = "kv-cluster"
WI_CLIENT = "3c2b1a09-wi-cluster-app"
ADMIN_CLIENT = "harness-admin"
WORKLOAD_SA = "workload"
NAMESPACE_POOL = [f"wi-{i}" for i in range(1, 25)]


class Unavailable(Exception):
    """A prerequisite of the whole suite is missing (the suite is skipped with this message)."""


# --------------------------------------------------------------------------------------------------------------
# Waiting


def eventually(condition, timeout, what, interval=0.25):
    """Calls `condition` until it returns something truthy (returned) or `timeout` seconds pass; then fails with
    `what` and the last falsy result or exception. The only way the suite waits."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            result = condition()
            if result:
                return result
            last = f"last result: {result!r}"[:400]
        except AssertionError as error:
            last = f"last check: {error}"[:800]
        except Exception as error:  # an API error, a file not there yet, ...
            last = f"last error: {type(error).__name__}: {error}"[:800]
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what} ({last})")
        time.sleep(interval)


# --------------------------------------------------------------------------------------------------------------
# Processes


_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except Exception:
        pass


class HostProcess:
    """One process started by the harness: its own process group, output in `log_path`, stopped by pid."""

    registry: list["HostProcess"] = []
    _lock = threading.Lock()

    def __init__(self, name, argv, log_dir, env=None, cwd=None):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.env = env
        self.cwd = cwd
        self.log_path = os.path.join(log_dir, f"{name}.log")
        self.popen = None
        self.starts = 0

    def start(self):
        assert not self.running, f"{self.name} is already running (pid {self.pid})"
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== harness: start #{self.starts} of {self.name}: {self._shown_argv()}\n".encode())
            log.flush()
            # A parent-death signal only for processes started by the main thread: it fires when the starting
            # *thread* ends.
            preexec = _die_with_parent if threading.current_thread() is threading.main_thread() else None
            self.popen = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env,
                cwd=self.cwd, start_new_session=True, preexec_fn=preexec,
            )
        with HostProcess._lock:
            if self not in HostProcess.registry:
                HostProcess.registry.append(self)
        return self

    def _shown_argv(self):
        return " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(self.argv))

    @property
    def pid(self):
        return self.popen.pid if self.popen else None

    @property
    def running(self):
        return self.popen is not None and self.popen.poll() is None

    @property
    def returncode(self):
        return None if self.popen is None else self.popen.poll()

    def send_signal(self, sig):
        """Sends `sig` to the process (not its group)."""
        if self.running:
            os.kill(self.popen.pid, sig)

    def stop(self, timeout=10.0, sig=signal.SIGTERM):
        """Stops the process group by the process's pid: `sig`, then SIGKILL after `timeout`."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(10)
        else:
            # The leader is gone; its group may not be.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signal.SIGKILL)
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== harness: {self.name} stopped, exit {self.popen.returncode}\n".encode())
        return self.popen.returncode

    def kill(self):
        """SIGKILL, no grace."""
        return self.stop(timeout=5, sig=signal.SIGKILL)

    def restart(self, timeout=10.0):
        self.stop(timeout)
        return self.start()

    def log(self):
        with open(self.log_path, "rb") as file:
            return file.read().decode("utf-8", "replace")

    def log_offset(self):
        """A mark: pass it to `log_since` to read only what was written after now."""
        try:
            return os.path.getsize(self.log_path)
        except FileNotFoundError:
            return 0

    def log_since(self, offset):
        with open(self.log_path, "rb") as file:
            file.seek(offset)
            return file.read().decode("utf-8", "replace")

    def tail(self, lines=40):
        return "\n".join(self.log().splitlines()[-lines:])

    @classmethod
    def stop_all(cls):
        with cls._lock:
            processes = list(reversed(cls.registry))
        for process in processes:
            with contextlib.suppress(Exception):
                process.stop(timeout=5)


atexit.register(HostProcess.stop_all)


def run(argv, timeout=60, env=None):
    """A short command; returns (exit code, output)."""
    result = subprocess.run([str(a) for a in argv], capture_output=True, timeout=timeout, env=env)
    return result.returncode, (result.stdout + result.stderr).decode("utf-8", "replace")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------------------------------------------
# Binaries


def find_kube_binaries():
    """The directory with the Kubernetes binaries: $KUBEBUILDER_ASSETS, else what ../shared/kube/install.sh
    (relative to the repository) prints. Raises Unavailable naming what is missing."""
    tried = []
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets:
        missing = [b for b in KUBE_BINARIES if not _executable(os.path.join(assets, b)) and not (b == "etcd" and shutil.which("etcd"))]
        if not missing:
            return assets
        tried.append(f"$KUBEBUILDER_ASSETS={assets} lacks {', '.join(missing)}")
    else:
        tried.append("$KUBEBUILDER_ASSETS is not set")
    install = os.path.normpath(os.path.join(REPO, "..", "shared", "kube", "install.sh"))
    if os.path.exists(install):
        try:
            code, output = run(["bash", install], timeout=600)
        except subprocess.TimeoutExpired:
            code, output = 1, "timed out"
        directory = output.strip().splitlines()[-1].strip() if output.strip() else ""
        if code == 0 and os.path.isdir(directory):
            missing = [b for b in KUBE_BINARIES if not _executable(os.path.join(directory, b)) and not (b == "etcd" and shutil.which("etcd"))]
            if not missing:
                return directory
            tried.append(f"{install} printed {directory}, which lacks {', '.join(missing)}")
        else:
            tried.append(f"{install} failed (exit {code}): {output.strip()[-200:]}")
    else:
        tried.append(f"{install} does not exist")
    raise Unavailable("no Kubernetes binaries (" + "; ".join(tried) + ")")


def kube_binary(directory, name):
    path = os.path.join(directory, name)
    if name == "etcd" and not _executable(path):
        return shutil.which("etcd")
    return path


def find_product_binaries():
    """(driver, emulator): $SSCSI_DRIVER_BIN / $SSCSI_EMULATOR_BIN, else the SwiftPM debug build of this
    checkout (never built here). Raises Unavailable naming what is missing."""
    driver = os.environ.get("SSCSI_DRIVER_BIN")
    emulator = os.environ.get("SSCSI_EMULATOR_BIN")
    bin_dir = None
    if not driver or not emulator:
        bin_dir = os.path.join(REPO, ".build", "debug")
        if not _executable(os.path.join(bin_dir, "secrets-store-csi-driver")) and shutil.which("swift"):
            with contextlib.suppress(Exception):
                code, output = run(["swift", "build", "--show-bin-path"], timeout=60)
                if code == 0 and output.strip():
                    bin_dir = output.strip().splitlines()[-1]
    driver = driver or os.path.join(bin_dir, "secrets-store-csi-driver")
    emulator = emulator or os.path.join(os.path.dirname(driver), "keyvault-emulator")
    missing = [p for p in (driver, emulator) if not _executable(p)]
    if missing:
        raise Unavailable(f"product binaries not built: {', '.join(missing)} (run `swift build` first, or set SSCSI_DRIVER_BIN and SSCSI_EMULATOR_BIN)")
    return driver, emulator


def _executable(path):
    return bool(path) and os.path.isfile(path) and os.access(path, os.X_OK)


def binary_help(path, *args):
    with contextlib.suppress(Exception):
        return run([path, *args, "--help"], timeout=30)[1]
    return ""


# --------------------------------------------------------------------------------------------------------------
# Certificates


def _pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


class PKI:
    """The cluster's CA and the certificates and keys the components need, written to `directory`."""

    def __init__(self, directory):
        self.directory = directory
        os.makedirs(directory, exist_ok=True)
        now = datetime.datetime.now(datetime.timezone.utc)
        self.not_before = now - datetime.timedelta(hours=1)
        self.not_after = now + datetime.timedelta(days=2)
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sscsi-cluster-ca")])
        self.ca_cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(self.ca_key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(self.not_before).not_valid_after(self.not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.ca_key.public_key()), critical=False)
            .sign(self.ca_key, hashes.SHA256())
        )
        self.ca_path = self._write("ca.crt", _pem(self.ca_cert))
        self.ca_key_path = self._write("ca.key", _key_pem(self.ca_key))
        # The service-account signing key pair (RS256, what kube-apiserver signs tokens with).
        self.sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.sa_key_path = self._write("sa.key", _key_pem(self.sa_key))
        self.sa_pub_path = self._write(
            "sa.pub", self.sa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )

    def _write(self, name, data):
        path = os.path.join(self.directory, name)
        with open(path, "wb") as file:
            file.write(data)
        os.chmod(path, 0o600)
        return path

    def issue(self, name, common_name, organizations=(), server_ips=(), server_dns=(), client=True, server=False):
        """Writes `<name>.crt` and `<name>.key`; returns (cert path, key path)."""
        key = ec.generate_private_key(ec.SECP256R1())
        attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
        usages = ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else []) + ([ExtendedKeyUsageOID.SERVER_AUTH] if server else [])
        builder = (
            x509.CertificateBuilder().subject_name(x509.Name(attributes)).issuer_name(self.ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(self.not_before).not_valid_after(self.not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca_key.public_key()), critical=False)
        )
        if server_ips or server_dns:
            alternative = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in server_ips] + [x509.DNSName(d) for d in server_dns]
            builder = builder.add_extension(x509.SubjectAlternativeName(alternative), critical=False)
        cert = builder.sign(self.ca_key, hashes.SHA256())
        return self._write(f"{name}.crt", _pem(cert)), self._write(f"{name}.key", _key_pem(key))


def write_kubeconfig(path, server, ca_path, user, cert=None, key=None, token=None):
    with open(ca_path, "rb") as file:
        ca = base64.b64encode(file.read()).decode()
    credentials = {}
    if cert:
        with open(cert, "rb") as c, open(key, "rb") as k:
            credentials = {"client-certificate-data": base64.b64encode(c.read()).decode(), "client-key-data": base64.b64encode(k.read()).decode()}
    if token:
        credentials = {"token": token}
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "ctx",
        "clusters": [{"name": "cluster", "cluster": {"server": server, "certificate-authority-data": ca}}],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": "ctx", "context": {"cluster": "cluster", "user": user}}],
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        yaml.safe_dump(config, file)
    return path


# --------------------------------------------------------------------------------------------------------------
# Mounts


def mountinfo():
    """[(mount point, fs type, super options, mount options)] of this process's mount namespace."""
    entries = []
    with open("/proc/self/mountinfo") as file:
        for line in file:
            left, right = line.rstrip("\n").split(" - ", 1)
            fields = left.split(" ")
            mount_point = fields[4].encode().decode("unicode_escape")
            fs_type, _source, super_options = right.split(" ", 2)
            entries.append((mount_point, fs_type, super_options, fields[5]))
    return entries


def mounts_under(directory):
    prefix = directory.rstrip("/") + "/"
    return [entry for entry in mountinfo() if entry[0].startswith(prefix)]


# --------------------------------------------------------------------------------------------------------------
# Redaction: no secret value and no token in any output


_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")


class Redactor:
    def __init__(self):
        self.values = set()

    def add(self, value):
        if value and len(value) >= 4:
            self.values.add(value)

    def __call__(self, text):
        text = _JWT.sub("<jwt>", text)
        for value in sorted(self.values, key=len, reverse=True):
            text = text.replace(value, "<secret>")
        return text


REDACT = Redactor()


# --------------------------------------------------------------------------------------------------------------
# Key Vault emulator


class Emulator:
    """The project's keyvault-emulator as a host process, seeded by the harness, and a small Key Vault client
    (client-credentials token of the harness's own Entra application) to read and change what it holds."""

    def __init__(self, binary, directory, seed, trust_issuer=None):
        self.binary = binary
        self.directory = directory
        self.seed = seed
        self.seed_path = os.path.join(directory, "emulator-seed.yaml")
        self.ca_path = os.path.join(directory, "emulator-ca.pem")
        with open(self.seed_path, "w") as file:
            yaml.safe_dump(seed, file)
        argv = [binary, "--port", "0", "--seed", self.seed_path, "--ca-out", self.ca_path]
        self.trust_issuer = trust_issuer
        if trust_issuer:
            argv += ["--trust-issuer", f"{trust_issuer[0]}={trust_issuer[1]}"]
        self.process = HostProcess("keyvault-emulator", argv, directory)
        self.base_url = None
        self._token = None
        for client in seed.get("clients", []):
            REDACT.add(client.get("secret"))
        for vault in seed.get("vaults", {}).values():
            for versions in (vault.get("secrets") or {}).values():
                for version in versions:
                    REDACT.add(version.get("value"))

    def start(self):
        offset = self.process.log_offset()
        self.process.start()

        def listening():
            assert self.process.running, f"keyvault-emulator exited {self.process.returncode}: {self.process.tail(5)}"
            match = re.search(r"listening on (https://127\.0\.0\.1:\d+)", self.process.log_since(offset))
            return match and match.group(1)

        self.base_url = eventually(listening, 30, "keyvault-emulator to print its URL")
        eventually(lambda: os.path.exists(self.ca_path), 10, "the emulator's CA file")
        return self

    def stop(self):
        self.process.stop()

    @property
    def url_template(self):
        return self.base_url + "/{vault}"

    def _session(self):
        # verify= is passed on every request: a session attribute loses to $REQUESTS_CA_BUNDLE.
        session = requests.Session()
        session.trust_env = False
        return session

    def token(self):
        if self._token is None or self._token[1] < time.time() + 60:
            client = next(c for c in self.seed["clients"] if c["clientID"] == ADMIN_CLIENT)
            response = self._session().post(
                f"{self.base_url}/{TENANT}/oauth2/v2.0/token", verify=self.ca_path,
                data={"grant_type": "client_credentials", "client_id": ADMIN_CLIENT, "client_secret": client["secret"],
                      "scope": "https://vault.azure.net/.default"},
                timeout=10,
            )
            assert response.status_code == 200, f"emulator token request: HTTP {response.status_code}"
            body = response.json()
            self._token = (body["access_token"], time.time() + int(body.get("expires_in", 3600)))
        return self._token[0]

    def request(self, method, path, json_body=None, vault=VAULT):
        response = self._session().request(
            method, f"{self.base_url}/{vault}/{path}", params={"api-version": "7.4"}, json=json_body,
            headers={"Authorization": f"Bearer {self.token()}"}, timeout=10, verify=self.ca_path,
        )
        return response

    def _ok(self, response, what):
        assert response.status_code == 200, f"emulator {what}: HTTP {response.status_code} {response.text[:200]}"
        return response.json()

    def set_secret(self, name, value, content_type=None, vault=VAULT):
        """A new version of secret `name` (PUT); returns its version id."""
        REDACT.add(value)
        body = {"value": value}
        if content_type:
            body["contentType"] = content_type
        return self._ok(self.request("PUT", f"secrets/{name}", body, vault), f"PUT secret {name}")["id"].rsplit("/", 1)[1]

    def secret(self, name, version="", vault=VAULT):
        """The secret bundle (value, id, contentType, kid) of `name` (its latest version by default)."""
        return self._ok(self.request("GET", f"secrets/{name}/{version}".rstrip("/"), vault=vault), f"GET secret {name}")

    def secret_versions(self, name, vault=VAULT):
        """[(version id, created, enabled)] of a secret, every page."""
        items = []
        response = self.request("GET", f"secrets/{name}/versions", vault=vault)
        while True:
            body = self._ok(response, f"list versions of {name}")
            items += [(i["id"].rsplit("/", 1)[1], i["attributes"].get("created", 0), i["attributes"].get("enabled", True)) for i in body["value"]]
            if not body.get("nextLink"):
                return items
            response = self._session().get(body["nextLink"], headers={"Authorization": f"Bearer {self.token()}"}, timeout=10, verify=self.ca_path)

    def set_secret_enabled(self, name, version, enabled, vault=VAULT):
        return self._ok(self.request("PATCH", f"secrets/{name}/{version}", {"attributes": {"enabled": enabled}}, vault), "PATCH secret")

    def key(self, name, version="", vault=VAULT):
        return self._ok(self.request("GET", f"keys/{name}/{version}".rstrip("/"), vault=vault), f"GET key {name}")

    def certificate(self, name, version="", vault=VAULT):
        return self._ok(self.request("GET", f"certificates/{name}/{version}".rstrip("/"), vault=vault), f"GET certificate {name}")


def make_certificate_chain(directory):
    """A root, an intermediate and a leaf (with SKI/AKI) and the leaf's key, as a password-less PFX of the shape
    Key Vault exports (PBE-SHA1-3DES bags, SHA-1 MAC: what the upstream provider's x/crypto/pkcs12 reads), its
    certificates stored root first so that chain ordering shows. Returns the PFX base64."""
    now = datetime.datetime.now(datetime.timezone.utc)

    def make(common_name, key, issuer_cert, issuer_key, ca):
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        builder = (
            x509.CertificateBuilder().subject_name(subject)
            .issuer_name(issuer_cert.subject if issuer_cert else subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key((issuer_key or key).public_key()), critical=False)
        )
        return builder.sign(issuer_key or key, hashes.SHA256())

    root_key = ec.generate_private_key(ec.SECP256R1())
    root = make("cluster-test-root", root_key, None, None, True)
    intermediate_key = ec.generate_private_key(ec.SECP256R1())
    intermediate = make("cluster-test-intermediate", intermediate_key, root, root_key, True)
    leaf_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    leaf = make("web.cluster.test", leaf_key, intermediate, intermediate_key, False)
    key_path = os.path.join(directory, "web.key")
    with open(key_path, "wb") as file:
        file.write(_key_pem(leaf_key))
    os.chmod(key_path, 0o600)
    leaf_path = os.path.join(directory, "web.crt")
    with open(leaf_path, "wb") as file:
        file.write(_pem(leaf))
    cas_path = os.path.join(directory, "web-cas.crt")
    with open(cas_path, "wb") as file:
        file.write(_pem(root) + _pem(intermediate))
    pfx_path = os.path.join(directory, "web.pfx")
    code, output = run([
        "openssl", "pkcs12", "-export", "-inkey", key_path, "-in", leaf_path, "-certfile", cas_path, "-passout", "pass:",
        "-keypbe", "PBE-SHA1-3DES", "-certpbe", "PBE-SHA1-3DES", "-macalg", "sha1", "-out", pfx_path,
    ])
    if code != 0:
        raise Unavailable(f"openssl pkcs12 -export failed: {output[-300:]}")
    with open(pfx_path, "rb") as file:
        return base64.b64encode(file.read()).decode()


def emulator_seed(directory):
    """The seed: this run's tenant, the harness's own client (client secret), one workload-identity application
    federated with the ServiceAccount `workload` of every namespace of the pool (issuer: this cluster's), and
    one vault with secrets of each shape, a certificate and two keys."""
    ec_key = ec.generate_private_key(ec.SECP256R1()).public_key().public_numbers()
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key().public_numbers()

    def b64url(number, length=None):
        data = number.to_bytes(length or (number.bit_length() + 7) // 8, "big")
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    def random_value(prefix):
        return f"{prefix}-{uuid.uuid4().hex}"

    return {
        "tenantID": TENANT,
        "clients": [
            {"clientID": ADMIN_CLIENT, "secret": random_value("harness")},
            {"clientID": WI_CLIENT, "federated": [
                {"subject": f"system:serviceaccount:{ns}:{WORKLOAD_SA}", "audience": WI_AUDIENCE, "issuer": ISSUER} for ns in NAMESPACE_POOL
            ]},
        ],
        "vaults": {
            VAULT: {
                "secrets": {
                    "db-pass": [{"value": random_value("db")}],
                    "api-key": [{"value": random_value("k1")}, {"value": random_value("k2")}, {"value": random_value("k3")}],
                    "blob": [{"value": base64.b64encode(os.urandom(48)).decode()}],
                },
                "certificates": {"web": [{"pkcs12": make_certificate_chain(directory)}]},
                "keys": {
                    "signing": [{"jwk": {"kty": "EC", "crv": "P-256", "x": b64url(ec_key.x, 32), "y": b64url(ec_key.y, 32)}}],
                    "wrapping": [{"jwk": {"kty": "RSA", "n": b64url(rsa_key.n), "e": b64url(rsa_key.e)}}],
                },
            }
        },
    }


# --------------------------------------------------------------------------------------------------------------
# The cluster


class Cluster:
    """etcd, kube-apiserver, kube-controller-manager, kube-scheduler, one hollow-kubelet; admin clients."""

    def __init__(self, kube_dir, directory):
        self.kube_dir = kube_dir
        self.dir = directory
        self.logs = os.path.join(directory, "logs")
        os.makedirs(self.logs, exist_ok=True)
        self.pki = PKI(os.path.join(directory, "pki"))
        self.node_name = NODE_NAME
        self.kubelet_root = os.path.join(directory, "kubelet")
        os.makedirs(os.path.join(self.kubelet_root, "plugins_registry"), exist_ok=True)
        self.api_port = free_port()
        self.server = f"https://127.0.0.1:{self.api_port}"
        self.etcd = self.apiserver = self.controller_manager = self.scheduler = self.kubelet = None
        self._api_client = None
        # More kube-apiserver flags, set before `start()` (a benchmark's audit log, for instance).
        self.apiserver_extra_args = []

    # -- start

    def start(self):
        self._start_etcd()
        self._start_apiserver()
        self._start_controllers()
        self._start_kubelet()
        return self

    def _start_etcd(self):
        client, peer = free_port(), free_port()
        # etcd's data on tmpfs when there is one: no fsync latency on a busy disk.
        base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else self.dir
        self.etcd_data = tempfile.mkdtemp(prefix="sscsi-etcd-", dir=base)
        self.etcd_url = f"http://127.0.0.1:{client}"
        self.etcd = HostProcess("etcd", [
            kube_binary(self.kube_dir, "etcd"), "--data-dir", self.etcd_data, "--name", "default",
            "--listen-client-urls", self.etcd_url, "--advertise-client-urls", self.etcd_url,
            "--listen-peer-urls", f"http://127.0.0.1:{peer}", "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-cluster", f"default=http://127.0.0.1:{peer}", "--log-level", "warn",
        ], self.logs).start()

        def healthy():
            assert self.etcd.running, f"etcd exited {self.etcd.returncode}: {self.etcd.tail(5)}"
            return requests.get(self.etcd_url + "/health", timeout=2).json().get("health") == "true"

        eventually(healthy, 30, "etcd /health")

    def _start_apiserver(self):
        pki = self.pki
        self.serving = pki.issue("apiserver", "kube-apiserver", server_ips=["127.0.0.1"], server_dns=["localhost", "kubernetes.default.svc"], client=False, server=True)
        admin = pki.issue("admin", "harness-admin", organizations=["system:masters"])
        node = pki.issue("node", f"system:node:{self.node_name}", organizations=["system:nodes"])
        self.admin_kubeconfig = write_kubeconfig(os.path.join(self.dir, "admin.kubeconfig"), self.server, pki.ca_path, "admin", *admin)
        self.node_kubeconfig = write_kubeconfig(os.path.join(self.dir, "node.kubeconfig"), self.server, pki.ca_path, "node", *node)
        self.apiserver = HostProcess("kube-apiserver", [
            kube_binary(self.kube_dir, "kube-apiserver"),
            "--etcd-servers", self.etcd_url, "--bind-address", "127.0.0.1", "--secure-port", self.api_port,
            "--advertise-address", "127.0.0.1", "--endpoint-reconciler-type", "none",
            "--service-cluster-ip-range", "10.96.0.0/24",
            "--tls-cert-file", self.serving[0], "--tls-private-key-file", self.serving[1],
            "--client-ca-file", pki.ca_path,
            "--service-account-issuer", ISSUER, "--service-account-key-file", pki.sa_pub_path,
            "--service-account-signing-key-file", pki.sa_key_path,
            "--authorization-mode", "Node,RBAC", "--enable-admission-plugins", "NodeRestriction", "--allow-privileged",
            "--api-audiences", f"{ISSUER},{WI_AUDIENCE}",
            "--profiling=false", "--cert-dir", os.path.join(self.dir, "apiserver-certs"),
            *self.apiserver_extra_args,
        ], self.logs).start()

        def ready():
            assert self.apiserver.running, f"kube-apiserver exited {self.apiserver.returncode}: {self.apiserver.tail(10)}"
            return requests.get(self.server + "/readyz", verify=pki.ca_path, cert=admin, timeout=3).status_code == 200

        eventually(ready, 90, "kube-apiserver /readyz")

    def _start_controllers(self):
        self.controller_manager = HostProcess("kube-controller-manager", [
            kube_binary(self.kube_dir, "kube-controller-manager"),
            "--kubeconfig", self.admin_kubeconfig, "--bind-address", "127.0.0.1", "--secure-port", "0",
            "--controllers", "*,-nodeipam,-service,-route,-cloud-node-lifecycle,-persistentvolume-binder,-attachdetach",
            "--service-account-private-key-file", self.pki.sa_key_path, "--root-ca-file", self.pki.ca_path,
            "--leader-elect=false",
        ], self.logs).start()
        self.scheduler = HostProcess("kube-scheduler", [
            kube_binary(self.kube_dir, "kube-scheduler"),
            "--kubeconfig", self.admin_kubeconfig, "--leader-elect=false", "--bind-address", "127.0.0.1", "--secure-port", "0",
        ], self.logs).start()

    def _start_kubelet(self):
        self.kubelet_port = free_port()
        self.kubelet = HostProcess("hollow-kubelet", [
            kube_binary(self.kube_dir, "hollow-kubelet"),
            "--kubeconfig", self.node_kubeconfig, "--name", self.node_name, "--root-dir", self.kubelet_root,
            "--kubelet-port", self.kubelet_port,
        ], self.logs).start()
        self.wait_node_ready()

    def wait_node_ready(self, timeout=60):
        """The node is Ready and carries no not-ready/unreachable taint (pods can be scheduled)."""
        core = self.core

        def ready():
            assert self.kubelet.running, f"hollow-kubelet exited {self.kubelet.returncode}: {self.kubelet.tail(10)}"
            node = core.read_node(self.node_name)
            conditions = {c.type: c.status for c in node.status.conditions or []}
            taints = [t.key for t in node.spec.taints or [] if t.key.startswith("node.kubernetes.io/")]
            assert conditions.get("Ready") == "True", f"Ready={conditions.get('Ready')}"
            assert not taints, f"taints {taints}"
            return True

        eventually(ready, timeout, f"node {self.node_name} Ready without taints")

    # -- kubelet control (for restart tests)

    def stop_kubelet(self, timeout=10.0):
        return self.kubelet.stop(timeout)

    def start_kubelet(self, wait_ready=True):
        self.kubelet.start()
        if wait_ready:
            self.wait_node_ready()

    def restart_kubelet(self):
        self.stop_kubelet()
        self.start_kubelet()

    # -- clients

    @property
    def api_client(self):
        if self._api_client is None:
            import kubernetes

            self._api_client = kubernetes.config.new_client_from_config(config_file=self.admin_kubeconfig)
        return self._api_client

    @property
    def core(self):
        import kubernetes

        return kubernetes.client.CoreV1Api(self.api_client)

    @property
    def apps(self):
        import kubernetes

        return kubernetes.client.AppsV1Api(self.api_client)

    @property
    def batch(self):
        import kubernetes

        return kubernetes.client.BatchV1Api(self.api_client)

    @property
    def storage(self):
        import kubernetes

        return kubernetes.client.StorageV1Api(self.api_client)

    @property
    def custom(self):
        import kubernetes

        return kubernetes.client.CustomObjectsApi(self.api_client)

    @property
    def apiextensions(self):
        import kubernetes

        return kubernetes.client.ApiextensionsV1Api(self.api_client)

    def token_kubeconfig(self, namespace, service_account, path, seconds=86400, bound_pod=None):
        """A kubeconfig with a TokenRequest token of `namespace/service_account` (optionally bound to a pod)."""
        import kubernetes

        spec = {"audiences": [ISSUER], "expirationSeconds": seconds}
        if bound_pod is not None:
            spec["boundObjectRef"] = {"kind": "Pod", "apiVersion": "v1", "name": bound_pod.metadata.name, "uid": bound_pod.metadata.uid}
        request = kubernetes.client.AuthenticationV1TokenRequest(spec=spec)
        token = self.core.create_namespaced_service_account_token(service_account, namespace, request).status.token
        return write_kubeconfig(path, self.server, self.pki.ca_path, f"{namespace}-{service_account}", token=token)

    def processes(self):
        return [p for p in (self.etcd, self.apiserver, self.controller_manager, self.scheduler, self.kubelet) if p]

    def stop(self):
        for process in reversed(self.processes()):
            with contextlib.suppress(Exception):
                process.stop(timeout=10)
        with contextlib.suppress(Exception):
            shutil.rmtree(self.etcd_data, ignore_errors=True)


# --------------------------------------------------------------------------------------------------------------
# Helm and the product


def manifest_documents(manifest_text):
    return [d for d in yaml.safe_load_all(manifest_text or "") if d]


class Release:
    """The chart installed with real Helm (helm-python-sdk), and the components that run from it as host
    processes: the node plugin (the DaemonSet's `secrets-store` container) and the sync controller (the
    Deployment's `controller` container), each with a TokenRequest token of the chart's own ServiceAccount.

    The chart's pre-install/pre-upgrade hook Job (`crds apply`) runs on the hollow node, whose fake runtime
    starts no process: the harness is its container runtime. When the Job's pod runs on the node, the harness
    runs the pod's container command with the driver binary (the image's entrypoint) and a token of the pod's
    ServiceAccount bound to that pod, then reports the exit as the container's (pod status Succeeded/Failed),
    from which the real Job controller completes the Job and Helm goes on.
    """

    def __init__(self, cluster, emulator, driver_binary, directory, name=RELEASE, namespace=RELEASE_NAMESPACE):
        self.cluster = cluster
        self.emulator = emulator
        self.binary = driver_binary
        self.dir = directory
        self.name = name
        self.namespace = namespace
        self.values = None
        self.manifest = []
        self.hook_runs = []          # [{"job", "pod", "argv", "exit", "output"}]
        self.hook_errors = []        # what went wrong while acting as the hook pods' runtime
        self.warnings = []           # API server warnings seen through Helm's log
        self.driver = None           # HostProcess of the node plugin
        self.controllers = {}        # name -> HostProcess
        self.driver_metrics = None   # http://127.0.0.1:<port>
        self.controller_metrics = {}
        self.registrar = None        # the upstream registrar, only when the binary has no built-in one
        self.host_path_map = {}      # hostPath prefix -> directory here (a values file's kubeletRootDir, ...)
        self._helm = None
        self._helm_log_lines = []

    # -- values

    def base_values(self, **overrides):
        """The values this suite installs with: the kubelet's real root dir, the emulator as Key Vault/Entra,
        its CA mounted into the driver container (linux.volumes/volumeMounts, as docs/install.md says)."""
        values = {
            "linux": {
                "kubeletRootDir": self.cluster.kubelet_root,
                "providersDir": os.path.join(self.dir, "providers"),
                "additionalProvidersDirs": [os.path.join(self.dir, "providers-extra")],
                "volumes": [{"name": "keyvault-ca", "hostPath": {"path": self.emulator.ca_path, "type": "File"}}],
                "volumeMounts": [{"name": "keyvault-ca", "mountPath": "/etc/keyvault-ca/ca.pem", "readOnly": True}],
            },
            "builtinAzureProvider": {
                "keyVaultURLTemplate": self.emulator.url_template,
                "authorityHost": self.emulator.base_url + "/",
                "caBundle": "/etc/keyvault-ca/ca.pem",
            },
            "logVerbosity": 5,
            "syncSecret": {"enabled": True},
            "enableSecretRotation": True,
            "rotationPollInterval": "5s",
            "rotationRestart": {"enabled": True},
        }
        return deep_merge(values, overrides)

    # -- Helm

    def helm(self):
        if self._helm is None:
            import helm_python

            self._helm = helm_python.Config(kubeconfig_path=self.cluster.admin_kubeconfig, namespace=self.namespace)
        return self._helm

    def install(self, values, timeout=60):
        return self._helm_action("install", values, timeout)

    def upgrade(self, values, timeout=60):
        return self._helm_action("upgrade", values, timeout)

    def uninstall(self, timeout=120):
        self.stop_components()
        result = self.helm().uninstall(self.name, timeout=timeout, wait="watcher", ignore_not_found=True)
        self.manifest = []
        return result

    def _helm_action(self, action, values, timeout):
        """Runs `helm install|upgrade` while acting as the runtime of the hook Job's pod."""
        stop = threading.Event()
        runner = threading.Thread(target=self._hook_runtime, args=(stop,), name="hook-runtime", daemon=True)
        runner.start()
        started = time.monotonic()
        try:
            with capture_stderr(os.path.join(self.cluster.logs, f"helm-{action}.stderr")) as captured:
                if action == "install":
                    release = self.helm().install(CHART, self.name, values, namespace=self.namespace, timeout=timeout)
                else:
                    release = self.helm().upgrade(CHART, self.name, values, namespace=self.namespace, timeout=timeout)
        except Exception as error:
            raise AssertionError(f"helm {action} failed: {error}\n{self._hook_pods_report()}") from error
        finally:
            stop.set()
            runner.join(30)
        self.helm_seconds = time.monotonic() - started
        self.values = values
        self.last_helm_stderr = captured.text
        self.warnings += [line for line in captured.text.splitlines() if "warning" in line.lower()]
        self.manifest = manifest_documents(release.get("manifest") or self.helm().status(self.name).get("manifest"))
        return release

    def _hook_pods_report(self):
        """What the hook runtime saw: its errors and the Job pods of the release namespace."""
        lines = [f"hook runtime errors: {self.hook_errors[-5:]}", f"hook runs: {[(r['pod'], r['exit']) for r in self.hook_runs]}"]
        with contextlib.suppress(Exception):
            for pod in self.cluster.core.list_namespaced_pod(self.namespace, label_selector="batch.kubernetes.io/job-name").items:
                conditions = {c.type: c.status for c in pod.status.conditions or []}
                lines.append(f"pod {pod.metadata.name}: node {pod.spec.node_name}, phase {pod.status.phase}, conditions {conditions}")
        return REDACT("\n".join(lines))

    def _hook_runtime(self, stop):
        """Runs every pod of a Job in the release namespace that the kubelet started (Helm's hook Jobs), once.
        Errors are logged to `hook-runs.log` and kept in `hook_errors`; the pod is tried again."""
        done = set()
        core = self.cluster.core
        while not stop.is_set():
            try:
                for pod in core.list_namespaced_pod(self.namespace, label_selector="batch.kubernetes.io/job-name").items:
                    if pod.metadata.uid in done or pod.spec.node_name != self.cluster.node_name or pod.status.phase != "Running":
                        continue
                    self._run_hook_pod(pod, pod.metadata.labels["batch.kubernetes.io/job-name"])
                    done.add(pod.metadata.uid)
            except Exception as error:  # keep running: Helm is waiting for this Job
                self.hook_errors.append(f"{type(error).__name__}: {error}")
                with open(os.path.join(self.cluster.logs, "hook-runs.log"), "a") as log:
                    log.write(f"== hook runtime error: {type(error).__name__}: {REDACT(str(error))[:2000]}\n")
            stop.wait(0.3)

    def _run_hook_pod(self, pod, job):
        container = pod.spec.containers[0]
        argv = [self.binary] + list(container.command[1:] if container.command else []) + list(container.args or [])
        kubeconfig = self.cluster.token_kubeconfig(
            pod.metadata.namespace, pod.spec.service_account_name, os.path.join(self.dir, f"hook-{pod.metadata.name}.kubeconfig"),
            seconds=600, bound_pod=pod,
        )
        started = datetime.datetime.now(datetime.timezone.utc)
        # The container has no kubeconfig flag; in-cluster config is the SA token file. Here: --kubeconfig.
        code, output = run(argv + ["--kubeconfig", kubeconfig], timeout=120)
        finished = datetime.datetime.now(datetime.timezone.utc)
        with open(os.path.join(self.cluster.logs, "hook-runs.log"), "a") as log:
            log.write(f"== {job} pod {pod.metadata.name}: {' '.join(os.path.basename(a) for a in argv)} -> exit {code}\n{output}\n")
        self.hook_runs.append({"job": job, "pod": pod.metadata.name, "argv": argv, "exit": code, "output": output})
        statuses = []
        for c in pod.spec.containers:
            statuses.append({
                "name": c.name, "image": c.image, "imageID": "", "ready": False, "restartCount": 0, "started": False,
                "state": {"terminated": {"exitCode": code if c is container else 0, "reason": "Completed" if code == 0 else "Error",
                                         "startedAt": started.strftime("%Y-%m-%dT%H:%M:%SZ"), "finishedAt": finished.strftime("%Y-%m-%dT%H:%M:%SZ")}},
            })
        body = {"status": {"phase": "Succeeded" if code == 0 else "Failed", "containerStatuses": statuses,
                           "conditions": [{"type": "Ready", "status": "False", "reason": "PodCompleted"},
                                          {"type": "ContainersReady", "status": "False", "reason": "PodCompleted"}]}}
        self.cluster.core.patch_namespaced_pod_status(pod.metadata.name, pod.metadata.namespace, body)

    # -- manifest

    def objects(self, kind, name=None):
        return [d for d in self.manifest if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]

    def container(self, kind, container_name):
        workloads = self.objects(kind)
        assert len(workloads) == 1, f"{len(workloads)} {kind} objects in the release"
        pod = workloads[0]["spec"]["template"]["spec"]
        containers = {c["name"]: c for c in pod["containers"]}
        return workloads[0], pod, containers[container_name]

    def host_command(self, kind, container_name, metrics_port, binary=None):
        """The container's command as a host process: `$(VAR)` expanded from its env (fieldRef spec.nodeName →
        the node), every path under a hostPath volumeMount translated to the host path, `--metrics-addr` on a
        loopback port, and a kubeconfig. Returns (argv, env, service account)."""
        workload, pod, container = self.container(kind, container_name)
        env = {}
        for item in container.get("env") or []:
            if "value" in item:
                env[item["name"]] = item["value"]
            elif item.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "spec.nodeName":
                env[item["name"]] = self.cluster.node_name
            elif item.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.namespace":
                env[item["name"]] = workload["metadata"].get("namespace", self.namespace)
            elif item.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name":
                env[item["name"]] = f"{workload['metadata']['name']}-host"
        volumes = {v["name"]: v for v in pod.get("volumes") or []}
        mounts = []
        for mount in container.get("volumeMounts") or []:
            volume = volumes.get(mount["name"], {})
            if "hostPath" in volume:
                host_path = volume["hostPath"]["path"].rstrip("/") or "/"
                for prefix, replacement in sorted(self.host_path_map.items(), key=lambda p: len(p[0]), reverse=True):
                    prefix = prefix.rstrip("/")
                    if host_path == prefix or host_path.startswith(prefix + "/"):
                        host_path = replacement.rstrip("/") + host_path[len(prefix):]
                        break
                mounts.append((mount["mountPath"].rstrip("/") or "/", host_path))
            elif "emptyDir" in volume:
                path = os.path.join(self.dir, "emptydir", kind.lower(), mount["name"])
                os.makedirs(path, exist_ok=True)
                mounts.append((mount["mountPath"].rstrip("/"), path))
        mounts.sort(key=lambda m: len(m[0]), reverse=True)

        def translate(value):
            scheme = ""
            if value.startswith("unix://"):
                scheme, value = "unix://", value[len("unix://"):]
            for container_path, host_path in mounts:
                if value == container_path or value.startswith(container_path + "/"):
                    return scheme + host_path + value[len(container_path):]
            return scheme + value

        def translate_host(value):
            # A host path the container was given as is (e.g. --kubelet-registration-path).
            for prefix, replacement in sorted(self.host_path_map.items(), key=lambda p: len(p[0]), reverse=True):
                prefix = prefix.rstrip("/")
                if value == prefix or value.startswith(prefix + "/"):
                    return replacement.rstrip("/") + value[len(prefix):]
            return value

        argv = [binary or self.binary] + list(container.get("command", [])[1:])
        for arg in container.get("args") or []:
            arg = re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), arg)
            if arg.startswith("-") and "=" in arg:
                flag, value = arg.split("=", 1)
                if flag.lstrip("-") == "metrics-addr":
                    value = f"127.0.0.1:{metrics_port}"
                elif flag.lstrip("-") == "kubelet-registration-path":
                    value = translate_host(value)
                arg = f"{flag}={translate(value)}"
            elif not arg.startswith("-"):
                arg = translate(arg)
            argv.append(arg)
        process_env = dict(os.environ)
        process_env.update({k: v for k, v in env.items()})
        return argv, process_env, pod.get("serviceAccountName", "default")

    # -- node plugin

    def socket_path(self):
        return os.path.join(self.cluster.kubelet_root, "plugins", "csi-secrets-store", "csi.sock")

    def start_driver(self, extra_args=(), wait_registered=True):
        """Starts the node plugin from the installed release's DaemonSet (see `host_command`)."""
        port = free_port()
        argv, env, service_account = self.host_command("DaemonSet", "secrets-store", port)
        kubeconfig = self.cluster.token_kubeconfig(self.namespace, service_account, os.path.join(self.dir, "driver.kubeconfig"))
        argv = argv + [f"--kubeconfig={kubeconfig}"] + list(extra_args)
        builtin_registrar = any(a.startswith("--plugin-registration-dir") for a in argv)
        os.makedirs(os.path.dirname(self.socket_path()), exist_ok=True)
        if self.driver is None or self.driver.argv != argv:
            was = self.driver
            self.driver = HostProcess("node-plugin", argv, self.cluster.logs, env=env)
            if was is not None:
                self.driver.starts = was.starts
        self._driver_offset = self.driver.log_offset()
        self.driver.start()
        self.driver_metrics = f"http://127.0.0.1:{port}"
        self.builtin_registrar = builtin_registrar
        if not builtin_registrar:
            self._start_registrar_sidecar()
        if wait_registered:
            self.wait_driver_registered()
        return self.driver

    def _start_registrar_sidecar(self):
        """With `linux.builtinRegistrar: false` the DaemonSet has upstream's node-driver-registrar sidecar: run it
        the same way (its container args translated; the image's binary from $SSCSI_REGISTRAR_BIN or
        ~/.cache/upstream-sscsi, see /work/shared/upstream), registering in the kubelet's plugins_registry."""
        if self.registrar and self.registrar.running:
            return
        binary = os.environ.get("SSCSI_REGISTRAR_BIN") or os.path.expanduser("~/.cache/upstream-sscsi/csi-node-driver-registrar")
        assert _executable(binary), f"the chart runs the registrar sidecar, and its binary is missing: {binary}"
        argv, env, _ = self.host_command("DaemonSet", "node-driver-registrar", 0, binary=binary)
        _, pod, container = self.container("DaemonSet", "node-driver-registrar")
        volumes = {v["name"]: v for v in pod.get("volumes") or []}
        registration = [volumes[m["name"]]["hostPath"]["path"] for m in container.get("volumeMounts") or [] if m["mountPath"] == "/registration"]
        assert registration, "the registrar sidecar mounts no /registration"
        argv.append(f"--plugin-registration-path={self._map_host_path(registration[0])}")
        self._registrar_offset = os.path.getsize(os.path.join(self.cluster.logs, "node-driver-registrar.log")) if self.registrar else 0
        self.registrar = HostProcess("node-driver-registrar", argv, self.cluster.logs, env=env).start()

    def _map_host_path(self, path):
        path = path.rstrip("/")
        for prefix, replacement in sorted(self.host_path_map.items(), key=lambda p: len(p[0]), reverse=True):
            prefix = prefix.rstrip("/")
            if path == prefix or path.startswith(prefix + "/"):
                return replacement.rstrip("/") + path[len(prefix):]
        return path

    def stop_driver(self, timeout=10.0, sig=signal.SIGTERM):
        if self.registrar:
            self.registrar.stop()
        return self.driver.stop(timeout, sig) if self.driver else None

    def kill_driver(self):
        return self.stop_driver(timeout=5, sig=signal.SIGKILL)

    def restart_driver(self, wait_registered=True):
        self.stop_driver()
        return self.start_driver(wait_registered=wait_registered)

    def wait_driver_registered(self, timeout=60):
        """The kubelet has registered the driver started last: the registrar logged kubelet's verdict
        (registered) since that start, and the node's CSINode lists the driver."""
        storage = self.cluster.storage

        def registered():
            assert self.driver.running, f"node plugin exited {self.driver.returncode}: {REDACT(self.driver.tail(15))}"
            if self.builtin_registrar:
                verdict = "registered with kubelet" in self.driver.log_since(self._driver_offset)
            else:
                log = self.registrar.log_since(self._registrar_offset)
                verdict = "plugin_registered:true" in log or "PluginRegistered:true" in log
            assert verdict, "no registration verdict from the kubelet yet"
            node = storage.read_csi_node(self.cluster.node_name)
            names = [d.name for d in node.spec.drivers or []]
            assert DRIVER_NAME in names, f"CSINode drivers {names}"
            return True

        eventually(registered, timeout, f"the kubelet to register {DRIVER_NAME} (CSINode)")

    def metrics(self, base=None):
        """{sample name with labels: value} from a /metrics endpoint (the node plugin's by default)."""
        text = requests.get((base or self.driver_metrics) + "/metrics", timeout=5).text
        samples = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                with contextlib.suppress(ValueError):
                    samples[name] = float(value)
        return samples

    # -- sync controller (part 2)

    def start_controller(self, name="controller-0", extra_args=()):
        """Starts one sync controller replica from the release's Deployment (controller.enabled)."""
        port = free_port()
        argv, env, service_account = self.host_command("Deployment", "controller", port)
        kubeconfig = self.cluster.token_kubeconfig(self.namespace, service_account, os.path.join(self.dir, f"{name}.kubeconfig"))
        env["POD_NAME"] = name
        process = HostProcess(name, argv + [f"--kubeconfig={kubeconfig}"] + list(extra_args), self.cluster.logs, env=env)
        self.controllers[name] = process.start()
        self.controller_metrics[name] = f"http://127.0.0.1:{port}"
        return process

    def stop_controller(self, name="controller-0", timeout=10.0, sig=signal.SIGTERM):
        return self.controllers[name].stop(timeout, sig)

    def stop_components(self):
        for process in list(self.controllers.values()) + [self.driver, self.registrar]:
            if process:
                process.stop()

    def processes(self):
        return [p for p in [self.driver, self.registrar, *self.controllers.values()] if p]


def deep_merge(base, overrides):
    result = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = deep_merge(result[key], value)
        else:
            result[key] = value
    return result


class capture_stderr:
    """Captures file descriptor 2 (where Go code in helm-python's library writes) into a file for the block."""

    def __init__(self, path):
        self.path = path
        self.text = ""

    def __enter__(self):
        import sys

        sys.stderr.flush()
        self.saved = os.dup(2)
        self.file = open(self.path, "w+b")
        os.dup2(self.file.fileno(), 2)
        return self

    def __exit__(self, *exc):
        os.dup2(self.saved, 2)
        os.close(self.saved)
        self.file.seek(0)
        self.text = self.file.read().decode("utf-8", "replace")
        self.file.close()
        return False
