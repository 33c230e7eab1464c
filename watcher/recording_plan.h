#pragma once
// What the watcher records for a pod, decided without I/O (KFP-SEMANTICS.md section 5, with
// kcache's additions: namespace, pod name, run duration).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/expected.h"
#include "core/staleness.h"
#include "store/cache_store.h"

namespace kcache::watcher {

struct PodIdentity {
  std::string namespaceName;
  std::string name;
  std::string uid;
};

struct RecordingPlan {
  PodIdentity pod;
  store::NewEntry entry;
};

enum class SkipReason {
  kNotAPod,          // no metadata.name / namespace
  kNotCompleted,     // not completed=true with phase Succeeded
  kAlreadyLabelled,  // cache_id is set: recorded before, or a cache hit
  kNoKey,            // no execution key annotation
  kInvalidKey,       // the annotation is not 64 lower-case hex characters
};
std::string_view toString(SkipReason reason);

PodIdentity identityOf(const nlohmann::json& pod);

// How the watcher tells pods apart: the uid (a pod re-created under the same name is another
// pod), namespace/name only when a pod has no uid.
std::string trackingId(const PodIdentity& pod);

// The cache_id label value, nullopt when the label is absent.
std::optional<std::string> cacheIdLabel(const nlohmann::json& pod);

// Whether `pod` should be recorded now, and with what. `nowInSec` is the recording time.
core::Expected<RecordingPlan, SkipReason> planRecording(const nlohmann::json& pod,
                                                        const core::StalenessPolicy& staleness,
                                                        int64_t nowInSec);

// Seconds between the main container's state.terminated startedAt and finishedAt (else the
// first terminated container's); 0 when unknown.
int64_t runDurationSeconds(const nlohmann::json& pod);

// Parses an RFC 3339 timestamp ("2024-05-01T10:00:00Z", fractions and offsets allowed) to Unix
// seconds.
std::optional<int64_t> parseRfc3339(std::string_view text);

// The merge patch that sets only the cache_id label. The uid makes the API server refuse it
// (409) when the pod was replaced by another one of the same name.
nlohmann::json cacheIdPatch(const PodIdentity& pod, int64_t entryId);

}  // namespace kcache::watcher
