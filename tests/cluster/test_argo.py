"""A real Argo workflow-controller on each line Kubeflow ships (scenario 4 of the cluster tests).

A two-step pipeline as Kubeflow Pipelines v1 compiles it: `produce` writes an output parameter and
an output artifact, `consume` takes both as inputs. Run 1 misses and is recorded; in run 2
`produce` is served from the cache, and it is Argo's own controller that must mark the node
Succeeded with the replayed outputs, hand the same parameter value and artifact key to `consume`,
and finish the workflow, also when the step's template is large enough for Argo to offload it to
a ConfigMap; the controller then deletes the task result kcache replayed, as it deletes
its executors' own.

The controller's pods never run: the test plays the kubelet (pods/status) and, for pods that do
run, Argo's executor (the WorkflowTaskResult it would write). A hit's pod gets no executor: its
outputs reach the controller only through kcache.
"""

from __future__ import annotations

import json
import time

import pytest

from cluster import ArgoController, object_path, wait_until
from steps import ARGO, CACHE_ID, COMPLETED, NODE_ID, WORKFLOW_LABEL, Step, is_echo

ACCURACY = "0.93"

KFP_STEP_METADATA = {
    "labels": {"pipelines.kubeflow.org/cache_enabled": "true",
               "pipelines.kubeflow.org/kfp_sdk_version": "1.8.22",
               "pipelines.kubeflow.org/pipeline-sdk-type": "kfp"},
    "annotations": {"pipelines.kubeflow.org/component_spec": "{\"name\": \"Step\"}"},
}


def pipeline(name: str, namespace: str, padding: int = 0) -> dict:
    """The pipeline; `padding` bytes in an environment variable of produce's container make its
    template that much larger (over 128 KiB, Argo moves ARGO_TEMPLATE into a ConfigMap)."""
    workflow = {
        "apiVersion": ARGO, "kind": "Workflow",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"pipelines.kubeflow.org/kfp_sdk_version": "1.8.22"}},
        "spec": {
            "entrypoint": "pipeline", "serviceAccountName": "pipeline-runner",
            "templates": [
                {"name": "pipeline", "dag": {"tasks": [
                    {"name": "produce", "template": "produce"},
                    {"name": "consume", "template": "consume", "dependencies": ["produce"],
                     "arguments": {
                         "parameters": [{"name": "accuracy",
                                         "value": "{{tasks.produce.outputs.parameters.produce-accuracy}}"}],
                         "artifacts": [{"name": "model",
                                        "from": "{{tasks.produce.outputs.artifacts.produce-model}}"}]}}]}},
                {"name": "produce", "metadata": KFP_STEP_METADATA,
                 "container": {"image": "python:3.9", "command": ["sh", "-c"],
                               "args": ["mkdir -p /tmp/outputs/accuracy /tmp/outputs/model && "
                                        "echo 0.93 > /tmp/outputs/accuracy/data && "
                                        "echo model > /tmp/outputs/model/data"]},
                 "outputs": {"parameters": [{"name": "produce-accuracy",
                                             "valueFrom": {"path": "/tmp/outputs/accuracy/data"}}],
                             "artifacts": [{"name": "produce-model", "path": "/tmp/outputs/model/data"}]}},
                {"name": "consume", "metadata": KFP_STEP_METADATA,
                 "inputs": {"parameters": [{"name": "accuracy"}],
                            "artifacts": [{"name": "model", "path": "/tmp/inputs/model/data"}]},
                 "container": {"image": "python:3.9", "command": ["sh", "-c"],
                               "args": ["cat /tmp/inputs/model/data; echo {{inputs.parameters.accuracy}}"]}},
            ]},
    }
    if padding:
        produce = workflow["spec"]["templates"][1]
        produce["container"]["env"] = [{"name": "PADDING", "value": "p" * padding}]
    return workflow


def argo_template(api, pod: dict) -> dict:
    """The pod's template: its ARGO_TEMPLATE, or the ConfigMap Argo offloaded it to."""
    for container in pod["spec"].get("initContainers", []) + pod["spec"]["containers"]:
        for variable in container.get("env", []):
            if variable["name"] == "ARGO_TEMPLATE":
                if variable["value"] == "offloaded":
                    meta = pod["metadata"]
                    config = api.get(f"/api/v1/namespaces/{meta['namespace']}/configmaps/{meta['name']}")
                    return json.loads(config["data"]["ARGO_TEMPLATE"])
                return json.loads(variable["value"])
    raise AssertionError(f"no ARGO_TEMPLATE on {pod['metadata']['name']}")


class ArgoCluster:
    """The kubelet and the executor for the pods one workflow's controller creates."""

    def __init__(self, step: Step):
        self.step, self.api, self.ns = step, step.api, step.namespace
        self.handled: set[str] = set()

    def executor_outputs(self, pod: dict) -> dict:
        """What the executor reports for a pod that ran: each output as its template declares it,
        artifacts stored under the template's archive location."""
        template = argo_template(self.api, pod)
        outputs: dict = {}
        declared = template.get("outputs", {})
        if declared.get("parameters"):
            outputs["parameters"] = [dict(p, value=ACCURACY) for p in declared["parameters"]]
        if declared.get("artifacts"):
            base = template["archiveLocation"]["s3"]["key"]
            outputs["artifacts"] = [dict(a, s3={"key": f"{base}/{a['name']}.tgz"}) for a in declared["artifacts"]]
        return outputs

    def report(self, pod: dict) -> None:
        meta = pod["metadata"]
        workflow = self.api.get(object_path(ARGO, "Workflow", self.ns, meta["labels"][WORKFLOW_LABEL]))
        result = {"apiVersion": ARGO, "kind": "WorkflowTaskResult",
                  "metadata": {"name": meta["annotations"][NODE_ID], "namespace": self.ns,
                               "labels": {WORKFLOW_LABEL: workflow["metadata"]["name"], COMPLETED: "true"},
                               "ownerReferences": [{"apiVersion": ARGO, "kind": "Workflow",
                                                    "name": workflow["metadata"]["name"],
                                                    "uid": workflow["metadata"]["uid"]}]}}
        outputs = self.executor_outputs(pod)
        if outputs:
            result["outputs"] = outputs
        self.api.create(result)

    def succeed(self, pod: dict) -> None:
        def statuses(containers: list) -> list:
            return [{"name": c["name"], "image": c["image"], "imageID": "", "ready": False, "restartCount": 0,
                     "state": {"terminated": {"exitCode": 0, "reason": "Completed",
                                              "startedAt": "2026-11-22T08:00:00Z",
                                              "finishedAt": "2026-11-22T08:03:20Z"}}}
                    for c in containers]

        status = {"phase": "Succeeded", "startTime": "2026-11-22T08:00:00Z",
                  "containerStatuses": statuses(pod["spec"]["containers"])}
        if pod["spec"].get("initContainers"):
            status["initContainerStatuses"] = statuses(pod["spec"]["initContainers"])
        self.api.merge_patch(self.step.pod_path(pod["metadata"]["name"], "status"), {"status": status})

    def run(self, workflow: str, timeout: float = 180) -> dict:
        """Plays every pod of the workflow until it ends; returns the finished Workflow."""
        path = object_path(ARGO, "Workflow", self.ns, workflow)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pods = self.api.get(f"/api/v1/namespaces/{self.ns}/pods",
                                labelSelector=f"{WORKFLOW_LABEL}={workflow}")["items"]
            for pod in pods:
                name = pod["metadata"]["name"]
                if name in self.handled or pod["status"].get("phase") in ("Succeeded", "Failed"):
                    continue
                self.handled.add(name)
                if not is_echo(pod):
                    self.report(pod)
                self.succeed(pod)
            current = self.api.get(path)
            if current.get("status", {}).get("phase") in ("Succeeded", "Failed", "Error"):
                return current
            time.sleep(0.5)
        raise TimeoutError(f"workflow {workflow} did not finish: {json.dumps(self.api.get(path).get('status'))[:3000]}")

    def pod_of(self, workflow: str, template: str) -> dict:
        pods = self.api.get(f"/api/v1/namespaces/{self.ns}/pods",
                            labelSelector=f"{WORKFLOW_LABEL}={workflow}")["items"]
        matching = [p for p in pods if p["metadata"]["annotations"].get("workflows.argoproj.io/node-name", "")
                    .endswith(f".{template}")]
        assert len(matching) == 1, [p["metadata"]["name"] for p in pods]
        return matching[0]


def node(workflow: dict, template: str) -> dict:
    nodes = [n for n in workflow["status"]["nodes"].values()
             if n.get("templateName") == template and n["type"] == "Pod"]
    assert len(nodes) == 1, workflow["status"]["nodes"]
    return nodes[0]


@pytest.fixture(params=["v4", "v3"], ids=["argo-4.0", "argo-3.7"])
def argo(request, cluster):
    controller = ArgoController(cluster, request.param)
    yield controller
    controller.stop()


@pytest.mark.parametrize("padding", [0, 140 * 1024], ids=["inline", "offloaded"])
def test_a_real_controller_consumes_replayed_outputs(cluster, namespace, argo, padding):
    step = Step(cluster, namespace(f"kfp-argo-{argo.line}"))
    kubelet = ArgoCluster(step)
    # The controller is the line's own release (its startup log names the version stamped in).
    version = {"v4": "v4.0.5", "v3": "v3.7.4"}[argo.line]
    assert version in argo.process.log.read_text(errors="replace")

    step.api.create(pipeline("run1", step.namespace, padding))
    run1 = kubelet.run("run1")
    assert run1["status"]["phase"] == "Succeeded", argo.process.tail()
    produced = node(run1, "produce")["outputs"]
    model_key = produced["artifacts"][0]["s3"]["key"]
    produce1 = kubelet.pod_of("run1", "produce")
    offloaded = any(v.get("value") == "offloaded" for c in produce1["spec"].get("initContainers", [])
                    for v in c.get("env", []))
    assert offloaded == bool(padding)
    wait_until(lambda: step.cache_id(produce1["metadata"]["name"]), 60, "run 1's produce step to be recorded",
               cluster.logs)
    consume1 = kubelet.pod_of("run1", "consume")
    wait_until(lambda: step.cache_id(consume1["metadata"]["name"]), 60, "run 1's consume step to be recorded",
               cluster.logs)

    step.api.create(pipeline("run2", step.namespace, padding))
    run2 = kubelet.run("run2")
    produce2 = kubelet.pod_of("run2", "produce")
    assert is_echo(produce2), cluster.logs()
    assert produce2["metadata"]["labels"][CACHE_ID] == step.cache_id(produce1["metadata"]["name"])
    assert run2["status"]["phase"] == "Succeeded", (json.dumps(run2["status"])[:3000], argo.process.tail())

    # The controller took the replayed outputs as the node's own...
    replayed = node(run2, "produce")
    assert replayed["phase"] == "Succeeded"
    assert replayed["outputs"]["parameters"][0]["value"] == ACCURACY
    assert replayed["outputs"]["artifacts"][0]["s3"]["key"] == model_key
    # ...and handed them to the next step. (The replayed artifact carries kcache's
    # artifactGC: {strategy: Never}, which Argo copies into consume's inputs: its template, hence
    # its execution key, differs from run 1's, so consume runs again in run 2; not asserted
    # either way here.)
    consumer = node(run2, "consume")
    assert consumer["inputs"]["parameters"][0]["value"] == ACCURACY
    assert consumer["inputs"]["artifacts"][0]["s3"]["key"] == model_key

    # Argo deletes a finished workflow's task results by the workflow label, which kcache's replay
    # carries. (Deleting a Workflow also removes them by owner reference: test_admission.py.)
    result_path = object_path(ARGO, "WorkflowTaskResult", step.namespace, produce2["metadata"]["annotations"][NODE_ID])
    wait_until(lambda: not step.api.exists(result_path), 60, "the controller to delete the replayed task result",
               argo.process.tail)
