#pragma once
// The watcher's metrics, registered once in the process registry and shared by its parts.
#include <array>
#include <string>

#include "core/metrics.h"
#include "watcher/record_refusals.h"
#include "watcher/watch_event.h"

namespace kcache::watcher {

// One informer's stream. The pod stream keeps the names it always had
// (kcache_watcher_events_total, ...); the task result stream's names carry a prefix
// (kcache_watcher_taskresult_events_total, ...).
struct InformerMetrics {
  InformerMetrics(core::MetricsRegistry& registry, const std::string& prefix,
                  const std::string& objects);

  core::Counter& event(WatchEventType type) { return *events[static_cast<size_t>(type)]; }

  std::array<core::Counter*, 5> events{};  // <prefix>events_total{type}
  core::Counter& malformedEvents;          // lines skipped: not JSON, unknown type, wrong kind
  core::Counter& lists;                    // full lists, the first one included
  core::Counter& relists;                  // lists after 410 Gone or an ERROR event
  core::Counter& watchRestarts;            // watches resumed after a stream ended or broke
};

// Joining task results to pods (join.h).
struct JoinMetrics {
  explicit JoinMetrics(core::MetricsRegistry& registry);

  core::Gauge& taskResultsLive;      // task results currently known to exist
  core::Gauge& taskResultsBuffered;  // final task results kept after their DELETE event
  core::Counter& bufferEvictions;    // buffered task results dropped early to stay within the cap
  core::Gauge& podsWaiting;          // ready pods waiting for their task result
  core::Counter& joins;              // ready pods matched with a final task result
  core::Counter& recordedFromTaskResult;  // kcache_watcher_steps_planned_total{source=...}
  core::Counter& recordedFromAnnotation;
  core::Counter& recordedWithoutOutputs;  // no task result within the wait, no annotation
  core::Counter& abandoned;               // ready pods whose task result never became final
  // --- Bounded under attack (issue 13) ---
  core::Gauge& taskResultBytes;   // bytes of task results kept (live and buffered)
  core::Counter& outputsDropped;  // task results whose outputs did not fit the budget
  RecordRefusals refusals;        // pods whose key cannot be trusted
};

struct WatcherMetrics {
  explicit WatcherMetrics(core::MetricsRegistry& registry);

  InformerMetrics pods;
  InformerMetrics taskResults;
  JoinMetrics join;
  core::Counter& entriesRecorded;
  // Records that changed nothing: a fresh entry of another pod already held the key (first
  // fresh writer wins; a repeated or forged record of a fresh step ends here).
  core::Counter& recordsKept;
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
