#include "webhook/admission_handler.h"

#include <spdlog/spdlog.h>

#include <exception>

#include "core/execution_key.h"
#include "core/logging.h"
#include "webhook/patch.h"

namespace kcache::webhook {

namespace {

// A key of 64 zeros: SHA-256 never produces it for a real template, so a probe never hits.
constexpr std::string_view kProbeKey =
    "0000000000000000000000000000000000000000000000000000000000000000";

int64_t systemNowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double secondsSince(AdmissionHandler::Clock::time_point started) {
  return std::chrono::duration<double>(AdmissionHandler::Clock::now() - started).count();
}

// Escaped and cut: both come from the review, which any caller of /mutate may write.
std::string podRef(const AdmissionRequest& request) {
  return core::logValue(request.namespaceName) + "/" +
         (request.name.empty() ? "<generated>" : core::logValue(request.name));
}

}  // namespace

AdmissionHandler::AdmissionHandler(AdmissionConfig config, store::CacheLookup& lookup,
                                   core::MetricsRegistry& metrics, OutputDelivery* delivery,
                                   WallClock now)
    : config_(std::move(config)),
      lookup_(lookup),
      recentHits_(dynamic_cast<store::RecentHitCache*>(&lookup)),
      metrics_(metrics),
      delivery_(delivery),
      now_(now ? std::move(now) : WallClock(systemNowSeconds)),
      outputsModes_(metrics, config_.argoOutputs),
      storeLatency_(metrics.histogram("kcache_store_lookup_duration_seconds",
                                      "Duration of cache store lookups from the webhook.",
                                      core::latencyBucketsSeconds())),
      storeErrors_(metrics.counter("kcache_store_lookup_errors_total",
                                   "Store lookups that failed or exceeded their deadline.")),
      savedSeconds_(metrics.counter("kcache_compute_seconds_saved_total",
                                    "Run time of the original steps that cache hits replaced.")),
      malformedReviews_(metrics.counter("kcache_admission_malformed_reviews_total",
                                        "Request bodies that were not a usable AdmissionReview.")),
      unreadableEntries_(metrics.counter(
          "kcache_cache_entries_unreadable_total",
          "Cache entries found whose ExecutionOutput could not be read (treated as a miss).")),
      legacyReuses_(metrics.counter(
          "kcache_legacy_cache_reuse_total",
          "Hits served in audit mode (KFP_SECURITY_LEGACY_CACHE_MODE=audit) from a row written "
          "before Kubeflow 2.18, whose namespace is unknown (finding ownership_unknown).")) {
  // Every outcome is visible at 0 from the first scrape.
  for (std::size_t index = 0; index < outcomeMetrics_.size(); ++index) {
    const std::string outcome(outcomeLabel(index));
    outcomeMetrics_[index].answered =
        &metrics.counter("kcache_admission_requests_total",
                         "Admission reviews answered, by outcome.", {{"outcome", outcome}});
    outcomeMetrics_[index].duration =
        &metrics.histogram("kcache_admission_duration_seconds",
                           "Time from a complete review request to its answer, by outcome.",
                           core::latencyBucketsSeconds(), {{"outcome", outcome}});
  }
}

std::variant<ReviewAnswer, PendingLookup> AdmissionHandler::prepare(std::string_view body,
                                                                    Clock::time_point started) {
  auto decoded = decodeAdmissionReview(body);
  if (!decoded) {
    malformedReviews_.inc();
    if (const auto suppressed = warnings_.admit()) {
      spdlog::warn("admission review rejected with 400: {}{}",
                   core::logValue(decoded.error().message, 1024),
                   core::LogRateLimiter::suppressedNote(*suppressed));
    }
    return ReviewAnswer{400, decoded.error().message + "\n"};
  }
  AdmissionRequest& request = decoded.value();
  Plan plan = planLookup(request, config_);
  if (auto* lookupPlan = std::get_if<LookupPlan>(&plan)) {
    if (request.namespaceName.empty()) request.namespaceName = lookupPlan->namespaceName;
    if (request.name.empty()) request.name = lookupPlan->podName;
    outputsModes_.note(*lookupPlan, podRef(request));
    return PendingLookup{std::move(request), std::move(*lookupPlan)};
  }
  AdmissionDecision decision;
  std::string detail;
  if (auto* skip = std::get_if<Skip>(&plan)) {
    detail = skip->detail;
    decision.outcome = std::move(*skip);
  } else {
    auto& failure = std::get<Failure>(plan);
    detail = failure.detail;
    decision.outcome = std::move(failure);
  }
  return finish(request, decision, started, detail);
}

std::optional<ReviewAnswer> AdmissionHandler::complete(const PendingLookup& pending,
                                                       Clock::time_point started,
                                                       const std::function<bool()>& claim) {
  if (pending.plan.templateOffloaded) {
    bool abandoned = false;
    auto resolved = withOffloadedTemplate(pending, started, claim, abandoned);
    if (abandoned) return std::nullopt;
    if (auto* answer = std::get_if<ReviewAnswer>(&resolved)) return std::move(*answer);
    return complete(std::get<PendingLookup>(resolved), started, claim);
  }
  const auto& plan = pending.plan;
  const int64_t now = now_();
  // A failed lookup lets the pod through untouched (unless abandon() answered meanwhile).
  auto storeFailed = [&](const std::string& what,
                         const std::string& why) -> std::optional<ReviewAnswer> {
    if (claim && !claim()) return std::nullopt;
    storeErrors_.inc();
    AdmissionDecision decision;
    decision.key = plan.key;
    decision.outcome = Failure{ErrorReason::kStoreUnavailable, what + " failed" + why};
    return finish(pending.request, decision, started, std::get<Failure>(decision.outcome).detail);
  };
  std::optional<store::CacheEntry> entry;
  const auto lookupStarted = Clock::now();
  try {
    entry =
        lookup_.lookup(config_.scope, plan.namespaceName, plan.key, plan.staleness.seconds, now);
    storeLatency_.observe(secondsSince(lookupStarted));
    storeAnswered_.store(true, std::memory_order_relaxed);
  } catch (const std::exception& error) {
    storeLatency_.observe(secondsSince(lookupStarted));
    return storeFailed("store lookup for key " + core::keyPreview(plan.key),
                       std::string(": ") + error.what());
  } catch (...) {
    storeLatency_.observe(secondsSince(lookupStarted));
    return storeFailed("store lookup for key " + core::keyPreview(plan.key), "");
  }

  // Audit mode: only a genuine miss (the store answered, no row) may fall back to a legacy row.
  bool fromLegacyRow = false;
  if (!entry && mayReuseLegacyRow(config_, plan)) {
    try {
      entry = lookup_.lookupLegacy(plan.legacyKey, plan.staleness.seconds, now);
      fromLegacyRow = entry.has_value();
    } catch (const std::exception& error) {
      return storeFailed("store lookup of a legacy row for key " + core::keyPreview(plan.legacyKey),
                         std::string(": ") + error.what());
    }
  }

  if (claim && !claim()) return std::nullopt;
  return answerFound(pending, std::move(entry), now, started, fromLegacyRow);
}

std::optional<ReviewAnswer> AdmissionHandler::completeFromMemory(const PendingLookup& pending,
                                                                 Clock::time_point started) {
  if (recentHits_ == nullptr || !recentHits_->enabled()) return std::nullopt;
  // Reading an offloaded template and creating a task result block: they need the lookup pool.
  if (pending.plan.templateOffloaded ||
      pending.plan.outputsDelivery == OutputsDelivery::kTaskResult) {
    return std::nullopt;
  }
  const auto& plan = pending.plan;
  const int64_t now = now_();
  auto entry = recentHits_->lookupRemembered(config_.scope, plan.namespaceName, plan.key,
                                             plan.staleness.seconds, now);
  if (!entry) return std::nullopt;
  return answerFound(pending, std::move(entry), now, started);
}

ReviewAnswer AdmissionHandler::answerFound(const PendingLookup& pending,
                                           std::optional<store::CacheEntry> entry, int64_t now,
                                           Clock::time_point started, bool fromLegacyRow) {
  const auto& plan = pending.plan;
  AdmissionDecision decision;
  decision.key = plan.key;
  decision.outputsDelivery = plan.outputsDelivery;
  decision.tagForRecording = plan.mayRecord;
  std::string detail;
  auto outcome = interpretLookup(entry);
  if (auto* found = std::get_if<Hit>(&outcome)) {
    found->legacyRow = fromLegacyRow;
    decision.outcome = std::move(*found);
    if (hitAnnotationsFit(pending.request.object, decision) == HitAnnotationsFit::kTooLarge) {
      // The rewritten pod would be refused: the step runs, and nothing is delivered or counted
      // as a hit for it.
      detail = "the recorded outputs do not fit in the pod's annotations, running the step";
      decision.outcome = Miss{};
    } else {
      try {
        const Hit& hit = std::get<Hit>(decision.outcome);
        if (delivery_) {
          delivery_->deliver(pending.request, plan, hit);
        } else if (plan.outputsDelivery == OutputsDelivery::kTaskResult) {
          throw std::runtime_error("no task-result delivery is configured");
        }
      } catch (const std::exception& error) {
        detail = std::string("outputs could not be delivered, running the step: ") + error.what();
        decision.outcome = Miss{};
      }
    }
  } else {
    auto& miss = std::get<Miss>(outcome);
    if (!miss.unreadableEntry.empty()) {
      unreadableEntries_.inc();
      detail = miss.unreadableEntry;
    }
    decision.outcome = std::move(miss);
  }
  // Only a miss tagged for recording carries a stamp: a hit never pays for the HMAC.
  if (std::holds_alternative<Miss>(decision.outcome) && decision.tagForRecording) {
    decision.admissionStamp = admissionStampOf(pending.request, plan.key, config_);
  }
  if (const auto* hit = std::get_if<Hit>(&decision.outcome)) {
    savedSeconds_.inc(static_cast<double>(hit->savedSeconds));
    if (hit->legacyRow) reportLegacyReuse(pending.request, *hit);
    // A dry run must not leave traces; the hit counter is one. A legacy row is never written to.
    if (!pending.request.dryRun && !hit->legacyRow) {
      try {
        lookup_.noteHit(hit->entryId, now);
      } catch (const std::exception& error) {
        spdlog::warn("could not note the hit on cache entry {}: {}", hit->entryId, error.what());
      }
    }
  }
  return finish(pending.request, decision, started, detail);
}

std::variant<ReviewAnswer, PendingLookup> AdmissionHandler::withOffloadedTemplate(
    const PendingLookup& pending, Clock::time_point started, const std::function<bool()>& claim,
    bool& abandoned) {
  AdmissionDecision decision;
  std::string argoTemplate;
  try {
    if (!delivery_) {
      throw std::runtime_error(
          "the template is offloaded to a ConfigMap and no Kubernetes API "
          "client is configured to read it");
    }
    argoTemplate = delivery_->readOffloadedTemplate(pending.plan.namespaceName,
                                                    pending.plan.podName, pending.plan.workflowUid);
  } catch (const std::exception& error) {
    decision.outcome = Failure{ErrorReason::kTemplateUnavailable, error.what()};
  }
  if (!std::holds_alternative<Failure>(decision.outcome)) {
    auto resolved = webhook::withOffloadedTemplate(pending.plan, argoTemplate, config_);
    if (auto* plan = std::get_if<LookupPlan>(&resolved)) {
      return PendingLookup{pending.request, std::move(*plan)};
    }
    decision.outcome = std::get<Failure>(std::move(resolved));
  }
  if (claim && !claim()) {
    abandoned = true;
    return ReviewAnswer{};
  }
  return finish(pending.request, decision, started, std::get<Failure>(decision.outcome).detail);
}

void AdmissionHandler::reportLegacyReuse(const AdmissionRequest& request, const Hit& hit) {
  legacyReuses_.inc();
  // The finding Kubeflow 2.18 reports for the same event; never the outputs.
  spdlog::warn(
      "security_audit control=legacy_cache mode=audit finding=ownership_unknown "
      "operation=cache_lookup disposition=reused namespace={} pod={} entry={} dry_run={}",
      core::logValue(request.namespaceName),
      request.name.empty() ? "<generated>" : core::logValue(request.name), hit.entryId,
      request.dryRun);
}

ReviewAnswer AdmissionHandler::abandon(const PendingLookup& pending, Clock::time_point started,
                                       std::string_view why) {
  storeErrors_.inc();
  AdmissionDecision decision;
  decision.key = pending.plan.key;
  decision.outcome = Failure{
      ErrorReason::kStoreUnavailable,
      "store lookup for key " + core::keyPreview(pending.plan.key) + " " + std::string(why)};
  return finish(pending.request, decision, started, std::get<Failure>(decision.outcome).detail);
}

ReviewAnswer AdmissionHandler::handle(std::string_view body) {
  const auto started = Clock::now();
  auto prepared = prepare(body, started);
  if (auto* answer = std::get_if<ReviewAnswer>(&prepared)) return std::move(*answer);
  return *complete(std::get<PendingLookup>(prepared), started);
}

bool AdmissionHandler::probeStore() {
  try {
    lookup_.lookup(store::CacheScope::kCluster, "", kProbeKey, core::kUnlimitedStaleness, now_());
    storeAnswered_.store(true, std::memory_order_relaxed);
    return true;
  } catch (const std::exception& error) {
    spdlog::warn("store readiness probe failed: {}", error.what());
    return false;
  }
}

ReviewAnswer AdmissionHandler::finish(const AdmissionRequest& request,
                                      const AdmissionDecision& decision, Clock::time_point started,
                                      std::string_view detail) {
  AdmissionResponse response;
  try {
    response.patch = buildPatch(request.object, decision, config_);
  } catch (const std::exception& error) {
    // Defensive: the patch builder only reads shapes the decision checked.
    spdlog::error("no patch for pod {}: {}", podRef(request), error.what());
    response.patch.reset();
  }
  const double took = secondsSince(started);
  static_assert(std::variant_size_v<decltype(decision.outcome)> == 4);
  const auto& outcomeMetrics = outcomeMetrics_[decision.outcome.index()];
  outcomeMetrics.answered->inc();
  outcomeMetrics.duration->observe(took);
  const double tookMs = took * 1000;
  if (const auto* skip = std::get_if<Skip>(&decision.outcome)) {
    metrics_
        .counter("kcache_admission_skips_total", "Pods let through untouched, by reason.",
                 {{"reason", std::string(toString(skip->reason))}})
        .inc();
    spdlog::debug("admission skipped pod={} uid={} reason={} {} took={:.2f}ms", podRef(request),
                  core::logValue(request.uid), toString(skip->reason), core::logValue(detail),
                  tookMs);
  } else if (const auto* failure = std::get_if<Failure>(&decision.outcome)) {
    metrics_
        .counter("kcache_admission_errors_total",
                 "Pods let through untouched because something went wrong, by reason.",
                 {{"reason", std::string(toString(failure->reason))}})
        .inc();
    if (const auto suppressed = warnings_.admit()) {
      spdlog::warn(
          "admission error pod={} uid={} reason={} allowed without patch: {} took={:.2f}ms{}",
          podRef(request), core::logValue(request.uid), toString(failure->reason),
          core::logValue(detail, 1024), tookMs, core::LogRateLimiter::suppressedNote(*suppressed));
    }
  } else if (const auto* hit = std::get_if<Hit>(&decision.outcome)) {
    spdlog::info("admission hit pod={} uid={} key={} entry={} saved={}s took={:.2f}ms",
                 podRef(request), core::logValue(request.uid), core::keyPreview(decision.key),
                 hit->entryId, hit->savedSeconds, tookMs);
  } else {
    spdlog::info("admission miss pod={} uid={} key={}{}{} took={:.2f}ms", podRef(request),
                 core::logValue(request.uid), core::keyPreview(decision.key),
                 detail.empty() ? "" : " note=", core::logValue(detail, 1024), tookMs);
  }
  return ReviewAnswer{200, encodeAdmissionResponse(request, response)};
}

}  // namespace kcache::webhook
