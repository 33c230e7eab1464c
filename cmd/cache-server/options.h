#pragma once
// cache-server's flags (docs/operations.md, "Flags"). Kubeflow Pipelines' spellings (--db_host,
// ...) are accepted as they are, also with Go's single dash (-db_host=...), so the arguments of
// Kubeflow's own cache-server Deployment start kcache unchanged; the kebab-case spellings are
// documented. Every flag can also come from the environment variable named in --help (an empty
// variable is an unset one). An empty `--flag=` is the empty string, as Go reads it; flags for
// which that means nothing (ports, numbers, choices, files) refuse it
// (cmd/common/go_style_flags.h).
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cmd/common/database_options.h"
#include "cmd/common/legacy_cache_mode.h"

namespace kcache::cache_server {

struct Options {
  cmd::DatabaseOptions database;
  std::size_t dbPoolSize = 4;
  std::string namespaceToWatch;
  std::string listenAddress = "0.0.0.0";
  uint16_t listenPort = 8443;
  uint16_t httpPort = 8080;
  std::filesystem::path tlsDir = "/etc/webhook/certs";
  std::string tlsCertFilename = "cert.pem";
  std::string tlsKeyFilename = "key.pem";
  std::string cacheScope = "namespace";
  int64_t lookupTimeoutMs = 500;
  std::size_t ioThreads = 0;
  std::size_t lookupThreads = 8;
  std::size_t maxBodyBytes = 4 * 1024 * 1024;
  std::size_t maxConnections = 512;
  std::string clientCaFile;
  int64_t tlsReloadIntervalMs = 5000;
  bool watch = true;
  bool watchTaskResults = true;         // Argo's workflowtaskresults, joined to pods by node id
  int64_t taskResultWaitSeconds = 120;  // a ready pod's wait for its task result
  std::string kubeconfig;
  std::string argoOutputs = "auto";
  // 500 ms lookup + up to three API calls of 1 s stay under the registration's 5 s timeout.
  int64_t argoApiTimeoutMs = 1000;
  int64_t hitCacheTtlMs = 2000;  // 0: every admission asks the store
  int64_t gcIntervalSeconds = 3600;
  int64_t gcMaxEntries = 0;  // 0: no limit on the number of entries
  // --- tenancy (issue 13) ---
  // Comma-separated namespaces whose steps may be recorded into the shared cache; required with
  // --cache-scope=cluster ("*": every namespace, deliberately), ignored in namespace scope.
  std::string clusterScopeWriters;
  // Comma-separated user names (request.userInfo.username) whose pods may be tagged for recording
  // at admission; empty: any creator.
  std::string trustedCreators;
  // --- end tenancy ---
  std::string logFormat = "text";
  std::string logLevel = "info";
  // --- Least privilege, secrets, bounds (issue 13) ---
  bool readOffloadedTemplates = false;  // ConfigMap reads need RBAC; off by default
  std::size_t maxTaskResultBytes = std::size_t{64} << 20;  // the watcher's task results in memory
  // --- Admission stamps (issue 13: record only what kcache admitted) ---
  // The secret the webhook stamps the pods it tags with and the watcher verifies; "": one kept
  // in the database (cmd/cache-server/stamp_keys.h).
  std::string stampSecretFile;
  std::string previousStampSecretFile;  // during a rotation: still verifies, never signs
  // Not a flag: KFP_SECURITY_LEGACY_CACHE_MODE, read by readEnvironmentOnlySettings.
  cmd::LegacyCacheMode legacyCacheMode = cmd::LegacyCacheMode::kEnforce;
};

// Registers every flag on `app`, writing into `options`.
void addOptions(CLI::App& app, Options& options);

// A relative file name is looked up in --tls-dir; an absolute path is used as it is.
std::filesystem::path resolveTlsFile(const std::filesystem::path& tlsDir,
                                     const std::string& fileName);

// The settings Kubeflow reads from the environment only (KFP_SECURITY_LEGACY_CACHE_MODE). Throws
// std::invalid_argument naming the variable and what it accepts; run before the store is opened.
void readEnvironmentOnlySettings(Options& options);

// Throws std::invalid_argument for values the flags' types cannot express (driver, scope, ...),
// and for a cluster scope without --cluster-scope-writers.
void validate(const Options& options);

// Warnings about flags that are valid but have no effect (for the start-up log).
std::vector<std::string> ineffectiveSettings(const Options& options);

}  // namespace kcache::cache_server
