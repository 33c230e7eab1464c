#include "webhook/outputs_mode_log.h"

#include <spdlog/spdlog.h>

#include <string>

namespace kcache::webhook {

namespace {

constexpr std::array kDeliveries{OutputsDelivery::kAnnotation, OutputsDelivery::kTaskResult};
constexpr std::array kLayouts{core::ArgoLayout::kUnknown, core::ArgoLayout::kTemplateOnMain,
                              core::ArgoLayout::kTemplateOnInit,
                              core::ArgoLayout::kTemplateOnSupervisor};

}  // namespace

OutputsModeLog::OutputsModeLog(core::MetricsRegistry& metrics, ArgoOutputsMode mode) : mode_(mode) {
  static_assert(kDeliveries.size() == kDeliveryCount);
  static_assert(kLayouts.size() == kLayoutCount);
  for (std::size_t d = 0; d < kDeliveries.size(); ++d) {
    for (std::size_t l = 0; l < kLayouts.size(); ++l) {
      seen_[d][l].pods = &metrics.counter(
          "kcache_argo_outputs_mode_total",
          "Pods looked up, by how a hit delivers their outputs and the Argo layout they show.",
          {{"mode", std::string(toString(kDeliveries[d]))},
           {"layout", std::string(core::toString(kLayouts[l]))}});
    }
  }
}

void OutputsModeLog::note(const LookupPlan& plan, std::string_view podRef) {
  const auto delivery = static_cast<std::size_t>(plan.outputsDelivery);
  const auto layout = static_cast<std::size_t>(plan.layout);
  if (delivery >= kDeliveryCount || layout >= kLayoutCount) return;
  Seen& seen = seen_[delivery][layout];
  seen.pods->inc();
  if (!seen.announced.load(std::memory_order_relaxed) &&
      !seen.announced.exchange(true, std::memory_order_relaxed)) {
    spdlog::info(
        "argo outputs: pods of layout {} (template on {}) get their outputs by {} on a "
        "hit (--argo-outputs={}); first seen on pod {}",
        core::toString(plan.layout), plan.templateContainer, toString(plan.outputsDelivery),
        toString(mode_), podRef);
  }
  spdlog::debug("argo outputs pod={} layout={} template_on={} delivery={}", podRef,
                core::toString(plan.layout), plan.templateContainer,
                toString(plan.outputsDelivery));
}

}  // namespace kcache::webhook
