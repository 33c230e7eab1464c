"""What users feel: the latency of a pod create through a real kube-apiserver, with kcache's webhook
(a miss and a hit) against no webhook and against a webhook answering a fixed review (nginx).

    python3 bench/cluster/pod_create_bench.py [--pods N]

Starts the control plane of tests/cluster (cluster.py: etcd, kube-apiserver, kube-controller-
manager, PostgreSQL, the chart's objects and the real cache-server), then, for each mode, creates
Kubeflow v1 step pods (tests/data/pods/argo-3.5.json: outputs delivered by annotation, so a hit
makes no API call of its own) from 1 and from 16 concurrent creators, each on its own keep-alive
HTTPS connection, and prints p50 and p99 of the create's round trip in milliseconds:

  none      the pod has no cache_enabled label: no webhook is called
  fixed     a second webhook configuration sends it to nginx, which answers every review with the
            same bytes. The API server then finds the answer's uid is not the request's, logs the
            call as failed and admits the pod unchanged (failurePolicy Ignore): the baseline is the
            round trip to a webhook that does no work
  miss      kcache computes the key of a template it has never seen and misses
  hit       kcache serves the step from the cache and rewrites the pod

Everything runs on this machine's 2 cores at once (API server, etcd, webhook, PostgreSQL and the
Python creators), so the absolute figures include their contention; the modes run back to back on
the same cluster, and the load average is printed with each.
"""

from __future__ import annotations

import argparse
import copy
import http.client
import json
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "cluster"))

from cluster import Cluster, free_port, wait_until  # noqa: E402
from steps import Step, is_echo  # noqa: E402

CREATORS = (1, 16)


class Nginx:
    """nginx answering every request with one fixed AdmissionReview over TLS."""

    def __init__(self, folder: Path, cert: Path, key: Path):
        binary = next((b for b in ("/usr/sbin/nginx", "/usr/bin/nginx") if Path(b).exists()), None)
        if binary is None:
            raise RuntimeError("nginx is missing (Debian's nginx-light, scripts/packages.txt)")
        folder.mkdir(parents=True)
        (folder / "temp").mkdir()
        self.port = free_port()
        answer = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                             "response": {"uid": "fixed", "allowed": True}})
        temp = folder / "temp"
        (folder / "nginx.conf").write_text(f"""user root;
daemon off;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {temp}; proxy_temp_path {temp}; fastcgi_temp_path {temp};
  uwsgi_temp_path {temp}; scgi_temp_path {temp};
  keepalive_requests 1000000; client_max_body_size 8m;
  server {{
    listen 127.0.0.1:{self.port} ssl;
    ssl_certificate {cert}; ssl_certificate_key {key}; ssl_protocols TLSv1.2 TLSv1.3;
    location / {{ default_type application/json; return 200 '{answer}'; }}
  }}
}}
""")
        self.process = subprocess.Popen([binary, "-c", str(folder / "nginx.conf"), "-p", str(folder)])
        wait_until(lambda: self._answers(), 20, "nginx to listen")

    def _answers(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1):
            return True

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


class Creator(threading.Thread):
    """Creates its pods one after another on one keep-alive connection; keeps each round trip."""

    def __init__(self, cluster: Cluster, namespace: str, pods: list[dict], start: threading.Event):
        super().__init__(daemon=True)
        self.cluster, self.namespace, self.pods, self.start_signal = cluster, namespace, pods, start
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.results: list[dict] = []

    def run(self) -> None:
        context = ssl.create_default_context(cafile=str(self.cluster.api.ca_file))
        connection = http.client.HTTPSConnection("127.0.0.1", self.cluster.api.port, context=context, timeout=30)
        headers = {"Authorization": f"Bearer {self.cluster.api.admin_token}",
                   "Content-Type": "application/json", "Accept": "application/json"}
        path = f"/api/v1/namespaces/{self.namespace}/pods"
        self.start_signal.wait()
        for pod in self.pods:
            body = json.dumps(pod)
            started = time.perf_counter()
            connection.request("POST", path, body, headers)
            response = connection.getresponse()
            text = response.read()
            self.latencies.append((time.perf_counter() - started) * 1000)
            if response.status != 201:
                self.errors.append(f"{response.status}: {text[:300]!r}")
            else:
                self.results.append(json.loads(text))
        connection.close()


def measure(cluster: Cluster, namespace: str, pods: list[dict], creators: int) -> tuple[list[float], list[dict]]:
    start = threading.Event()
    share = len(pods) // creators
    threads = [Creator(cluster, namespace, pods[i * share:(i + 1) * share], start) for i in range(creators)]
    for t in threads:
        t.start()
    start.set()
    for t in threads:
        t.join()
    errors = [e for t in threads for e in t.errors]
    if errors:
        raise RuntimeError(f"{len(errors)} creates failed, first: {errors[0]}")
    return [v for t in threads for v in t.latencies], [r for t in threads for r in t.results]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pods", type=int, default=320, help="pods per mode and creator count (a multiple of 16)")
    args = parser.parse_args()
    cluster = Cluster()
    nginx = None
    try:
        # nginx serves the webhook certificate cache-server uses; a second registration sends pods
        # labelled kcache.test/baseline=true to it.
        tls = cluster.folder / "webhook-tls"
        nginx = Nginx(cluster.folder / "nginx", tls / "tls.crt", tls / "tls.key")
        fixed = copy.deepcopy(cluster.webhook_configuration)
        fixed["metadata"]["name"] = "fixed-answer"
        hook = fixed["webhooks"][0]
        hook["name"] = "fixed.kcache.test"
        hook["clientConfig"]["url"] = f"https://127.0.0.1:{nginx.port}/mutate"
        hook["objectSelector"] = {"matchLabels": {"kcache.test/baseline": "true"}}
        hook["sideEffects"] = "None"
        cluster.admin.apply(fixed)

        modes = {}
        for mode in ("none", "fixed", "miss", "hit"):
            cluster.create_namespace(f"bench-{mode}")
            modes[mode] = Step(cluster, f"bench-{mode}", fixture="argo-3.5")
        modes["hit"].run_and_record("recorded")

        def pods_for(mode: str, round_name: str, count: int) -> list[dict]:
            step = modes[mode]
            made = []
            for i in range(count):
                pod = step.pod_of_run(f"{round_name}-{i}")
                labels = pod["metadata"]["labels"]
                if mode in ("none", "fixed"):
                    del labels["pipelines.kubeflow.org/cache_enabled"]
                if mode == "fixed":
                    labels["kcache.test/baseline"] = "true"
                if mode == "miss":  # a template never seen: a new key each time
                    for container in pod["spec"]["containers"]:
                        for variable in container.get("env", []):
                            if variable["name"] == "ARGO_TEMPLATE":
                                template = json.loads(variable["value"])
                                template["container"]["args"] = [f"round {round_name} pod {i}"]
                                variable["value"] = json.dumps(template)
                made.append(pod)
            return made

        print(f"kube-apiserver {cluster.admin.get('/version')['gitVersion']}, {args.pods} pods per row")
        print(f"{'mode':6} {'creators':>8} {'p50 ms':>8} {'p99 ms':>8} {'pods/s':>8}  load average")
        for creators in CREATORS:
            for mode in modes:
                measure(cluster, f"bench-{mode}", pods_for(mode, f"warm{creators}", 16), min(creators, 16))
                pods = pods_for(mode, f"c{creators}", args.pods)
                started = time.perf_counter()
                latencies, created = measure(cluster, f"bench-{mode}", pods, creators)
                elapsed = time.perf_counter() - started
                echoes = sum(is_echo(p) for p in created)
                expected = len(created) if mode == "hit" else 0
                if echoes != expected:
                    raise RuntimeError(f"{mode}: {echoes} of {len(created)} pods were rewritten, expected {expected}")
                load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
                print(f"{mode:6} {creators:8} {percentile(latencies, 0.5):8.2f} {percentile(latencies, 0.99):8.2f} "
                      f"{len(latencies) / elapsed:8.1f}  {load}", flush=True)
    finally:
        if nginx:
            nginx.stop()
        cluster.close()
        shutil.rmtree(cluster.folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
