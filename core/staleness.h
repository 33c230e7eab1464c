#pragma once
// Max-staleness rules (docs/admission.md, "Staleness").
// All durations are whole seconds; a negative value means "no limit".
#include <cstdint>
#include <optional>
#include <string_view>

namespace kcache::core {

inline constexpr int64_t kUnlimitedStaleness = -1;
// The largest duration Go can hold, in whole seconds: values beyond it saturate here.
inline constexpr int64_t kMaxDurationSeconds = 9223372036;

// Parses an ISO-8601 duration the way Kubeflow's stalenessToSeconds does, except that a unit
// value that is not a number makes the string invalid, "-P" is invalid like "P", and a value
// beyond the largest duration saturates instead of being dropped or wrapping.
// Returns nullopt for an invalid string.
std::optional<int64_t> parseStalenessSeconds(std::string_view iso8601);

// Where the staleness that applies to a pod came from (for logs and `cachectl explain`).
enum class StalenessSource { kAnnotation, kDefault, kMaximum, kNone };
std::string_view toString(StalenessSource source);

struct PodStaleness {
  int64_t seconds;  // 0: reuse disabled; negative: no limit
  StalenessSource source;
};

// Combines the pod annotation, DEFAULT_CACHE_STALENESS and MAXIMUM_CACHE_STALENESS.
// Values are the raw strings; an absent or empty or invalid one is treated as not set.
class StalenessPolicy {
 public:
  StalenessPolicy() = default;
  StalenessPolicy(std::optional<std::string_view> defaultStaleness,
                  std::optional<std::string_view> maximumStaleness);

  // The staleness a lookup for this pod uses: the annotation when it is a valid non-negative
  // duration, else the default; the maximum caps both, including "no limit" (kcache deletes
  // nothing on the admission path, so the cap must be applied here rather than by a cleanup).
  PodStaleness forPod(std::optional<std::string_view> annotation) const;

  // The staleness an entry is recorded with: the annotation (ignoring the default, as Kubeflow
  // does) capped by the maximum; no annotation or a negative one records "no limit".
  int64_t forRecording(std::optional<std::string_view> annotation) const;

  // Whether an entry of this age is fresh for a pod: both the pod's staleness and the one the
  // entry was recorded with must allow it (boundary inclusive, as in Kubeflow).
  static bool isFresh(int64_t ageSeconds, int64_t podStaleness, int64_t entryStaleness);

  std::optional<int64_t> defaultSeconds() const { return default_; }
  std::optional<int64_t> maximumSeconds() const { return maximum_; }

 private:
  std::optional<int64_t> default_;
  std::optional<int64_t> maximum_;
};

}  // namespace kcache::core
