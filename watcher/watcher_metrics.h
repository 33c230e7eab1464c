#pragma once
// The watcher's metrics, registered once in the process registry and shared by its parts.
#include <array>

#include "core/metrics.h"
#include "watcher/watch_event.h"

namespace kcache::watcher {

struct WatcherMetrics {
  explicit WatcherMetrics(core::MetricsRegistry& registry);

  core::Counter& event(WatchEventType type) { return *events[static_cast<size_t>(type)]; }

  std::array<core::Counter*, 5> events{};  // kcache_watcher_events_total{type}
  core::Counter& malformedEvents;          // lines skipped: not JSON, unknown type, not a pod
  core::Counter& lists;                    // full lists, the first one included
  core::Counter& relists;                  // lists after 410 Gone or an ERROR event
  core::Counter& watchRestarts;            // watches resumed after a stream ended or broke
  core::Counter& entriesRecorded;
  core::Counter& recordFailures;
  core::Counter& patches;
  core::Counter& patchFailures;
  core::Gauge& leader;  // 1 while this replica leads
  core::Counter& leaderTransitions;
  core::Histogram& queuedToLabelled;  // seconds from a completed pod's first sighting to its label
  core::Counter& gcRuns;
  core::Counter& gcFailures;
};

}  // namespace kcache::watcher
