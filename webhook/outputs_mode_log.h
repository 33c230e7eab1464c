#pragma once
// Says how each pod's hit would be delivered (--argo-outputs): a debug line per pod, an info line
// the first time each (delivery, layout) pair is seen, and kcache_argo_outputs_mode_total.
// Lock-free: it runs on the I/O threads for every planned lookup.
#include <array>
#include <atomic>
#include <string_view>

#include "core/metrics.h"
#include "webhook/decision.h"

namespace kcache::webhook {

class OutputsModeLog {
 public:
  OutputsModeLog(core::MetricsRegistry& metrics, ArgoOutputsMode mode);
  void note(const LookupPlan& plan, std::string_view podRef);

 private:
  static constexpr std::size_t kDeliveryCount = 2;
  static constexpr std::size_t kLayoutCount = 4;
  struct Seen {
    core::Counter* pods = nullptr;
    std::atomic<bool> announced{false};
  };
  ArgoOutputsMode mode_;
  std::array<std::array<Seen, kLayoutCount>, kDeliveryCount> seen_;
};

}  // namespace kcache::webhook
