#include <iostream>

#include "cmd/cachectl/commands.h"
#include "cmd/cachectl/input_files.h"
#include "cmd/common/go_style_flags.h"

namespace kcache::cachectl {
namespace {

struct GcCommandOptions {
  std::string maxStaleness;
  std::optional<int64_t> maxEntries;
  int64_t batchSize = 1000;
};

void runGc(const GlobalOptions& global, const GcCommandOptions& options) {
  store::GcOptions gc;
  gc.nowInSec = nowInSeconds();
  gc.batchSize = options.batchSize;
  gc.maxEntries = options.maxEntries;
  std::string ageSource = "--max-staleness";
  std::string maxStaleness = options.maxStaleness;
  if (maxStaleness.empty()) {
    maxStaleness = environmentValue("MAXIMUM_CACHE_STALENESS").value_or("");
    ageSource = "MAXIMUM_CACHE_STALENESS";
  }
  if (!maxStaleness.empty()) gc.maxStalenessSeconds = parseAge(ageSource, maxStaleness);
  if (gc.maxStalenessSeconds < 0 && !gc.maxEntries) {
    throw UsageError(
        "nothing to collect: set MAXIMUM_CACHE_STALENESS or --max-staleness, or --max-entries");
  }
  const auto result = openStore(global)->gc(gc);
  std::cout << "deleted " << result.expiredDeleted << " expired entries";
  if (gc.maxStalenessSeconds >= 0) {
    std::cout << " (recorded before " << formatTime(gc.nowInSec - gc.maxStalenessSeconds) << ", "
              << ageSource << "=" << maxStaleness << ")";
  }
  std::cout << "\n";
  if (gc.maxEntries) {
    std::cout << "evicted " << result.evictedDeleted
              << " least recently hit entries (keeping at most " << *gc.maxEntries << ")\n";
  }
  std::cout << "in " << result.batches << " batches of at most " << gc.batchSize << " rows\n";
}

}  // namespace

void addGcCommand(CLI::App& app, const GlobalOptions& global) {
  auto options = std::make_shared<GcCommandOptions>();
  auto* command = app.add_subcommand(
      "gc",
      "Garbage-collect the cache as the leader does: drop entries older than the maximum "
      "staleness, and optionally the least recently hit beyond a count");
  command
      ->add_option("--max-staleness", options->maxStaleness,
                   "Drop entries recorded longer ago than this ISO-8601 duration (default: "
                   "$MAXIMUM_CACHE_STALENESS)")
      ->check(cmd::nonEmpty("an ISO-8601 duration such as P30D"));
  command
      ->add_option("--max-entries", options->maxEntries,
                   "Then keep at most this many entries, evicting the least recently hit")
      ->check(cmd::nonEmpty("a number"))
      ->check(CLI::Range(int64_t{0}, std::numeric_limits<int64_t>::max()));
  command->add_option("--batch-size", options->batchSize, "Rows deleted per transaction")
      ->check(cmd::nonEmpty("a number 1-100000"))
      ->check(CLI::Range(int64_t{1}, int64_t{100000}))
      ->capture_default_str();
  command->callback([&global, options] { runGc(global, *options); });
}

}  // namespace kcache::cachectl
