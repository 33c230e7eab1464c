"""The watcher and leader election on a real kube-apiserver (scenario 3 of the cluster tests).

kcache's replicas reach the API server through a TCP relay (cluster.TcpProxy), so a test can cut
their streams while the API server runs on, as a load balancer or a network blip would.
"""

from __future__ import annotations

import signal
import time

from cluster import object_path, wait_until
from steps import Step, executor_outputs, is_echo

PODS = "kcache_watcher_"
RELISTS = f"{PODS}relists_total"
RESTARTS = f"{PODS}watch_restarts_total"
TASK_RESULT_RELISTS = "kcache_watcher_taskresult_relists_total"
BOOKMARKS = f'{PODS}events_total{{type="BOOKMARK"}}'
LEADER = "kcache_watcher_leader"


def leader(cluster):
    """The replica whose metrics say it leads, once exactly one does."""
    leading = [r for r in cluster.replicas if r.process.alive() and r.metric(LEADER) == 1]
    return leading[0] if len(leading) == 1 else None


def lease_holder(cluster) -> str:
    lease = cluster.admin.get(object_path("coordination.k8s.io/v1", "Lease", "kcache", "kcache-watcher"))
    return lease["spec"].get("holderIdentity", "")


def complete(step: Step, pod: dict) -> None:
    step.report_outputs(pod, executor_outputs())
    step.succeed(pod)


def test_the_watch_resumes_from_where_it_was_cut_without_relisting(cluster, namespace):
    step = Step(cluster, namespace())
    watcher = wait_until(lambda: leader(cluster), 60, "a leading replica")
    pod = step.create("run1")
    before = watcher.metrics()
    with cluster.proxy.down():
        # The step finishes while kcache cannot see it.
        complete(step, pod)
        time.sleep(1)
    wait_until(lambda: step.cache_id(pod["metadata"]["name"]), 60, "the step to be recorded", cluster.logs)
    after = watcher.metrics()
    assert after.get(RESTARTS, 0) > before.get(RESTARTS, 0)
    assert after.get(RELISTS, 0) == before.get(RELISTS, 0), "a cut watch must resume, not relist"
    assert is_echo(step.create("run2"))


def relists(replica) -> float:
    samples = replica.metrics()
    return samples.get(RELISTS, 0) + samples.get(TASK_RESULT_RELISTS, 0)


def test_bookmarks_arrive_and_a_version_the_api_server_no_longer_has_makes_the_watcher_relist(
        cluster, namespace):
    """etcd compaction alone does not expire a watch: kube-apiserver's watch cache still serves the
    compacted versions (checked here too). The resume fails when the stream comes back through an
    API server whose watch cache starts after the watcher's version, as a reconnect to another
    replica of a highly available control plane (or to a restarted one) does, with etcd compacted
    past it: 410 Gone, and the watcher lists again."""
    step = Step(cluster, namespace())
    watcher = wait_until(lambda: leader(cluster), 60, "a leading replica")
    pod = step.create("run1")
    ns = step.namespace
    version = step.api.get(f"/api/v1/namespaces/{ns}/pods")["metadata"]["resourceVersion"]
    # kube-apiserver sends a bookmark about once a minute on a watch that asked for them. Right
    # after one, that watch's version stays put for a while: the second API server's cache then
    # starts after it.
    bookmarks = watcher.metric(BOOKMARKS)
    wait_until(lambda: watcher.metric(BOOKMARKS) > bookmarks, 150, "a BOOKMARK event", cluster.logs,
               interval=0.2)
    second_port, second = cluster.api.another_instance()
    before = relists(watcher)
    try:
        # Shorter than the lease's renew deadline, so the replica keeps leading throughout.
        with cluster.proxy.down():
            complete(step, pod)
            cluster.etcd.compact(cluster.etcd.revision())
            cluster.proxy.target_port = second_port
        wait_until(lambda: step.cache_id(pod["metadata"]["name"]), 90, "the step to be recorded", cluster.logs)
        assert relists(watcher) > before, cluster.logs()
        assert "expired, relisting" in watcher.log_text()
        assert leader(cluster) is watcher
        # The first API server still serves a watch from the compacted version out of its cache.
        events = step.api.request("GET", f"/api/v1/namespaces/{ns}/pods",
                                  query={"watch": "1", "resourceVersion": version, "timeoutSeconds": "1"},
                                  raw=True)
        assert '"type":"MODIFIED"' in events and '"code":410' not in events
    finally:
        cluster.proxy.target_port = cluster.api.port
        cluster.proxy.cut()
        second.stop()


def test_two_replicas_elect_one_leader_and_killing_it_hands_over(cluster, namespace):
    first = wait_until(lambda: leader(cluster), 60, "a leading replica")
    second = cluster.start_replica(f"kcache-{len(cluster.replicas)}")
    time.sleep(5)  # a few retry periods: the second replica must stay a follower
    assert leader(cluster) is first
    assert lease_holder(cluster) == first.identity
    assert second.metric(LEADER) == 0

    first.stop(sig=signal.SIGKILL)  # no chance to release the lease
    wait_until(lambda: lease_holder(cluster) == second.identity, 60, "the lease to pass over", cluster.logs)
    wait_until(lambda: second.metric(LEADER) == 1, 30, "the second replica to lead", cluster.logs)

    # The new leader records steps; the webhook replica is started again for the tests after.
    if first.webhook_port == cluster.webhook_port:
        cluster.replicas.remove(first)
        cluster.start_replica(first.identity, serves_webhook=True)
    step = Step(cluster, namespace())
    pod, entry = step.run_and_record("run1")
    assert entry
    assert leader(cluster) is second
