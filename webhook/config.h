#pragma once
// The admission settings Kubeflow Pipelines reads from the environment (DEFAULT_CACHE_STALENESS,
// MAXIMUM_CACHE_STALENESS, CACHE_IMAGE, CACHE_NODE_RESTRICTIONS), parsed once at start-up.
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "webhook/decision.h"

namespace kcache::webhook {

using EnvironmentReader = std::function<std::optional<std::string>(std::string_view name)>;

// Reads the process environment.
std::optional<std::string> readProcessEnvironment(std::string_view name);

// Go's strconv.ParseBool: 1 t T TRUE true True / 0 f F FALSE false False; nullopt otherwise.
std::optional<bool> parseGoBool(std::string_view text);

// "namespace" or "cluster"; nullopt otherwise.
std::optional<store::CacheScope> parseCacheScope(std::string_view text);
std::string_view toString(store::CacheScope scope);

// "auto", "annotation" or "taskresult" (--argo-outputs); nullopt otherwise.
std::optional<ArgoOutputsMode> parseArgoOutputsMode(std::string_view text);

struct LoadedConfig {
  AdmissionConfig config;
  // Values that were ignored, each with what was used instead (logged once at start-up). Unlike
  // Kubeflow, a bad CACHE_NODE_RESTRICTIONS never denies pods, and an empty CACHE_IMAGE never
  // produces a pod without an image.
  std::vector<std::string> warnings;
};

// KFP_SECURITY_LEGACY_CACHE_MODE is not read here: the binaries parse it once (cmd/common) and
// set config.legacyCacheMode.
LoadedConfig loadAdmissionConfig(const EnvironmentReader& environment, store::CacheScope scope);

}  // namespace kcache::webhook
