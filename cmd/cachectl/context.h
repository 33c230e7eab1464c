#pragma once
// What every cachectl command shares: the database flags (the same as cache-server's), opening
// the store, the cache scope and staleness settings, and formatting for people.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <CLI/CLI.hpp>

#include "cmd/common/database_options.h"
#include "core/staleness.h"
#include "store/cache_store.h"

namespace kcache::cachectl {

struct GlobalOptions {
  cmd::DatabaseOptions database;
  std::string cacheScope = "namespace";
  int64_t timeoutMs = 5000;
};

// Registers the database flags, --cache-scope and --timeout-ms on the top-level app.
void addGlobalOptions(CLI::App& app, GlobalOptions& options);

// Opens the store (bringing its schema up to date, as cache-server does). Failures become a
// UsageError naming the database and what to check.
std::unique_ptr<store::CacheStore> openStore(const GlobalOptions& options);

store::CacheScope cacheScope(const GlobalOptions& options);

// DEFAULT_CACHE_STALENESS and MAXIMUM_CACHE_STALENESS from the environment, as the server reads
// them.
core::StalenessPolicy stalenessFromEnvironment();
std::optional<std::string> environmentValue(const char* name);

int64_t nowInSeconds();

// An ISO-8601 duration given to a flag (P7D, PT12H): whole seconds, never negative.
int64_t parseAge(std::string_view flag, std::string_view text);

std::string formatTime(int64_t unixSeconds);   // 2026-11-22 04:40:00Z
std::string formatDuration(int64_t seconds);   // 3d 4h 5m 6s
std::string formatStaleness(int64_t seconds);  // "no limit" for negative values
std::string formatBytes(int64_t bytes);        // 1.5 MiB

}  // namespace kcache::cachectl
