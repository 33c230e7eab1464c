#pragma once
// Pods the watcher refuses to record because their key cannot be trusted (recording_plan.h): each
// refusal is counted by reason in kcache_watcher_record_refusals_total{reason}, and logged once
// per pod, however many events the pod produces.
#include <cstddef>
#include <map>
#include <mutex>
#include <string>
#include <unordered_set>

#include "core/metrics.h"
#include "watcher/recording_plan.h"

namespace kcache::watcher {

class RecordRefusals {
 public:
  explicit RecordRefusals(core::MetricsRegistry& registry);

  // Counts and logs `reason` for `pod` the first time; ordinary skips (not succeeded, already
  // labelled) are not refusals and are ignored. Thread-safe.
  void note(const PodIdentity& pod, SkipReason reason);

 private:
  // Bounds the memory of pods already reported; when full it starts over (a pod may then be
  // logged a second time, never counted twice for the same event stream position).
  static constexpr std::size_t kRememberedPods = 10000;

  std::map<SkipReason, core::Counter*> counters_;  // one per refusal reason, registered once
  std::mutex mutex_;
  std::unordered_set<std::string> reported_;
};

}  // namespace kcache::watcher
