"""A real Kubernetes control plane with kcache in front of it, for the cluster tests.

Starts, all on 127.0.0.1 with free ports and in one temporary folder:
  - etcd and kube-apiserver built from their Go modules (build-programs.sh), with RBAC, a static
    token file (an admin and kcache's service account), PodSecurity, ResourceQuota and
    MutatingAdmissionWebhook admission;
  - kube-controller-manager with only the controllers the tests rely on (service accounts, quota
    status, namespace deletion, the garbage collector);
  - a throwaway PostgreSQL (unix socket only);
  - kcache's objects as `helm template charts/kcache` renders them: its ServiceAccount and RBAC,
    and its MutatingWebhookConfiguration with the chart's rules, failurePolicy and timeout, whose
    clientConfig points by url at the locally running cache-server with a fresh CA;
  - the real build/cmd/cache-server, as kcache's service account (a kubeconfig with its token), so
    it runs with exactly the chart's RBAC.

Nothing here pretends to be a kubelet or an Argo controller: the tests do that explicitly, through
the same API a kubelet or an executor would use.

`python3 tests/cluster/cluster.py` starts everything, prints how to reach it and waits for Ctrl-C.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable, Iterator

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
GO = os.environ.get("KCACHE_GO") or shutil.which("go") or "/usr/local/go/bin/go"
KCACHE_NAMESPACE = "kcache"
KCACHE_SERVICE_ACCOUNT = "kcache"
PG_BIN = Path("/usr/lib/postgresql/15/bin")


class ClusterError(RuntimeError):
    """A part of the cluster could not be started or did not answer: the tests fail, never skip."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], object], timeout: float, what: str,
               diagnose: Callable[[], str] | None = None, interval: float = 0.1):
    """Polls `predicate` until it returns something truthy; raises with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - the last error is reported on timeout
            last_error = e
        time.sleep(interval)
    detail = f" (last error: {last_error})" if last_error else ""
    extra = f"\n{diagnose()}" if diagnose else ""
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}{detail}{extra}")


def program_folder(wrapper: str) -> Path:
    """The folder with the wrapper's binaries, built now unless cached (build-programs.sh)."""
    result = subprocess.run(["bash", str(HERE / "build-programs.sh"), wrapper], capture_output=True,
                            text=True)
    if result.returncode != 0:
        raise ClusterError(f"building {wrapper} failed:\n{result.stderr[-4000:]}")
    last = result.stdout.strip().splitlines()[-1].split()
    return Path(last[1])


def module_dir(wrapper: str, module: str) -> Path:
    """Where a module the wrapper requires is unpacked in the Go module cache (downloads it)."""
    env = dict(os.environ, GOFLAGS="-mod=readonly", GOTOOLCHAIN=os.environ.get("GOTOOLCHAIN", "local"))
    result = subprocess.run([GO, "list", "-m", "-f", "{{.Dir}}", module], cwd=HERE / wrapper,
                            capture_output=True, text=True, env=env)
    if result.returncode != 0 or not result.stdout.strip():
        subprocess.run([GO, "mod", "download", module], cwd=HERE / wrapper, check=True, env=env)
        result = subprocess.run([GO, "list", "-m", "-f", "{{.Dir}}", module], cwd=HERE / wrapper,
                                capture_output=True, text=True, env=env, check=True)
    return Path(result.stdout.strip())


def helm_binary() -> Path:
    result = subprocess.run(["bash", str(REPO / "scripts" / "install-helm.sh")], capture_output=True,
                            text=True)
    if result.returncode != 0:
        raise ClusterError(f"installing helm failed:\n{result.stderr}")
    return Path(result.stdout.strip().splitlines()[-1]) / "helm" / "helm"


def cache_server_binary() -> Path:
    configured = os.environ.get("KCACHE_SERVER_BIN")
    path = Path(configured) if configured else REPO / "build" / "cmd" / "cache-server" / "cache-server"
    if not path.is_file():
        raise ClusterError(f"{path} is missing: bash scripts/build.sh release cache-server cachectl")
    return path


def openssl(*args: str) -> None:
    result = subprocess.run(["openssl", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise ClusterError(f"openssl {' '.join(args[:2])} failed: {result.stderr}")


class CertificateAuthority:
    """A CA made for one run, and serving certificates it signs (openssl)."""

    def __init__(self, folder: Path, name: str):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.cert = folder / f"{name}-ca.crt"
        self.key = folder / f"{name}-ca.key"
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}-ca",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                "-keyout", str(self.key), "-out", str(self.cert))

    def issue(self, name: str, sans: str = "IP:127.0.0.1,DNS:localhost") -> tuple[Path, Path]:
        cert, key, request = (self.folder / f"{name}.crt", self.folder / f"{name}.key",
                              self.folder / f"{name}.csr")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                "-addext", f"subjectAltName={sans}", "-keyout", str(key), "-out", str(request))
        openssl("x509", "-req", "-in", str(request), "-CA", str(self.cert), "-CAkey", str(self.key),
                "-CAcreateserial", "-days", "2", "-copy_extensions", "copy", "-out", str(cert))
        return cert, key


class Process:
    """A program of the cluster with its log file; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, name: str, argv: list[str], log: Path, env: dict[str, str] | None = None,
                 user: str | None = None):
        self.name, self.argv, self.log, self.env = name, argv, log, env
        prefix = ["runuser", "-u", user, "--"] if user and os.geteuid() == 0 else []
        self.log_file = open(log, "ab")
        self.popen = subprocess.Popen(prefix + argv, stdout=self.log_file, stderr=subprocess.STDOUT,
                                      env=env, start_new_session=True)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            text = self.log.read_text(errors="replace").splitlines()
            return f"--- last lines of {self.log} ---\n" + "\n".join(text[-lines:])
        return ""

    def send(self, sig: int) -> None:
        if self.alive():
            os.kill(self.popen.pid, sig)

    def stop(self, timeout: float = 20, sig: int = signal.SIGTERM) -> None:
        if self.alive():
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self.log_file.close()


class ApiError(RuntimeError):
    def __init__(self, status: int, body: str, method: str, path: str):
        super().__init__(f"{method} {path}: HTTP {status}: {body[:2000]}")
        self.status, self.body = status, body

    def json(self) -> dict:
        try:
            return json.loads(self.body)
        except ValueError:
            return {}


# Where the objects the tests touch live in the API (kind -> plural, namespaced).
RESOURCES = {
    "Namespace": ("namespaces", False),
    "ServiceAccount": ("serviceaccounts", True),
    "ClusterRole": ("clusterroles", False),
    "ClusterRoleBinding": ("clusterrolebindings", False),
    "Role": ("roles", True),
    "RoleBinding": ("rolebindings", True),
    "MutatingWebhookConfiguration": ("mutatingwebhookconfigurations", False),
    "CustomResourceDefinition": ("customresourcedefinitions", False),
    "ResourceQuota": ("resourcequotas", True),
    "LimitRange": ("limitranges", True),
    "Pod": ("pods", True),
    "ConfigMap": ("configmaps", True),
    "Lease": ("leases", True),
    "Workflow": ("workflows", True),
    "WorkflowTaskResult": ("workflowtaskresults", True),
    "WorkflowTemplate": ("workflowtemplates", True),
}


def object_path(api_version: str, kind: str, namespace: str | None = None, name: str | None = None,
                subresource: str | None = None) -> str:
    plural, namespaced = RESOURCES[kind]
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    if namespaced:
        if namespace is None:
            raise ValueError(f"{kind} is namespaced")
        base += f"/namespaces/{namespace}"
    path = f"{base}/{plural}"
    if name:
        path += f"/{name}"
    if subresource:
        path += f"/{subresource}"
    return path


class KubeClient:
    """Just enough of a Kubernetes API client: JSON over HTTPS with a bearer token."""

    def __init__(self, server: str, ca_file: Path, token: str):
        self.server, self.token = server, token
        self.context = ssl.create_default_context(cafile=str(ca_file))

    def request(self, method: str, path: str, body: object = None,
                content_type: str = "application/json", query: dict | None = None,
                timeout: float = 30, raw: bool = False):
        """The answer as JSON (or as text with raw=True); ApiError for any HTTP error status."""
        url = self.server + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=timeout) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as e:
            raise ApiError(e.code, e.read().decode(errors="replace"), method, path) from None
        if raw:
            return text
        return json.loads(text) if text else {}

    def get(self, path: str, **query) -> dict:
        return self.request("GET", path, query=query or None)

    def create(self, obj: dict, dry_run: bool = False, subresource_path: str | None = None) -> dict:
        meta = obj["metadata"]
        path = subresource_path or object_path(obj["apiVersion"], obj["kind"], meta.get("namespace"))
        return self.request("POST", path, obj, query={"dryRun": "All"} if dry_run else None)

    def merge_patch(self, path: str, patch: dict) -> dict:
        return self.request("PATCH", path, patch, content_type="application/merge-patch+json")

    def delete(self, path: str, **query) -> dict:
        return self.request("DELETE", path, query=query or None)

    def apply(self, obj: dict) -> dict:
        """Creates the object, or replaces it when it exists (keeping its resourceVersion)."""
        meta = obj["metadata"]
        try:
            return self.create(obj)
        except ApiError as e:
            if e.status != 409:
                raise
        path = object_path(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])
        current = self.get(path)
        obj = json.loads(json.dumps(obj))
        obj["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        return self.request("PUT", path, obj)

    def exists(self, path: str) -> bool:
        try:
            self.get(path)
            return True
        except ApiError as e:
            if e.status == 404:
                return False
            raise


class PostgreSQL:
    """A throwaway PostgreSQL 15 listening on a unix socket only."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.socket_dir = folder / "socket"
        self.data = folder / "data"
        self.socket_dir.mkdir(parents=True)
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_postgres:
            shutil.chown(folder, "postgres")
            shutil.chown(self.socket_dir, "postgres")
        self._run(PG_BIN / "initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--no-sync")
        self._run(PG_BIN / "pg_ctl", "-D", str(self.data), "-l", str(folder / "postgres.log"), "-w", "-t",
                  "60", "start", "-o", f"-c listen_addresses='' -k {self.socket_dir} -c fsync=off")
        self.port = 5432

    def _run(self, *argv) -> None:
        result = subprocess.run(self.as_postgres + [str(a) for a in argv], capture_output=True, text=True)
        if result.returncode != 0:
            log = self.folder / "postgres.log"
            extra = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise ClusterError(f"{argv[0]} failed: {result.stdout}{result.stderr}{extra}")

    def create_database(self, name: str) -> str:
        self._run("psql", "-h", str(self.socket_dir), "-U", "postgres", "-d", "postgres", "-qc",
                  f'CREATE DATABASE "{name}"')
        return name

    def stop(self) -> None:
        with contextlib.suppress(ClusterError):
            self._run(PG_BIN / "pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")


class Etcd:
    def __init__(self, binary: Path, folder: Path):
        self.client_port, peer_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.client_port}"
        peer = f"http://127.0.0.1:{peer_port}"
        self.process = Process("etcd", [
            str(binary), "--name", "kcache-test", "--data-dir", str(folder / "etcd"),
            "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"kcache-test={peer}", "--unsafe-no-fsync",
            "--log-level", "warn"], folder / "etcd.log")
        wait_until(lambda: self._health(), 60, "etcd to be healthy", self.process.tail)

    def _health(self) -> bool:
        if not self.process.alive():
            raise ClusterError("etcd exited\n" + self.process.tail())
        with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
            return json.load(r).get("health") == "true"

    def call(self, method: str, body: dict) -> dict:
        """etcd's v3 API through its JSON gateway (what etcdctl does over gRPC)."""
        request = urllib.request.Request(f"{self.url}/v3/{method}", data=json.dumps(body).encode(),
                                         method="POST")
        with urllib.request.urlopen(request, timeout=30) as r:
            return json.load(r)

    def revision(self) -> int:
        key = base64.b64encode(b"/registry/kcache-revision-probe").decode()
        return int(self.call("kv/range", {"key": key})["header"]["revision"])

    def compact(self, revision: int) -> None:
        self.call("kv/compaction", {"revision": str(revision), "physical": True})


def write_kubeconfig(path: Path, server: str, ca_file: Path, token_file: Path) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "test", "cluster": {"server": server, "certificate-authority": str(ca_file)}}],
        "users": [{"name": "test", "user": {"tokenFile": str(token_file)}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
    }))
    return path


class ApiServer:
    """kube-apiserver (and the flags it is started with, so a test can restart it)."""

    def __init__(self, binary: Path, folder: Path, etcd: Etcd, ca: CertificateAuthority):
        self.folder, self.binary = folder, binary
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        cert, key = ca.issue("kube-apiserver", "IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc")
        self.ca_file = ca.cert
        signing_key = folder / "service-account.key"
        openssl("genrsa", "-out", str(signing_key), "2048")
        self.admin_token = secrets.token_hex(24)
        self.kcache_token = secrets.token_hex(24)
        tokens = folder / "tokens.csv"
        tokens.write_text(
            f'{self.admin_token},kcache-test-admin,admin-uid,"system:masters"\n'
            f'{self.kcache_token},system:serviceaccount:{KCACHE_NAMESPACE}:{KCACHE_SERVICE_ACCOUNT},'
            f'kcache-sa-uid,"system:serviceaccounts,system:serviceaccounts:{KCACHE_NAMESPACE}"\n')
        tokens.chmod(0o600)
        self.admin_token_file = folder / "admin.token"
        self.admin_token_file.write_text(self.admin_token)
        self.kcache_token_file = folder / "kcache.token"
        self.kcache_token_file.write_text(self.kcache_token)
        for f in (self.admin_token_file, self.kcache_token_file):
            f.chmod(0o600)
        self.argv = [
            str(binary), "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            f"--secure-port={self.port}", f"--etcd-servers={etcd.url}",
            f"--tls-cert-file={cert}", f"--tls-private-key-file={key}",
            f"--token-auth-file={tokens}", "--authorization-mode=RBAC",
            "--enable-admission-plugins=NamespaceLifecycle,ServiceAccount,LimitRanger,PodSecurity,"
            "MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ResourceQuota",
            f"--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={signing_key}",
            f"--service-account-signing-key-file={signing_key}",
            "--service-cluster-ip-range=10.96.0.0/24", "--allow-privileged=false",
            # Loopback addresses cannot back the kubernetes Service; nothing here needs it.
            "--endpoint-reconciler-type=none", "--profiling=false", "--v=1",
        ]
        self.admin = KubeClient(self.url, self.ca_file, self.admin_token)
        self.process: Process | None = None
        self.start()

    def start(self) -> None:
        self.process = Process("kube-apiserver", self.argv, self.folder / "kube-apiserver.log")
        wait_until(self._ready, 180, "kube-apiserver /readyz", self.process.tail, interval=0.5)

    def _ready(self) -> bool:
        if not self.process.alive():
            raise ClusterError("kube-apiserver exited\n" + self.process.tail())
        with contextlib.suppress(ValueError):  # /readyz answers "ok", not JSON
            self.admin.request("GET", "/readyz", timeout=5)
        return True

    def another_instance(self) -> tuple[int, Process]:
        """A second kube-apiserver on the same etcd (as in a highly available control plane), with
        its own watch cache, which starts from the current version: its port and process."""
        port = free_port()
        argv = [f"--secure-port={port}" if a.startswith("--secure-port=") else a for a in self.argv]
        process = Process("kube-apiserver", argv, self.folder / f"kube-apiserver-{port}.log")
        client = KubeClient(f"https://127.0.0.1:{port}", self.ca_file, self.admin_token)

        def ready() -> bool:
            if not process.alive():
                raise ClusterError("the second kube-apiserver exited\n" + process.tail())
            with contextlib.suppress(ValueError):
                client.request("GET", "/readyz", timeout=5)
            return True

        wait_until(ready, 180, "the second kube-apiserver /readyz", process.tail, interval=0.5)
        return port, process

    def kubeconfig(self, path: Path, token_file: Path) -> Path:
        return write_kubeconfig(path, self.url, self.ca_file, token_file)


class TcpProxy:
    """A TCP relay between kcache's replicas and kube-apiserver, so a test can cut their
    connections (what a load balancer or a network blip does) while the API server runs on."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted = 0
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._down = threading.Event()
        self._closed = False
        threading.Thread(target=self._accept, name="tcp-proxy", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self._down.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()  # the API server is down: the client sees a refused connection
                continue
            with self._lock:
                self.accepted += 1
                self._sockets |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for s in (source, sink):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        with self._lock:
            self._sockets -= {source, sink}

    def cut(self) -> int:
        """Ends every relayed connection now; returns how many there were."""
        with self._lock:
            sockets = list(self._sockets)
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        return len(sockets) // 2

    @contextlib.contextmanager
    def down(self) -> Iterator[None]:
        """Cuts every connection and refuses new ones until the block ends."""
        self._down.set()
        self.cut()
        try:
            yield
        finally:
            self._down.clear()

    def close(self) -> None:
        self._closed = True
        self.listener.close()
        self.cut()


class ControllerManager:
    CONTROLLERS = ("serviceaccount-controller,resourcequota-controller,namespace-controller,"
                   "garbage-collector-controller")

    def __init__(self, binary: Path, folder: Path, api: ApiServer):
        kubeconfig = api.kubeconfig(folder / "controller-manager.kubeconfig", api.admin_token_file)
        (folder / "kcm-certs").mkdir()
        self.process = Process("kube-controller-manager", [
            str(binary), f"--kubeconfig={kubeconfig}", "--leader-elect=false",
            f"--controllers={self.CONTROLLERS}", "--bind-address=127.0.0.1",
            f"--secure-port={free_port()}", f"--cert-dir={folder / 'kcm-certs'}",
            f"--authentication-kubeconfig={kubeconfig}", f"--authorization-kubeconfig={kubeconfig}",
            "--use-service-account-credentials=false", "--concurrent-gc-syncs=5", "--v=1",
        ], folder / "kube-controller-manager.log")


class CacheServer:
    """The real cache-server, as kcache's service account, one replica (POD_NAME = identity)."""

    def __init__(self, cluster: "Cluster", identity: str, webhook_port: int,
                 extra_args: list[str] | None = None, env: dict[str, str] | None = None,
                 log_level: str = "debug"):
        self.cluster, self.identity = cluster, identity
        self.webhook_port, self.http_port = webhook_port, free_port()
        self.log = cluster.folder / f"cache-server-{identity}.log"
        args = [str(cluster.server_binary)] + cluster.chart_args + [
            "--listen-address=127.0.0.1", f"--listen-port={self.webhook_port}",
            f"--http-port={self.http_port}", f"--tls-dir={cluster.folder / 'webhook-tls'}",
            "--tls-cert-filename=tls.crt", "--tls-key-filename=tls.key",
            f"--db-host={cluster.postgres.socket_dir}", f"--db-port={cluster.postgres.port}",
            "--db-user=postgres", f"--db-name={cluster.database}",
            f"--kubeconfig={cluster.kcache_kubeconfig}", f"--log-level={log_level}", "--log-format=text",
        ] + (extra_args or [])
        environment = dict(os.environ)
        environment.update(cluster.chart_env)
        environment.update({"POD_NAME": identity, "POD_NAMESPACE": KCACHE_NAMESPACE})
        environment.update(env or {})
        self.process = Process(f"cache-server {identity}", args, self.log, env=environment)
        wait_until(self._ready, 60, f"cache-server {identity} /readyz", self.process.tail)

    def _ready(self) -> bool:
        if not self.process.alive():
            raise ClusterError(f"cache-server {self.identity} exited\n" + self.process.tail())
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/readyz", timeout=2) as r:
            return r.status == 200

    def metrics(self) -> dict[str, float]:
        """The Prometheus samples, as 'name{labels}' -> value."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/metrics", timeout=5) as r:
            text = r.read().decode()
        samples = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        return samples

    def metric(self, name: str) -> float:
        return self.metrics().get(name, 0.0)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        self.process.stop(sig=sig)


ARGO_LINES = {
    "v4": ("argo-v4", "github.com/argoproj/argo-workflows/v4"),
    "v3": ("argo-v3", "github.com/argoproj/argo-workflows/v3"),
}
ARGO_NAMESPACE = "argo"


class ArgoController:
    """Argo's real workflow-controller of one line, with that line's CRDs, as the admin (Argo's own
    RBAC is not what is tested). Its pods never run: the tests play their kubelet and executor.
    One at a time: the controller's health port (6060) is fixed."""

    CONFIG = {
        # Where the executor would store artifacts; never contacted here, only used for keys.
        "artifactRepository": yaml.safe_dump({
            "archiveLogs": False,
            "s3": {"bucket": "mlpipeline", "endpoint": "minio-service.kubeflow:9000", "insecure": True,
                   "useSDKCreds": True, "keyFormat": "artifacts/{{workflow.name}}/{{pod.name}}"}}),
        "metricsConfig": yaml.safe_dump({"enabled": False}),
        "telemetryConfig": yaml.safe_dump({"enabled": False}),
    }

    def __init__(self, cluster: "Cluster", line: str):
        wrapper, module = ARGO_LINES[line]
        self.line = line
        binary = program_folder(wrapper) / "workflow-controller"
        cluster.install_argo_crds(wrapper, module)
        cluster.admin.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ARGO_NAMESPACE}})
        cluster.admin.apply({"apiVersion": "v1", "kind": "ConfigMap",
                             "metadata": {"name": "workflow-controller-configmap", "namespace": ARGO_NAMESPACE},
                             "data": self.CONFIG})
        kubeconfig = cluster.api.kubeconfig(cluster.folder / "argo.kubeconfig", cluster.api.admin_token_file)
        self.process = Process(f"workflow-controller {line}", [
            str(binary), f"--kubeconfig={kubeconfig}", f"--namespace={ARGO_NAMESPACE}",
            "--executor-image=quay.io/argoproj/argoexec:latest", "--loglevel=debug", "--workflow-workers=4",
        ], cluster.folder / f"workflow-controller-{line}.log",
            env=dict(os.environ, LEADER_ELECTION_DISABLE="true"))

        def healthy() -> bool:
            if not self.process.alive():
                raise ClusterError(f"workflow-controller {line} exited\n" + self.process.tail())
            with urllib.request.urlopen("http://127.0.0.1:6060/healthz", timeout=2) as r:
                return r.status == 200

        wait_until(healthy, 120, f"workflow-controller {line} /healthz", self.process.tail, interval=0.5)

    def stop(self) -> None:
        self.process.stop()


def render_chart(helm: Path, values: dict[str, str]) -> list[dict]:
    argv = [str(helm), "template", "kcache", str(REPO / "charts" / "kcache"), "--namespace", KCACHE_NAMESPACE]
    for key, value in values.items():
        argv += ["--set", f"{key}={value}"]
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        raise ClusterError(f"helm template failed: {result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


class Cluster:
    """Everything above, started in order and stopped in reverse order."""

    def __init__(self, folder: Path | None = None, chart_values: dict[str, str] | None = None):
        self.folder = Path(folder or tempfile.mkdtemp(prefix="kcache-cluster-", dir="/tmp"))
        self.folder.chmod(0o755)  # PostgreSQL runs as the postgres user beneath it
        self._stack = contextlib.ExitStack()
        self.replicas: list[CacheServer] = []
        try:
            self._start(chart_values or {})
        except BaseException:
            self.close()
            raise

    def _start(self, chart_values: dict[str, str]) -> None:
        kube_bin = program_folder("kubernetes")
        etcd_bin = program_folder("etcd") / "etcd"
        self.server_binary = cache_server_binary()
        ca = CertificateAuthority(self.folder / "pki", "cluster")
        self.etcd = Etcd(etcd_bin, self.folder)
        self._stack.callback(self.etcd.process.stop)
        self.api = ApiServer(kube_bin / "kube-apiserver", self.folder, self.etcd, ca)
        self._stack.callback(lambda: self.api.process.stop())
        self.admin = self.api.admin
        self.controllers = ControllerManager(kube_bin / "kube-controller-manager", self.folder, self.api)
        self._stack.callback(self.controllers.process.stop)
        self.postgres = PostgreSQL(self.folder / "postgres")
        self._stack.callback(self.postgres.stop)
        self.database = self.postgres.create_database("cachedb")

        # kcache's objects as the chart renders them, with the webhook pointed at this machine.
        # test_argo.py's offloaded case needs the templates Argo offloads to ConfigMaps: reading them
        # is opt-in, and the chart then grants configmaps get.
        values = {"database.external.host": "127.0.0.1", "database.external.passwordSecret.name": "unused",
                  "watch.allNamespaces": "true", "server.readOffloadedTemplates": "true"}
        values.update(chart_values)
        self.rendered = render_chart(helm_binary(), values)
        webhook_ca = CertificateAuthority(self.folder / "webhook-pki", "kcache-webhook")
        tls = self.folder / "webhook-tls"
        tls.mkdir()
        cert, key = webhook_ca.issue("kcache-webhook")
        shutil.copy(cert, tls / "tls.crt")
        shutil.copy(key, tls / "tls.key")
        self.webhook_port = free_port()
        self.admin.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": KCACHE_NAMESPACE}})
        self.webhook_configuration = None
        for obj in self.rendered:
            kind = obj["kind"]
            if kind in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"):
                self.admin.apply(obj)
            elif kind == "MutatingWebhookConfiguration":
                for hook in obj["webhooks"]:
                    hook["clientConfig"] = {
                        "url": f"https://127.0.0.1:{self.webhook_port}/mutate",
                        "caBundle": base64.b64encode(webhook_ca.cert.read_bytes()).decode()}
                self.webhook_configuration = obj
            elif kind == "Deployment":
                self._read_deployment(obj)
        if self.webhook_configuration is None:
            raise ClusterError("the chart rendered no MutatingWebhookConfiguration")
        self.proxy = TcpProxy(self.api.port)
        self._stack.callback(self.proxy.close)
        self.kcache_kubeconfig = write_kubeconfig(self.folder / "kcache.kubeconfig",
                                                  f"https://127.0.0.1:{self.proxy.port}", self.api.ca_file,
                                                  self.api.kcache_token_file)
        self.kcache = KubeClient(self.api.url, self.api.ca_file, self.api.kcache_token)
        self.install_argo_crds("argo-v4", "github.com/argoproj/argo-workflows/v4")
        self.start_replica("kcache-0", serves_webhook=True)
        self.admin.apply(self.webhook_configuration)
        self._stack.callback(self._stop_replicas)

    def _read_deployment(self, deployment: dict) -> None:
        """The chart's cache-server arguments and plain environment, less what is local here."""
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        # The admission stamp secret file is mounted from a Secret in a pod; here the replicas share
        # the secret cache-server keeps in the database they share.
        local = ("--listen-port", "--http-port", "--tls-dir", "--tls-cert-filename", "--tls-key-filename",
                 "--db-", "--log-format", "--log-level", "--stamp-secret-file", "--previous-stamp-secret-file")
        self.chart_args = [a for a in container.get("args", []) if not a.startswith(local)]
        self.chart_env = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}

    def install_argo_crds(self, wrapper: str, module: str) -> None:
        folder = module_dir(wrapper, module) / "manifests" / "base" / "crds" / "minimal"
        files = sorted(folder.glob("*.yaml"))
        if not files:
            raise ClusterError(f"no CRDs in {folder}")
        names = []
        for file in files:
            for crd in yaml.safe_load_all(file.read_text()):
                if crd and crd.get("kind") == "CustomResourceDefinition":
                    self.admin.apply(crd)
                    names.append(crd["metadata"]["name"])
        path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"

        def established(name: str) -> bool:
            conditions = self.admin.get(path + name).get("status", {}).get("conditions", [])
            return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

        for name in names:
            wait_until(lambda: established(name), 60, f"CRD {name} to be established")
        wait_until(lambda: self.admin.get("/apis/argoproj.io/v1alpha1"), 30, "argoproj.io/v1alpha1 to be served")

    def start_replica(self, identity: str, serves_webhook: bool = False, **kwargs) -> CacheServer:
        """A cache-server replica; the webhook configuration points at the one that serves_webhook."""
        port = self.webhook_port if serves_webhook else free_port()
        replica = CacheServer(self, identity, port, **kwargs)
        self.replicas.append(replica)
        return replica

    def _stop_replicas(self) -> None:
        for replica in self.replicas:
            replica.stop()

    def create_namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        self.admin.apply({"apiVersion": "v1", "kind": "Namespace",
                          "metadata": {"name": name, "labels": labels or {}}})
        # Kubeflow runs its steps as pipeline-runner, which its profile controller creates.
        self.admin.apply({"apiVersion": "v1", "kind": "ServiceAccount",
                          "metadata": {"name": "pipeline-runner", "namespace": name}})
        # Argo's own pods name the namespace's default ServiceAccount, which the controller creates.
        wait_until(lambda: self.admin.exists(f"/api/v1/namespaces/{name}/serviceaccounts/default"), 60,
                   f"the default ServiceAccount of {name}")

    def logs(self) -> str:
        return "\n".join(p.process.tail(60) for p in self.replicas)

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def main() -> int:
    cluster = Cluster()
    try:
        kubeconfig = cluster.api.kubeconfig(cluster.folder / "admin.kubeconfig", cluster.api.admin_token_file)
        print(f"kube-apiserver {cluster.api.url}; admin kubeconfig {kubeconfig}")
        print(f"cache-server webhook https://127.0.0.1:{cluster.webhook_port}/mutate, "
              f"metrics http://127.0.0.1:{cluster.replicas[0].http_port}/metrics")
        print(f"logs in {cluster.folder}; Ctrl-C stops everything")
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        cluster.close()
        shutil.rmtree(cluster.folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    sys.exit(main())
