#include "watcher/record_refusals.h"

#include <spdlog/spdlog.h>

namespace kcache::watcher {

RecordRefusals::RecordRefusals(core::MetricsRegistry& registry) {
  // Every reason is visible at 0 from the first scrape.
  for (const SkipReason reason :
       {SkipReason::kNoKey, SkipReason::kInvalidKey, SkipReason::kNoTemplate,
        SkipReason::kBadTemplate, SkipReason::kKeyMismatch, SkipReason::kNotCacheEnabled,
        SkipReason::kNoStamp, SkipReason::kBadStamp,
        // Least privilege (issue 13)
        SkipReason::kTemplateOffloaded, SkipReason::kTemplateNotOwned,
        // tenancy (issue 13)
        SkipReason::kNamespaceNotWriter}) {
    counters_[reason] = &registry.counter(
        "kcache_watcher_record_refusals_total",
        "Completed pods not recorded because their execution key cannot be trusted or kcache's "
        "webhook did not tag them for recording, by reason.",
        {{"reason", std::string(*refusalLabel(reason))}});
  }
}

void RecordRefusals::note(const PodIdentity& pod, SkipReason reason) {
  const auto counter = counters_.find(reason);
  if (counter == counters_.end()) return;  // an ordinary skip, not a refusal
  const std::string_view label = *refusalLabel(reason);
  const std::string id = trackingId(pod) + "/" + std::string(label);
  {
    std::lock_guard lock(mutex_);
    if (reported_.size() >= kRememberedPods) reported_.clear();
    if (!reported_.insert(id).second) return;
  }
  counter->second->inc();
  spdlog::warn("watcher: refused to record pod {}/{} (reason={}): {}", pod.namespaceName, pod.name,
               label, toString(reason));
}

}  // namespace kcache::watcher
