#include "watcher/watcher_metrics.h"

namespace kcache::watcher {
namespace {

core::Counter& stepsPlanned(core::MetricsRegistry& registry, const std::string& source) {
  return registry.counter("kcache_watcher_steps_planned_total",
                          "Steps handed to the recorder, by outputs source", {{"source", source}});
}

}  // namespace

InformerMetrics::InformerMetrics(core::MetricsRegistry& registry, const std::string& prefix,
                                 const std::string& objects)
    : malformedEvents(
          registry.counter(prefix + "malformed_events_total",
                           "Watch stream lines skipped as malformed (" + objects + ")")),
      lists(registry.counter(prefix + "lists_total", "Full lists of " + objects)),
      relists(registry.counter(prefix + "relists_total",
                               "Lists of " + objects + " forced by 410 Gone or an ERROR event")),
      watchRestarts(
          registry.counter(prefix + "watch_restarts_total",
                           "Watches of " + objects + " resumed after the stream ended or broke")) {
  for (WatchEventType type :
       {WatchEventType::kAdded, WatchEventType::kModified, WatchEventType::kDeleted,
        WatchEventType::kBookmark, WatchEventType::kError}) {
    events[static_cast<size_t>(type)] = &registry.counter(
        prefix + "events_total", "Watch events received by type (" + objects + ")",
        {{"type", std::string(toString(type))}});
  }
}

JoinMetrics::JoinMetrics(core::MetricsRegistry& registry)
    : taskResultsLive(registry.gauge("kcache_watcher_taskresults_live",
                                     "Argo task results currently known to exist")),
      taskResultsBuffered(
          registry.gauge("kcache_watcher_taskresults_buffered",
                         "Final Argo task results kept in memory after their DELETE event")),
      bufferEvictions(registry.counter(
          "kcache_watcher_taskresult_buffer_evictions_total",
          "Deleted task results dropped before their retention ended, to stay within the cap")),
      podsWaiting(registry.gauge("kcache_watcher_pods_waiting_for_taskresult",
                                 "Succeeded pods waiting for their final task result")),
      joins(registry.counter("kcache_watcher_taskresult_joins_total",
                             "Succeeded pods matched with their final task result")),
      recordedFromTaskResult(stepsPlanned(registry, "taskresult")),
      recordedFromAnnotation(stepsPlanned(registry, "annotation")),
      recordedWithoutOutputs(stepsPlanned(registry, "none")),
      abandoned(
          registry.counter("kcache_watcher_steps_abandoned_total",
                           "Succeeded pods not recorded: their task result never became final")),
      taskResultBytes(
          registry.gauge("kcache_watcher_taskresult_bytes",
                         "Bytes of Argo task results kept in memory (live and buffered), within "
                         "--max-task-result-bytes")),
      outputsDropped(registry.counter(
          "kcache_watcher_taskresult_outputs_dropped_total",
          "Task results whose outputs were not kept because --max-task-result-bytes was reached; "
          "their steps are not recorded")),
      refusals(registry) {}

WatcherMetrics::WatcherMetrics(core::MetricsRegistry& registry)
    : pods(registry, "kcache_watcher_", "tagged pods"),
      taskResults(registry, "kcache_watcher_taskresult_", "Argo task results"),
      join(registry),
      entriesRecorded(registry.counter("kcache_watcher_entries_recorded_total",
                                       "Completed steps recorded in the store")),
      recordsKept(registry.counter(
          "kcache_watcher_records_kept_total",
          "Completed steps not written because a fresh entry of another pod already held their "
          "key (the pod is labelled with that entry)")),
      recordFailures(registry.counter("kcache_watcher_record_failures_total",
                                      "Store writes that failed and will be retried")),
      patches(registry.counter("kcache_watcher_patches_total", "cache_id labels patched")),
      patchFailures(registry.counter("kcache_watcher_patch_failures_total",
                                     "cache_id label patches that failed")),
      leader(registry.gauge("kcache_watcher_leader", "1 while this replica is the leader")),
      leaderTransitions(registry.counter("kcache_watcher_leader_transitions_total",
                                         "Times this replica became the leader")),
      queuedToLabelled(registry.histogram(
          "kcache_watcher_completion_to_label_seconds",
          "Seconds from seeing a completed pod to its cache_id label being set",
          {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300})),
      gcRuns(registry.counter("kcache_watcher_gc_runs_total", "Garbage collections started")),
      gcFailures(
          registry.counter("kcache_watcher_gc_failures_total", "Garbage collections failed")) {}

}  // namespace kcache::watcher
