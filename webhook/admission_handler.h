#pragma once
// One admission review from body to answer: decode, plan, look up, decide, patch, encode; with
// the metrics and the log line. The blocking store lookup is separated (prepare / complete) so
// the server can run it off its I/O threads and answer on its own if it takes too long.
#include <array>
#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "core/logging.h"
#include "core/metrics.h"
#include "store/cache_store.h"
#include "store/lookup_cache.h"
#include "webhook/admission_review.h"
#include "webhook/decision.h"
#include "webhook/output_delivery.h"
#include "webhook/outputs_mode_log.h"

namespace kcache::webhook {

// An answer ready to send.
struct ReviewAnswer {
  int httpStatus = 200;  // 200, or 400 for a review that cannot be decoded
  std::string body;      // the AdmissionReview, or the error message for 400
};

// A review that needs a store lookup before it can be answered.
struct PendingLookup {
  AdmissionRequest request;
  LookupPlan plan;
};

class AdmissionHandler {
 public:
  using Clock = std::chrono::steady_clock;
  using WallClock = std::function<int64_t()>;  // seconds since the epoch

  AdmissionHandler(AdmissionConfig config, store::CacheLookup& lookup,
                   core::MetricsRegistry& metrics, OutputDelivery* delivery = nullptr,
                   WallClock now = {});

  // Cheap and non-blocking: decodes the review and applies the skip rules.
  std::variant<ReviewAnswer, PendingLookup> prepare(std::string_view body,
                                                    Clock::time_point started);
  // Blocking: queries the store (bounded by the store's own deadline) and answers.
  // `claim`, when given, is called once the lookup returned; if it returns false the review was
  // already answered by abandon() and nothing more happens (no metrics, no hit noted): nullopt.
  std::optional<ReviewAnswer> complete(const PendingLookup& pending, Clock::time_point started,
                                       const std::function<bool()>& claim = {});
  // Non-blocking: the answer when the lookup is a store::RecentHitCache that remembers a fresh
  // entry for this review (a recent hit), so the I/O thread can answer without a hand-off to the
  // lookup pool; nullopt means "call complete()".
  std::optional<ReviewAnswer> completeFromMemory(const PendingLookup& pending,
                                                 Clock::time_point started);
  // The answer when the lookup did not finish in time: allowed, untouched, counted as an error.
  ReviewAnswer abandon(const PendingLookup& pending, Clock::time_point started,
                       std::string_view why);

  // prepare + complete in the calling thread.
  ReviewAnswer handle(std::string_view body);

  // True once a lookup has succeeded (readiness).
  bool storeAnswered() const { return storeAnswered_.load(std::memory_order_relaxed); }
  // A lookup of a key no entry can have, to learn whether the store answers.
  bool probeStore();

  const AdmissionConfig& config() const { return config_; }

 private:
  // Everything after a lookup that answered: hit (delivered and noted) or miss.
  ReviewAnswer answerFound(const PendingLookup& pending, std::optional<store::CacheEntry> entry,
                           int64_t now, Clock::time_point started, bool fromLegacyRow = false);
  // Counts and logs an audit-mode reuse of a namespace-less row (ownership unknown).
  void reportLegacyReuse(const AdmissionRequest& request, const Hit& hit);
  ReviewAnswer finish(const AdmissionRequest& request, const AdmissionDecision& decision,
                      Clock::time_point started, std::string_view detail);
  // The plan with the key of the template Argo offloaded to the pod's ConfigMap, or the answer
  // (allowed, untouched) when it cannot be read or gives no key.
  std::variant<ReviewAnswer, PendingLookup> withOffloadedTemplate(
      const PendingLookup& pending, Clock::time_point started, const std::function<bool()>& claim,
      bool& abandoned);

  AdmissionConfig config_;
  store::CacheLookup& lookup_;
  store::RecentHitCache* recentHits_;  // lookup_ itself when it is one, else null
  core::MetricsRegistry& metrics_;
  OutputDelivery* delivery_;
  WallClock now_;
  std::atomic<bool> storeAnswered_{false};
  OutputsModeLog outputsModes_;

  // Per outcome, in the order of AdmissionDecision::outcome's alternatives (skipped, error, miss,
  // hit): looked up once here rather than by name and labels on every answer.
  struct OutcomeMetrics {
    core::Counter* answered = nullptr;
    core::Histogram* duration = nullptr;
  };
  std::array<OutcomeMetrics, 4> outcomeMetrics_;
  core::Histogram& storeLatency_;
  core::Counter& storeErrors_;
  core::Counter& savedSeconds_;
  core::Counter& malformedReviews_;
  core::Counter& unreadableEntries_;
  core::Counter& legacyReuses_;
  // Warnings any caller of /mutate can cause at will (malformed reviews, errors): rate-limited.
  core::LogRateLimiter warnings_{5, std::chrono::seconds(10)};
};

}  // namespace kcache::webhook
