#pragma once
// The admission decision (DESIGN.md section 5) as pure functions: which pods are skipped, what is
// looked up, and what a lookup result means. No I/O: the caller performs the store lookup between
// planLookup and decide.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include <nlohmann/json.hpp>

#include "core/execution_output.h"
#include "core/pod_contract.h"
#include "core/staleness.h"
#include "store/cache_store.h"
#include "webhook/admission_review.h"

namespace kcache::webhook {

// What the environment and flags say about admission (fixed for the process lifetime).
struct AdmissionConfig {
  store::CacheScope scope = store::CacheScope::kNamespace;
  core::StalenessPolicy staleness;
  std::string cacheImage = std::string(core::contract::kDefaultCacheImage);
  bool keepNodeRestrictions = false;  // CACHE_NODE_RESTRICTIONS
};

// Why a pod is let through untouched because caching does not apply to it.
enum class SkipReason {
  kNotPodCreate,       // another resource, a subresource or an operation other than CREATE
  kSystemNamespace,    // kube-system, kube-public
  kCacheNotEnabled,    // no cache_enabled=true label
  kTfx,                // TFX pods (and pods without containers, as Kubeflow treats them)
  kKfpV2,              // v2_component annotation
  kNoArgoTemplate,     // no ARGO_TEMPLATE env value
  kStalenessDisabled,  // staleness resolves to 0
};
std::string_view toString(SkipReason reason);

// Why a pod is let through untouched because something about it is not what kcache expects.
// Counted as errors: they point at a bug or an unexpected cluster setup, never at a user choice.
enum class ErrorReason {
  kUnexpectedObject,  // request.object is not a pod-shaped object
  kBadTemplate,       // ARGO_TEMPLATE from which no key can be computed
  kStoreUnavailable,  // the lookup failed or timed out
};
std::string_view toString(ErrorReason reason);

struct Skip {
  SkipReason reason;
  std::string detail;  // for the log line
};
struct Failure {
  ErrorReason reason;
  std::string detail;
};

// Everything needed to query the store for one pod.
struct LookupPlan {
  std::string key;  // 64 hex characters
  std::string namespaceName;
  std::string podName;
  std::string templateContainer;  // where ARGO_TEMPLATE was found (for logs)
  core::PodStaleness staleness;
};

using Plan = std::variant<Skip, Failure, LookupPlan>;

// Applies the skip rules in order and computes the key and the staleness.
Plan planLookup(const AdmissionRequest& request, const AdmissionConfig& config);

struct Miss {
  // Set when an entry was found but its ExecutionOutput cannot be read: the pod then runs and is
  // recorded again (restoring "" as Kubeflow does would fail the step in Argo).
  std::string unreadableEntry;
};
struct Hit {
  int64_t entryId = 0;
  core::StepOutputs outputs;
  int64_t savedSeconds = 0;  // the recorded run duration: compute time the hit saves
};
using LookupOutcome = std::variant<Miss, Hit>;

// What a lookup result means for the pod. `entry` is what the store returned.
LookupOutcome interpretLookup(const std::optional<store::CacheEntry>& entry);

// The final decision for one review.
struct AdmissionDecision {
  std::variant<Skip, Failure, Miss, Hit> outcome;
  std::string key;  // set for Miss and Hit
};

std::string_view outcomeLabel(const AdmissionDecision& decision);  // hit, miss, skipped, error

}  // namespace kcache::webhook
