"""Kubeflow v1 steps as Argo creates them, and the parts of a cluster the tests play themselves.

The tests play Argo's controller (it creates the Workflow and the step's pod through the API, as
Argo does), the kubelet (it moves a pod to Succeeded through pods/status) and Argo's executor (it
creates the WorkflowTaskResult named after the node id). Everything goes through the real API
server, so its validation, admission and RBAC apply to every object.
"""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path

from cluster import ApiError, Cluster, KubeClient, object_path, wait_until

PODS = Path(__file__).resolve().parents[1] / "data" / "pods"
WORKFLOW_LABEL = "workflows.argoproj.io/workflow"
NODE_ID = "workflows.argoproj.io/node-id"
COMPLETED = "workflows.argoproj.io/report-outputs-completed"
OUTPUTS = "workflows.argoproj.io/outputs"
CACHE_ID = "pipelines.kubeflow.org/cache_id"
CACHE_KEY = "pipelines.kubeflow.org/execution_cache_key"
REUSED = "pipelines.kubeflow.org/reused_from_cache"
ARGO = "argoproj.io/v1alpha1"


def executor_outputs(value: str = "0.93") -> dict:
    """What the step's executor reports: one parameter and one artifact, as KFP v1 declares them."""
    return {"parameters": [{"name": "train-accuracy", "value": value,
                            "valueFrom": {"path": "/tmp/outputs/accuracy/data"}}],
            "artifacts": [{"name": "train-model", "path": "/tmp/outputs/model/data",
                           "s3": {"key": "artifacts/run-1/train/train-model.tgz"}}],
            "exitCode": "0"}


def create_workflow(api: KubeClient, namespace: str, name: str) -> dict:
    """The Workflow a run's pods belong to (its uid is their owner; the garbage collector runs)."""
    return api.create({"apiVersion": ARGO, "kind": "Workflow",
                       "metadata": {"name": name, "namespace": namespace},
                       "spec": {"entrypoint": "train",
                                "templates": [{"name": "train", "container": {"image": "python:3.9"}}]}})


def restricted(pod: dict) -> dict:
    """The pod made to pass the `restricted` Pod Security Standard, as a careful user writes it."""
    pod = copy.deepcopy(pod)
    spec = pod["spec"]
    spec["securityContext"] = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    for container in spec.get("initContainers", []) + spec["containers"]:
        container["securityContext"] = {"allowPrivilegeEscalation": False,
                                        "capabilities": {"drop": ["ALL"]}}
    return pod


def with_limits(pod: dict) -> dict:
    """Every container with limits equal to its requests (what a quota on limits demands)."""
    pod = copy.deepcopy(pod)
    spec = pod["spec"]
    for container in spec.get("initContainers", []) + spec["containers"]:
        resources = container.setdefault("resources", {})
        requests = resources.setdefault("requests", {"cpu": "10m", "memory": "64Mi"})
        resources["limits"] = {k: v for k, v in requests.items() if k in ("cpu", "memory")}
    return pod


class Step:
    """One Kubeflow v1 step (a fixture of tests/data/pods) in one namespace, run after run."""

    def __init__(self, cluster: Cluster, namespace: str, fixture: str = "argo-3.6",
                 shape=lambda pod: pod):
        self.cluster, self.namespace, self.api = cluster, namespace, cluster.admin
        self.fixture = json.loads((PODS / f"{fixture}.json").read_text())
        self.shape = shape

    def pod_of_run(self, run: str, workflow: dict | None = None) -> dict:
        """The step's pod as Argo creates it for `run`: its own names, the same template."""
        pod = self.shape(copy.deepcopy(self.fixture))
        meta = pod["metadata"]
        meta.pop("creationTimestamp", None)
        meta["namespace"] = self.namespace
        meta["name"] = f"{run}-train-1727472585"
        meta["labels"][WORKFLOW_LABEL] = run
        meta["annotations"][NODE_ID] = f"{run}-1727472585"
        for owner in meta.get("ownerReferences", []):
            owner["name"] = run
            owner["uid"] = workflow["metadata"]["uid"] if workflow else owner["uid"]
        # The fixtures name the service account token volume as a kubelet-facing pod shows it;
        # the API server's ServiceAccount admission adds its own.
        pod["spec"]["volumes"] = [v for v in pod["spec"].get("volumes", [])
                                  if not v["name"].startswith("kube-api-access")]
        pod.pop("status", None)
        return pod

    def create(self, run: str, dry_run: bool = False, pod: dict | None = None) -> dict:
        """Creates the run's pod (given, or made with a new Workflow unless dry) through the API;
        returns the pod as stored."""
        if pod is None:
            workflow = None if dry_run else create_workflow(self.api, self.namespace, run)
            pod = self.pod_of_run(run, workflow)
        return self.api.create(pod, dry_run=dry_run)

    def pod_path(self, name: str, subresource: str | None = None) -> str:
        return object_path("v1", "Pod", self.namespace, name, subresource)

    def report_outputs(self, pod: dict, outputs: dict) -> dict:
        """What Argo's executor does when main has finished: its task result, final."""
        meta = pod["metadata"]
        workflow = self.api.get(object_path(ARGO, "Workflow", self.namespace, meta["labels"][WORKFLOW_LABEL]))
        result = self.api.create({
            "apiVersion": ARGO, "kind": "WorkflowTaskResult",
            "metadata": {"name": meta["annotations"][NODE_ID], "namespace": self.namespace,
                         "labels": {WORKFLOW_LABEL: meta["labels"][WORKFLOW_LABEL], COMPLETED: "false"},
                         "ownerReferences": [{"apiVersion": ARGO, "kind": "Workflow",
                                              "name": workflow["metadata"]["name"],
                                              "uid": workflow["metadata"]["uid"]}]}})
        path = object_path(ARGO, "WorkflowTaskResult", self.namespace, result["metadata"]["name"])
        return self.api.merge_patch(path, {"metadata": {"labels": {COMPLETED: "true"}}, "outputs": outputs})

    def succeed(self, pod: dict, exit_code: int = 0) -> dict:
        """What the kubelet reports when the pod's containers have run: Succeeded, main exit 0."""
        statuses = []
        for container in pod["spec"]["containers"]:
            statuses.append({
                "name": container["name"], "image": container["image"], "imageID": "", "ready": False,
                "restartCount": 0,
                "state": {"terminated": {"exitCode": exit_code, "reason": "Completed",
                                         "startedAt": "2026-11-22T08:00:00Z",
                                         "finishedAt": "2026-11-22T08:03:20Z"}}})
        return self.api.merge_patch(self.pod_path(pod["metadata"]["name"], "status"), {
            "status": {"phase": "Succeeded", "startTime": "2026-11-22T08:00:00Z",
                       "containerStatuses": statuses}})

    def cache_id(self, pod_name: str) -> str:
        return self.api.get(self.pod_path(pod_name))["metadata"].get("labels", {}).get(CACHE_ID, "")

    def run_and_record(self, run: str, outputs: dict | None = None, timeout: float = 60) -> tuple[dict, str]:
        """A run that misses, runs, reports its outputs and is recorded: the entry id."""
        pod = self.create(run)
        assert not is_echo(pod), f"{run} was expected to miss"
        assert pod["metadata"]["labels"].get(CACHE_ID) == "", pod["metadata"]
        self.report_outputs(pod, outputs or executor_outputs())
        self.succeed(pod)
        entry = wait_until(lambda: self.cache_id(pod["metadata"]["name"]), timeout,
                           f"the watcher to record {pod['metadata']['name']}", self.cluster.logs)
        return pod, entry

    def task_result(self, run_pod: dict) -> dict | None:
        name = run_pod["metadata"]["annotations"][NODE_ID]
        try:
            return self.api.get(object_path(ARGO, "WorkflowTaskResult", self.namespace, name))
        except ApiError as e:
            if e.status == 404:
                return None
            raise


def is_echo(pod: dict) -> bool:
    containers = pod["spec"]["containers"]
    return (len(containers) == 1 and containers[0]["name"] == "main"
            and containers[0].get("command", [""])[0] == "echo" and "initContainers" not in pod["spec"])


def recorded_outputs(cluster: Cluster, entry_id: str) -> str:
    """The outputs annotation value a hit of this entry restores, read from PostgreSQL."""
    result = subprocess.run(
        ["psql", "-h", str(cluster.postgres.socket_dir), "-U", "postgres", "-d", cluster.database, "-Atc",
         f'SELECT "ExecutionOutput" FROM execution_caches WHERE "ID" = {int(entry_id)}'],
        capture_output=True, text=True, check=True)
    return json.loads(result.stdout)[OUTPUTS]
