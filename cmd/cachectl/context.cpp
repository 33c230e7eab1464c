#include "cmd/cachectl/context.h"

#include <cstdlib>
#include <ctime>
#include <stdexcept>

#include "cmd/cachectl/input_files.h"
#include "cmd/common/go_style_flags.h"
#include "store/dsn.h"

namespace kcache::cachectl {

void addGlobalOptions(CLI::App& app, GlobalOptions& options) {
  cmd::addDatabaseOptions(app, options.database);
  app.add_option("--cache-scope", options.cacheScope,
                 "namespace: entries are reused only in the namespace that recorded them "
                 "(default); cluster: shared across namespaces, as Kubeflow Pipelines does")
      ->check(cmd::nonEmpty("namespace or cluster"))
      ->envname("KCACHE_CACHE_SCOPE")
      ->check(CLI::IsMember({"namespace", "cluster"}))
      ->capture_default_str();
  app.add_option("--timeout-ms", options.timeoutMs, "Deadline of each database request")
      ->check(cmd::nonEmpty("a number of milliseconds 1-3600000"))
      ->check(CLI::Range(int64_t{1}, int64_t{3'600'000}))
      ->capture_default_str();
}

std::unique_ptr<store::CacheStore> openStore(const GlobalOptions& options) {
  std::string dsn;
  try {
    cmd::validateDatabaseOptions(options.database);
    dsn = store::buildDsn(options.database.flags);
  } catch (const std::invalid_argument& error) {
    throw UsageError(error.what());
  }
  store::StoreOptions storeOptions;
  storeOptions.dsn = dsn;
  storeOptions.poolSize = 1;
  storeOptions.lookupTimeout = std::chrono::milliseconds(options.timeoutMs);
  storeOptions.writeTimeout = std::chrono::milliseconds(options.timeoutMs);
  // `cachectl record` follows the server's rule: a fresh entry stays, freshness capped by
  // MAXIMUM_CACHE_STALENESS.
  storeOptions.maximumStalenessSeconds =
      stalenessFromEnvironment().maximumSeconds().value_or(core::kUnlimitedStaleness);
  try {
    return std::make_unique<store::CacheStore>(std::move(storeOptions));
  } catch (const std::exception& error) {
    throw UsageError("cannot open the cache database " + store::describeDsn(dsn) + ": " +
                     error.what() +
                     " (check --db-host, --db-port, --db-name, --db-user and the DBCONFIG_* "
                     "environment variables)");
  }
}

store::CacheScope cacheScope(const GlobalOptions& options) {
  return options.cacheScope == "cluster" ? store::CacheScope::kCluster
                                         : store::CacheScope::kNamespace;
}

std::optional<std::string> environmentValue(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr) return std::nullopt;
  return std::string(value);
}

core::StalenessPolicy stalenessFromEnvironment() {
  const auto defaultValue = environmentValue("DEFAULT_CACHE_STALENESS");
  const auto maximumValue = environmentValue("MAXIMUM_CACHE_STALENESS");
  return core::StalenessPolicy(
      defaultValue ? std::optional<std::string_view>(*defaultValue) : std::nullopt,
      maximumValue ? std::optional<std::string_view>(*maximumValue) : std::nullopt);
}

int64_t nowInSeconds() {
  return static_cast<int64_t>(std::time(nullptr));
}

int64_t parseAge(std::string_view flag, std::string_view text) {
  const auto seconds = core::parseStalenessSeconds(text);
  if (!seconds || *seconds < 0) {
    throw UsageError(std::string(flag) + "=" + std::string(text) +
                     " is not an ISO-8601 duration such as P7D or PT12H");
  }
  return *seconds;
}

std::string formatTime(int64_t unixSeconds) {
  const auto time = static_cast<std::time_t>(unixSeconds);
  std::tm utc{};
  gmtime_r(&time, &utc);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%d %H:%M:%SZ", &utc);
  return buffer;
}

std::string formatDuration(int64_t seconds) {
  if (seconds <= 0) return "0s";
  std::string out;
  const std::pair<int64_t, const char*> units[] = {{86400, "d"}, {3600, "h"}, {60, "m"}, {1, "s"}};
  for (const auto& [size, suffix] : units) {
    if (seconds < size) continue;
    if (!out.empty()) out += ' ';
    out += std::to_string(seconds / size) + suffix;
    seconds %= size;
  }
  return out;
}

std::string formatStaleness(int64_t seconds) {
  return seconds < 0 ? "no limit" : formatDuration(seconds);
}

std::string formatBytes(int64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 4) {
    value /= 1024;
    ++unit;
  }
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, unit == 0 ? "%.0f %s" : "%.1f %s", value, units[unit]);
  return buffer;
}

}  // namespace kcache::cachectl
