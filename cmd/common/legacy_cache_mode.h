#pragma once
// KFP_SECURITY_LEGACY_CACHE_MODE, read from the environment only, as Kubeflow Pipelines 2.18
// reads it. From 2.18 an entry is bound to the namespace that recorded it; rows written before
// (no namespace) are not reused (enforce). `audit` lets a namespace-scope miss fall back to such a
// legacy row and reports each reuse; Kubeflow plans to drop audit mode in 3.0.
#include <optional>
#include <string_view>

#include "store/cache_store.h"

namespace kcache::cmd {

// The store's enum (what the admission and the lookups act on), parsed here once for both binaries.
using LegacyCacheMode = store::LegacyCacheMode;

inline constexpr const char* kLegacyCacheModeVariable = "KFP_SECURITY_LEGACY_CACHE_MODE";

// nullopt (the variable unset) and "" are enforce; "enforce" and "audit" are themselves; any other
// value throws std::invalid_argument naming the variable, the value and what is accepted.
LegacyCacheMode parseLegacyCacheMode(std::optional<std::string_view> value);

// parseLegacyCacheMode of the process environment.
LegacyCacheMode legacyCacheModeFromEnvironment();

std::string_view toString(LegacyCacheMode mode);  // "enforce" or "audit"

}  // namespace kcache::cmd
