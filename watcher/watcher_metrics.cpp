#include "watcher/watcher_metrics.h"

#include <string>

namespace kcache::watcher {

WatcherMetrics::WatcherMetrics(core::MetricsRegistry& registry)
    : malformedEvents(registry.counter("kcache_watcher_malformed_events_total",
                                       "Watch stream lines skipped as malformed")),
      lists(registry.counter("kcache_watcher_lists_total", "Full lists of tagged pods")),
      relists(registry.counter("kcache_watcher_relists_total",
                               "Lists forced by 410 Gone or an ERROR event")),
      watchRestarts(registry.counter("kcache_watcher_watch_restarts_total",
                                     "Watches resumed after the stream ended or broke")),
      entriesRecorded(registry.counter("kcache_watcher_entries_recorded_total",
                                       "Completed steps recorded in the store")),
      recordFailures(registry.counter("kcache_watcher_record_failures_total",
                                      "Store writes that failed and will be retried")),
      patches(registry.counter("kcache_watcher_patches_total", "cache_id labels patched")),
      patchFailures(registry.counter("kcache_watcher_patch_failures_total",
                                     "cache_id label patches that failed")),
      leader(registry.gauge("kcache_watcher_leader", "1 while this replica is the leader")),
      leaderTransitions(registry.counter("kcache_watcher_leader_transitions_total",
                                         "Times this replica became or stopped being leader")),
      queuedToLabelled(registry.histogram(
          "kcache_watcher_completion_to_label_seconds",
          "Seconds from seeing a completed pod to its cache_id label being set",
          {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300})),
      gcRuns(registry.counter("kcache_watcher_gc_runs_total", "Garbage collections started")),
      gcFailures(
          registry.counter("kcache_watcher_gc_failures_total", "Garbage collections failed")) {
  for (WatchEventType type :
       {WatchEventType::kAdded, WatchEventType::kModified, WatchEventType::kDeleted,
        WatchEventType::kBookmark, WatchEventType::kError}) {
    events[static_cast<size_t>(type)] =
        &registry.counter("kcache_watcher_events_total", "Watch events received by type",
                          {{"type", std::string(toString(type))}});
  }
}

}  // namespace kcache::watcher
