#include "core/staleness.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>

namespace kcache::core {
namespace {

// Hours per calendar unit, as github.com/peterhellberg/duration (used by Kubeflow) defines them.
constexpr double kHoursPerYear = 8765.81;
constexpr double kHoursPerMonth = 730.4841667;
constexpr double kHoursPerWeek = 168;
constexpr double kHoursPerDay = 24;

constexpr int64_t kNanosPerSecond = 1'000'000'000;
constexpr int64_t kNanosPerMinute = 60 * kNanosPerSecond;
constexpr int64_t kNanosPerHour = 60 * kNanosPerMinute;

struct UnitSpec {
  char designator;
  double factor;         // multiplies the value before it is printed
  int64_t nanosPerUnit;  // the unit time.ParseDuration reads the printed value in
};

constexpr UnitSpec kDateUnits[] = {{'Y', kHoursPerYear, kNanosPerHour},
                                   {'M', kHoursPerMonth, kNanosPerHour},
                                   {'W', kHoursPerWeek, kNanosPerHour},
                                   {'D', kHoursPerDay, kNanosPerHour}};
constexpr UnitSpec kTimeUnits[] = {
    {'H', 1, kNanosPerHour}, {'M', 1, kNanosPerMinute}, {'S', 1, kNanosPerSecond}};

struct Overflow {};

// strconv.ParseFloat on [0-9.]+: at least one digit and at most one point.
std::optional<double> parseUnitValue(std::string_view digits) {
  size_t points = 0;
  for (char c : digits) points += c == '.';
  if (points > 1 || digits.size() == points) return std::nullopt;
  double value = 0;
  const auto result = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (result.ec == std::errc::result_out_of_range) return std::numeric_limits<double>::infinity();
  if (result.ec != std::errc() || result.ptr != digits.data() + digits.size()) return std::nullopt;
  return value;
}

// Kubeflow prints value*factor with %f and hands it to time.ParseDuration; this reproduces that
// arithmetic (including its float step for the fraction). Returns nanoseconds, or nullopt when the
// value exceeds what a Go duration holds.
std::optional<__int128> unitNanoseconds(double value, const UnitSpec& unit) {
  const double scaled = value * unit.factor;
  if (!(scaled < 1e12)) return std::nullopt;  // beyond any duration in every unit
  char printed[64];
  std::snprintf(printed, sizeof printed, "%f", scaled);
  const std::string_view text(printed);
  const size_t point = text.find('.');
  __int128 integer = 0;
  for (size_t i = 0; i < point; ++i) integer = integer * 10 + (text[i] - '0');
  int64_t fraction = 0;
  for (size_t i = point + 1; i < text.size(); ++i) fraction = fraction * 10 + (text[i] - '0');
  const __int128 nanos = integer * unit.nanosPerUnit +
                         static_cast<uint64_t>(static_cast<double>(fraction) *
                                               (static_cast<double>(unit.nanosPerUnit) / 1e6));
  if (nanos > std::numeric_limits<int64_t>::max()) return std::nullopt;
  return nanos;
}

}  // namespace

std::optional<int64_t> parseStalenessSeconds(std::string_view text) {
  if (text.empty() || text.back() == 'T') return std::nullopt;
  size_t pos = 0;
  const bool negative = text[0] == '-';
  if (negative) ++pos;
  if (pos >= text.size() || text[pos] != 'P') return std::nullopt;
  ++pos;
  if (pos == text.size()) return std::nullopt;  // "P" and "-P" name no duration

  __int128 totalNanos = 0;
  bool saturated = false;
  auto readUnits = [&](const UnitSpec* units, size_t unitCount) -> bool {
    size_t nextUnit = 0;
    while (pos < text.size() && text[pos] != 'T') {
      const size_t start = pos;
      while (pos < text.size() && ((text[pos] >= '0' && text[pos] <= '9') || text[pos] == '.'))
        ++pos;
      if (pos == start || pos == text.size()) return false;
      const char designator = text[pos];
      while (nextUnit < unitCount && units[nextUnit].designator != designator) ++nextUnit;
      if (nextUnit == unitCount) return false;  // unknown, repeated or out of order
      const auto value = parseUnitValue(text.substr(start, pos - start));
      if (!value) return false;
      if (const auto nanos = unitNanoseconds(*value, units[nextUnit])) {
        totalNanos += *nanos;
      } else {
        saturated = true;
      }
      ++nextUnit;
      ++pos;
    }
    return true;
  };

  if (!readUnits(kDateUnits, std::size(kDateUnits))) return std::nullopt;
  if (pos < text.size()) {
    ++pos;  // 'T'; a trailing one was rejected above
    if (!readUnits(kTimeUnits, std::size(kTimeUnits))) return std::nullopt;
    if (pos < text.size()) return std::nullopt;  // a second 'T'
  }
  if (saturated || totalNanos > std::numeric_limits<int64_t>::max()) {
    return negative ? -kMaxDurationSeconds : kMaxDurationSeconds;
  }
  const auto seconds = static_cast<int64_t>(totalNanos / kNanosPerSecond);
  return negative ? -seconds : seconds;
}

std::string_view toString(StalenessSource source) {
  switch (source) {
    case StalenessSource::kAnnotation:
      return "annotation";
    case StalenessSource::kDefault:
      return "DEFAULT_CACHE_STALENESS";
    case StalenessSource::kMaximum:
      return "MAXIMUM_CACHE_STALENESS";
    case StalenessSource::kNone:
      return "none (no limit)";
  }
  return "unknown";
}

namespace {
std::optional<int64_t> parseSetting(std::optional<std::string_view> raw) {
  if (!raw || raw->empty()) return std::nullopt;
  return parseStalenessSeconds(*raw);
}
}  // namespace

StalenessPolicy::StalenessPolicy(std::optional<std::string_view> defaultStaleness,
                                 std::optional<std::string_view> maximumStaleness)
    : default_(parseSetting(defaultStaleness)), maximum_(parseSetting(maximumStaleness)) {}

PodStaleness StalenessPolicy::forPod(std::optional<std::string_view> annotation) const {
  PodStaleness result{kUnlimitedStaleness, StalenessSource::kNone};
  const auto fromAnnotation = parseSetting(annotation);
  if (fromAnnotation && *fromAnnotation >= 0) {
    result = {*fromAnnotation, StalenessSource::kAnnotation};
  } else if (default_ && *default_ >= 0) {
    result = {*default_, StalenessSource::kDefault};
  }
  if (maximum_ && *maximum_ >= 0 && (result.seconds < 0 || result.seconds > *maximum_)) {
    result = {*maximum_, StalenessSource::kMaximum};
  }
  return result;
}

int64_t StalenessPolicy::forRecording(std::optional<std::string_view> annotation) const {
  int64_t seconds = parseSetting(annotation).value_or(kUnlimitedStaleness);
  if (seconds < 0) seconds = kUnlimitedStaleness;
  if (maximum_ && *maximum_ >= 0 && seconds > *maximum_) seconds = *maximum_;
  return seconds;
}

bool StalenessPolicy::isFresh(int64_t ageSeconds, int64_t podStaleness, int64_t entryStaleness) {
  if (podStaleness == 0) return false;  // reuse disabled for this pod
  const bool freshForEntry = entryStaleness < 0 || ageSeconds <= entryStaleness;
  const bool freshForPod = podStaleness < 0 || ageSeconds <= podStaleness;
  return freshForEntry && freshForPod;
}

}  // namespace kcache::core
