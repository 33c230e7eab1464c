#include "webhook/config.h"

#include <cstdlib>

#include "core/pod_contract.h"
#include "core/staleness.h"

namespace kcache::webhook {

namespace contract = core::contract;

std::optional<std::string> readProcessEnvironment(std::string_view name) {
  const char* value = std::getenv(std::string(name).c_str());
  if (value == nullptr) return std::nullopt;
  return std::string(value);
}

std::optional<bool> parseGoBool(std::string_view text) {
  if (text == "1" || text == "t" || text == "T" || text == "TRUE" || text == "true" ||
      text == "True") {
    return true;
  }
  if (text == "0" || text == "f" || text == "F" || text == "FALSE" || text == "false" ||
      text == "False") {
    return false;
  }
  return std::nullopt;
}

std::optional<store::CacheScope> parseCacheScope(std::string_view text) {
  if (text == "namespace") return store::CacheScope::kNamespace;
  if (text == "cluster") return store::CacheScope::kCluster;
  return std::nullopt;
}

std::string_view toString(store::CacheScope scope) {
  return scope == store::CacheScope::kCluster ? "cluster" : "namespace";
}

std::optional<ArgoOutputsMode> parseArgoOutputsMode(std::string_view text) {
  for (const auto mode :
       {ArgoOutputsMode::kAuto, ArgoOutputsMode::kAnnotation, ArgoOutputsMode::kTaskResult}) {
    if (text == toString(mode)) return mode;
  }
  return std::nullopt;
}

LoadedConfig loadAdmissionConfig(const EnvironmentReader& environment, store::CacheScope scope) {
  LoadedConfig loaded;
  loaded.config.scope = scope;

  auto readStaleness = [&](std::string_view name) -> std::optional<std::string> {
    auto value = environment(name);
    if (value && !value->empty() && !core::parseStalenessSeconds(*value)) {
      loaded.warnings.push_back(std::string(name) + "=\"" + *value +
                                "\" is not an ISO-8601 duration; treated as not set");
    }
    return value;
  };
  const auto defaultStaleness = readStaleness(contract::kDefaultCacheStalenessEnv);
  const auto maximumStaleness = readStaleness(contract::kMaximumCacheStalenessEnv);
  loaded.config.staleness = core::StalenessPolicy(
      defaultStaleness ? std::optional<std::string_view>(*defaultStaleness) : std::nullopt,
      maximumStaleness ? std::optional<std::string_view>(*maximumStaleness) : std::nullopt);

  if (auto image = environment(contract::kCacheImageEnv)) {
    if (image->empty()) {
      loaded.warnings.push_back(std::string(contract::kCacheImageEnv) + " is empty; using " +
                                std::string(contract::kDefaultCacheImage));
    } else {
      loaded.config.cacheImage = *image;
    }
  }
  if (auto restrictions = environment(contract::kCacheNodeRestrictionsEnv)) {
    if (auto parsed = parseGoBool(*restrictions)) {
      loaded.config.keepNodeRestrictions = *parsed;
    } else if (!restrictions->empty()) {
      loaded.warnings.push_back(std::string(contract::kCacheNodeRestrictionsEnv) + "=\"" +
                                *restrictions +
                                "\" is not a boolean; cached pods lose affinity and nodeSelector");
    }
  }
  return loaded;
}

}  // namespace kcache::webhook
