"""What the measurement scripts of issue #25 (benchmarks/node_footprint.py, benchmarks/twenty_nodes.py) share: the
repository's paths and the cluster harness of Tests/cluster on the import path, a memory cgroup per measured
process, the page cache dropped, a process's RSS, upstream's binaries, and what upstream's Azure provider needs to
reach our Key Vault emulator by Azure's real names: a TLS proxy on <loopback address>:443 and a private /etc/hosts.

Importing this module puts Tests/cluster first on sys.path, so that `import harness` (and `workloads`, `expected`,
`conftest`) works after it. Everything here needs root (cgroups, drop_caches, port 443, mount namespaces).
"""
import asyncio
import contextlib
import errno
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "Tests", "cluster"))

import harness  # noqa: E402

MIB = 1024 * 1024
MEMORY_CGROUP_V1 = "/sys/fs/cgroup/memory"
ENTRA_HOST = "login.microsoftonline.com"
VAULT_HOST = f"{harness.VAULT}.vault.azure.net"
# The names upstream's Azure provider dials (MSAL's instance discovery, the vault), both served by the TLS proxy.
AZURE_NAMES = [ENTRA_HOST, VAULT_HOST]


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --------------------------------------------------------------------------------------------------------------
# Memory and CPU of host processes


class MemoryGroup:
    """A memory cgroup (cgroup v1 memory controller, or v2) for one process, which `wrap` starts inside it, so
    every page the process touches is charged there. `name` is the group's directory; a group left under that
    name is emptied (its processes killed) and replaced."""

    def __init__(self, name):
        self.v2 = not os.path.isdir(MEMORY_CGROUP_V1)
        self.path = os.path.join("/sys/fs/cgroup" if self.v2 else MEMORY_CGROUP_V1, name)
        if os.path.isdir(self.path):
            self.remove()
        os.mkdir(self.path)

    def wrap(self, argv):
        """`argv` started from a shell that first moves itself into this group."""
        return ["/bin/sh", "-c", f'echo $$ > {self.path}/cgroup.procs && exec "$@"', "sh", *argv]

    def _stat(self):
        with open(os.path.join(self.path, "memory.stat")) as file:
            return {k: int(v) for k, v in (line.split() for line in file)}

    def composition(self):
        """What the charge consists of, in bytes: anonymous memory, active file pages (mostly the executable's
        pages it touched), mapped file pages, and shmem (tmpfs pages it wrote: the volumes' files)."""
        stat = self._stat()
        if self.v2:
            return {"anon": stat.get("anon", 0), "active_file": stat.get("active_file", 0),
                    "mapped_file": stat.get("file_mapped", 0), "shmem": stat.get("shmem", 0)}
        return {"anon": stat.get("total_rss", 0), "active_file": stat.get("total_active_file", 0),
                "mapped_file": stat.get("total_mapped_file", 0), "shmem": stat.get("total_shmem", 0)}

    def working_set(self):
        """(working set, usage) in bytes: usage minus inactive file pages, as kubelet computes it."""
        stat = self._stat()
        if self.v2:
            with open(os.path.join(self.path, "memory.current")) as file:
                usage = int(file.read())
            inactive = stat.get("inactive_file", 0)
        else:
            with open(os.path.join(self.path, "memory.usage_in_bytes")) as file:
                usage = int(file.read())
            inactive = stat.get("total_inactive_file", 0)
        return max(0, usage - inactive), usage

    def remove(self):
        """Kills what is left in the group and removes it (says so on stderr when it cannot within 10 s)."""
        with contextlib.suppress(FileNotFoundError):
            with open(os.path.join(self.path, "cgroup.procs")) as file:
                for pid in [int(p) for p in file.read().split()]:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
        for _ in range(100):
            try:
                os.rmdir(self.path)
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.1)
        print(f"could not remove {self.path}", file=sys.stderr)


def drop_caches():
    subprocess.run(["sync"], check=False)
    with open("/proc/sys/vm/drop_caches", "w") as file:
        file.write("3\n")


def rss(pid):
    """The process's resident set in bytes (0 once it is gone)."""
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        with open(f"/proc/{pid}/status") as file:
            for line in file:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    return 0


# --------------------------------------------------------------------------------------------------------------
# Upstream's node plugin and its way to the emulator


def upstream_dir():
    """The directory of upstream's binaries, as ../shared/upstream/install.sh installs them (its last line)."""
    install = os.path.join(REPO, "..", "shared", "upstream", "install.sh")
    return subprocess.run([install], capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]


def private_hosts_file(path, address, names):
    """A copy of /etc/hosts with `names` on `address`, for processes that bind-mount it over /etc/hosts in a
    mount namespace of their own (the host's /etc/hosts is never changed)."""
    with open("/etc/hosts") as file:
        # Without any line naming them already (another bench may have added its own for the run).
        lines = [line for line in file if not any(name in line.split("#")[0].split() for name in names)]
    with open(path, "w") as file:
        file.write("".join(lines).rstrip("\n") + f"\n{address} {' '.join(names)}\n")
    return path


def with_private_hosts(hosts, argv):
    """`argv` in a private mount namespace where `hosts` is /etc/hosts (no mount it makes reaches the host: only
    for processes that mount nothing, as upstream's provider)."""
    return ["unshare", "-m", "--propagation", "private", "/bin/sh", "-c", f'mount --bind {hosts} /etc/hosts && exec "$@"', "sh", *argv]


def wait_for_port_free(address, port, patience):
    """Waits (up to `patience` s) until `address`:`port` can be bound: another bench may hold it."""
    deadline = time.monotonic() + patience
    announced = False
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((address, port))
                return
            except OSError as error:
                if error.errno != errno.EADDRINUSE:
                    raise
        if time.monotonic() > deadline:
            raise SystemExit(f"{address}:{port} stayed busy for {patience} s")
        if not announced:
            log(f"{address}:{port} is held by another process (another bench?); waiting up to {patience} s")
            announced = True
        time.sleep(10)


class TLSProxy:
    """`address`:443 answering TLS as the Azure names (`cert`, `key`), every connection forwarded byte for byte
    over TLS to the emulator on 127.0.0.1:`target_port` (trusted through `target_ca`): the Host header reaches it
    unchanged. Serves from a thread of its own between `start()` and `stop()`; `connections` counts the
    connections accepted."""

    def __init__(self, address, cert, key, target_port, target_ca, port=443):
        self.address = address
        self.port = port
        self.target_port = target_port
        self.server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.server_context.load_cert_chain(cert, key)
        self.server_context.set_alpn_protocols(["http/1.1"])
        self.client_context = ssl.create_default_context(cafile=target_ca)
        self.client_context.set_alpn_protocols(["http/1.1"])
        self.loop = None
        self.thread = None
        self.connections = 0
        self.errors = 0
        self.tasks = set()

    async def _pump(self, reader, writer):
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except Exception:
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _handle(self, reader, writer):
        # A strong reference while the connection lasts: the loop keeps only weak ones to tasks.
        task = asyncio.current_task()
        self.tasks.add(task)
        try:
            await self._relay(reader, writer)
        finally:
            self.tasks.discard(task)

    async def _relay(self, reader, writer):
        self.connections += 1
        try:
            target_reader, target_writer = await asyncio.open_connection(
                "127.0.0.1", self.target_port, ssl=self.client_context, server_hostname="localhost")
        except Exception:
            self.errors += 1
            writer.close()
            return
        await asyncio.gather(self._pump(reader, target_writer), self._pump(target_reader, writer))

    def start(self):
        ready = threading.Event()
        failure = []

        def serve():
            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)
            try:
                self.server = self.loop.run_until_complete(asyncio.start_server(
                    self._handle, self.address, self.port, ssl=self.server_context, reuse_address=True, backlog=512))
            except Exception as error:
                failure.append(error)
                ready.set()
                return
            ready.set()
            self.loop.run_forever()
            self.server.close()
            with contextlib.suppress(Exception):
                self.loop.run_until_complete(self.server.wait_closed())

        self.thread = threading.Thread(target=serve, name="tls-proxy", daemon=True)
        self.thread.start()
        ready.wait(30)
        if failure:
            raise failure[0]
        return self

    def stop(self):
        if self.loop is not None and self.thread is not None and self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
