#include "cmd/common/legacy_cache_mode.h"

#include <cstdlib>
#include <stdexcept>
#include <string>

namespace kcache::cmd {

LegacyCacheMode parseLegacyCacheMode(std::optional<std::string_view> value) {
  if (!value || value->empty() || *value == "enforce") return LegacyCacheMode::kEnforce;
  if (*value == "audit") return LegacyCacheMode::kAudit;
  // Refusing, rather than falling back to enforce, keeps a typo from going unnoticed.
  throw std::invalid_argument(std::string(kLegacyCacheModeVariable) + "=\"" + std::string(*value) +
                              "\" is not a legacy cache mode: expected enforce or audit (unset or "
                              "empty: enforce)");
}

LegacyCacheMode legacyCacheModeFromEnvironment() {
  const char* value = std::getenv(kLegacyCacheModeVariable);
  return parseLegacyCacheMode(value == nullptr ? std::nullopt
                                               : std::optional<std::string_view>(value));
}

std::string_view toString(LegacyCacheMode mode) {
  return mode == LegacyCacheMode::kAudit ? "audit" : "enforce";
}

}  // namespace kcache::cmd
