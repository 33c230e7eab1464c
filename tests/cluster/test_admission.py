"""Admission through a real kube-apiserver (scenarios 1 and 2 of the cluster tests).

1. A Kubeflow step's pod created through the API misses, is recorded by the watcher, and the same
   step in a new run is created as the cached pod, patched by kcache and validated by the API
   server itself; a server-side dry run creates nothing.
2. Every hit is a pod the API server accepts: under the `restricted` Pod Security Standard, under a
   ResourceQuota that requires limits, and with outputs at and over the 256 KiB annotation limit
   (over it, the step runs as a miss or without the annotation, never as a refused pod). Each
   case also shows, by a dry run of the echo pod without kcache's fix, that the API server really
   refuses what the fix avoids, so the check can fail.
"""

from __future__ import annotations

import copy
import json

import pytest

from cluster import ApiError, object_path, wait_until
from steps import (ARGO, CACHE_ID, CACHE_KEY, COMPLETED, OUTPUTS, REUSED, Step, create_workflow,
                   executor_outputs, is_echo, recorded_outputs, restricted, with_limits)

ANNOTATIONS_LIMIT = 256 * 1024


def replayed(outputs: dict) -> dict:
    """A task result kcache replays: the recorded outputs, without exitCode, artifacts kept."""
    expected = copy.deepcopy(outputs)
    expected.pop("exitCode", None)
    for artifact in expected.get("artifacts", []):
        artifact["artifactGC"] = {"strategy": "Never"}
    return expected


def refused_by_api_server(step: Step, pod: dict) -> ApiError:
    """Dry-runs `pod` with kcache out of the way (no cache_enabled label): the API server's verdict."""
    pod = copy.deepcopy(pod)
    meta = pod["metadata"]
    meta["labels"].pop("pipelines.kubeflow.org/cache_enabled")
    meta["name"] += "-bare"
    for key in ("uid", "resourceVersion", "creationTimestamp", "managedFields"):
        meta.pop(key, None)
    pod.pop("status", None)
    with pytest.raises(ApiError) as refused:
        step.api.create(pod, dry_run=True)
    return refused.value


def test_a_miss_is_recorded_and_the_next_run_is_created_as_the_cached_pod(cluster, namespace):
    step = Step(cluster, namespace())
    pod1, entry = step.run_and_record("run1")
    assert pod1["metadata"]["annotations"][CACHE_KEY]

    pod2 = step.create("run2")
    assert is_echo(pod2), json.dumps(pod2["spec"], indent=1)
    labels, annotations = pod2["metadata"]["labels"], pod2["metadata"]["annotations"]
    assert labels[CACHE_ID] == entry
    assert labels[REUSED] == "true"
    assert annotations[CACHE_KEY] == pod1["metadata"]["annotations"][CACHE_KEY]
    outputs = executor_outputs()
    without_exit_code = {k: v for k, v in outputs.items() if k != "exitCode"}
    assert json.loads(annotations[OUTPUTS]) == without_exit_code
    # What the API server stored is what it answered: the patch went through its validation.
    stored = step.api.get(step.pod_path(pod2["metadata"]["name"]))
    assert stored["spec"]["containers"] == pod2["spec"]["containers"]

    # Argo >= 3.6 reads the outputs from the task result kcache created before the pod, owned by
    # the run's Workflow, as its controller expects.
    result = step.task_result(pod2)
    assert result is not None, cluster.logs()
    assert result["metadata"]["labels"][COMPLETED] == "true"
    owner = result["metadata"]["ownerReferences"][0]
    workflow = step.api.get(object_path(ARGO, "Workflow", step.namespace, "run2"))
    assert (owner["kind"], owner["uid"]) == ("Workflow", workflow["metadata"]["uid"])
    assert result["outputs"] == replayed(outputs)

    # Deleting the Workflow removes the replayed task result with it (the garbage collector
    # follows the owner reference).
    result_path = object_path(ARGO, "WorkflowTaskResult", step.namespace, result["metadata"]["name"])
    step.api.delete(object_path(ARGO, "Workflow", step.namespace, "run2"))
    wait_until(lambda: not step.api.exists(result_path), 60, "the garbage collector to delete the task result")

    # The registration as the API server stored it: the chart's v1 first (the API server sends
    # the first version it supports, so these were v1 reviews), its failure policy and timeout.
    registration = cluster.admin.get("/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/"
                                     + cluster.webhook_configuration["metadata"]["name"])["webhooks"][0]
    assert registration["admissionReviewVersions"][0] == "v1"
    assert (registration["failurePolicy"], registration["sideEffects"]) == ("Ignore", "NoneOnDryRun")


def test_a_server_side_dry_run_creates_nothing(cluster, namespace):
    step = Step(cluster, namespace())
    step.run_and_record("run1")
    dry = step.create("run2", dry_run=True)
    # The task result a hit needs is never created on a dry run, so the step is left to run.
    assert not is_echo(dry)
    assert dry["metadata"]["labels"][CACHE_ID] == ""
    assert not step.api.exists(step.pod_path(dry["metadata"]["name"]))
    assert step.task_result(dry) is None
    # And the same pod created for real is a hit.
    assert is_echo(step.create("run2"))


def test_hits_pass_the_restricted_pod_security_standard(cluster, namespace):
    ns = namespace(labels={"pod-security.kubernetes.io/enforce": "restricted",
                           "pod-security.kubernetes.io/enforce-version": "latest"})
    step = Step(cluster, ns, shape=restricted)
    step.run_and_record("run1")
    pod2 = step.create("run2")
    assert is_echo(pod2)
    echo = pod2["spec"]["containers"][0]
    assert echo["securityContext"]["allowPrivilegeEscalation"] is False
    assert echo["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    # runAsNonRoot without a user: busybox would run as root, so the echo names one.
    assert echo["securityContext"]["runAsUser"] == 65534
    assert pod2["spec"]["securityContext"] == restricted(step.fixture)["spec"]["securityContext"]

    # Without the container's securityContext (as kcache wrote it before), PodSecurity refuses it.
    bare = copy.deepcopy(pod2)
    del bare["spec"]["containers"][0]["securityContext"]
    refusal = refused_by_api_server(step, bare)
    assert refusal.status == 403 and "violates PodSecurity" in refusal.body, refusal.body


def test_hits_fit_a_quota_that_requires_limits(cluster, namespace):
    ns = namespace()
    quota = {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "compute", "namespace": ns},
             "spec": {"hard": {"requests.cpu": "4", "requests.memory": "8Gi",
                               "limits.cpu": "4", "limits.memory": "8Gi"}}}
    cluster.admin.create(quota)
    path = object_path("v1", "ResourceQuota", ns, "compute")
    wait_until(lambda: cluster.admin.get(path).get("status", {}).get("hard"), 60,
               "the quota controller to fill the quota's status")
    step = Step(cluster, ns, shape=with_limits)
    step.run_and_record("run1")
    pod2 = step.create("run2")
    assert is_echo(pod2)
    resources = pod2["spec"]["containers"][0]["resources"]
    assert resources["limits"] == resources["requests"] == {"cpu": "10m", "memory": "16Mi"}

    bare = copy.deepcopy(pod2)
    del bare["spec"]["containers"][0]["resources"]["limits"]
    refusal = refused_by_api_server(step, bare)
    assert refusal.status == 403 and "must specify limits" in refusal.body, refusal.body


def annotation_bytes(annotations: dict) -> int:
    return sum(len(k.encode()) + len(v.encode()) for k, v in annotations.items())


def padded_to(step: Step, run: str, outputs: str, total: int, with_completed: bool) -> dict:
    """The run's pod with a filler annotation so that, once a hit restores `outputs`, the pod's
    annotations are exactly `total` bytes."""
    pod = step.pod_of_run(run, create_workflow(step.api, step.namespace, run))
    added = {CACHE_KEY: "k" * 64, OUTPUTS: outputs}
    if with_completed:
        added[COMPLETED] = "true"
    filler_key = "kcache.test/filler"
    current = annotation_bytes(pod["metadata"]["annotations"] | added) + len(filler_key)
    assert total >= current, "outputs alone are over the limit"
    pod["metadata"]["annotations"][filler_key] = "f" * (total - current)
    return pod


@pytest.mark.parametrize("fixture,delivery", [("argo-3.5", "annotation"), ("argo-3.6", "taskresult")])
def test_outputs_at_and_over_the_annotation_limit_never_refuse_a_pod(cluster, namespace, fixture, delivery):
    step = Step(cluster, namespace(f"big-outputs-{delivery}"), fixture=fixture)
    # 200 KiB of outputs, reported in the task result (which has no such limit).
    _, entry = step.run_and_record("run1", executor_outputs("v" * (200 * 1024)))
    outputs = recorded_outputs(cluster, entry)
    assert len(outputs) > 200 * 1024
    with_completed = delivery == "annotation"

    # Exactly at the limit: a hit with every annotation restored, accepted by the API server.
    at_limit = step.create("run2", pod=padded_to(step, "run2", outputs, ANNOTATIONS_LIMIT, with_completed))
    assert is_echo(at_limit), cluster.logs()
    assert at_limit["metadata"]["annotations"][OUTPUTS] == outputs
    assert annotation_bytes(at_limit["metadata"]["annotations"]) == ANNOTATIONS_LIMIT

    # One byte over, the API server refuses the pod a hit would make...
    over = padded_to(step, "run3", outputs, ANNOTATIONS_LIMIT + 1, with_completed)
    as_hit = copy.deepcopy(over)
    as_hit["metadata"]["annotations"] |= {CACHE_KEY: "k" * 64, OUTPUTS: outputs}
    if with_completed:
        as_hit["metadata"]["annotations"][COMPLETED] = "true"
    refusal = refused_by_api_server(step, as_hit)
    assert refusal.status == 422 and "Too long" in refusal.body, refusal.body

    # ...so kcache admits it as a miss (Argo <= 3.5 reads the annotation), or as a hit without the
    # annotation (later lines read the task result kcache creates).
    created = step.create("run3", pod=over)
    annotations = created["metadata"]["annotations"]
    assert OUTPUTS not in annotations
    if delivery == "annotation":
        assert not is_echo(created)
        assert created["metadata"]["labels"][CACHE_ID] == ""
    else:
        assert is_echo(created)
        assert created["metadata"]["labels"][CACHE_ID] == entry
        assert step.task_result(created)["outputs"]["parameters"][0]["value"] == "v" * (200 * 1024)
