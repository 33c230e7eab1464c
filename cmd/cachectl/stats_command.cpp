#include <iomanip>
#include <iostream>

#include <nlohmann/json.hpp>

#include "cmd/cachectl/commands.h"

namespace kcache::cachectl {
namespace {

void printStats(const store::StoreStats& stats, bool asJson) {
  if (asJson) {
    nlohmann::json out = {{"entries", stats.entries},
                          {"totalHits", stats.totalHits},
                          {"computeSecondsSaved", stats.computeSecondsSaved},
                          {"oldestEntryAtInSec", nullptr},
                          {"newestEntryAtInSec", nullptr},
                          {"tableBytes", stats.tableBytes},
                          {"namespaces", nlohmann::json::array()}};
    if (stats.oldestEntryAtInSec) out["oldestEntryAtInSec"] = *stats.oldestEntryAtInSec;
    if (stats.newestEntryAtInSec) out["newestEntryAtInSec"] = *stats.newestEntryAtInSec;
    for (const auto& ns : stats.perNamespace) {
      out["namespaces"].push_back(
          {{"namespace", ns.namespaceName}, {"entries", ns.entries}, {"hits", ns.hits}});
    }
    std::cout << out.dump(2) << "\n";
    return;
  }
  auto row = [](const char* label, const std::string& value) {
    std::cout << std::left << std::setw(22) << label << value << "\n";
  };
  row("entries", std::to_string(stats.entries));
  row("hits", std::to_string(stats.totalHits));
  row("compute time saved", formatDuration(stats.computeSecondsSaved));
  row("oldest entry", stats.oldestEntryAtInSec ? formatTime(*stats.oldestEntryAtInSec) : "-");
  row("newest entry", stats.newestEntryAtInSec ? formatTime(*stats.newestEntryAtInSec) : "-");
  row("size on disk", formatBytes(stats.tableBytes));
  if (stats.perNamespace.empty()) return;
  std::cout << "\n"
            << std::left << std::setw(40) << "NAMESPACE" << std::right << std::setw(10) << "ENTRIES"
            << std::setw(10) << "HITS"
            << "\n";
  for (const auto& ns : stats.perNamespace) {
    std::cout << std::left << std::setw(40)
              << (ns.namespaceName.empty() ? "(legacy, no namespace)" : ns.namespaceName)
              << std::right << std::setw(10) << ns.entries << std::setw(10) << ns.hits << "\n";
  }
}

}  // namespace

void addStatsCommand(CLI::App& app, const GlobalOptions& global) {
  auto asJson = std::make_shared<bool>(false);
  auto* command = app.add_subcommand("stats",
                                     "Entries in all and per namespace, hits, compute time saved, "
                                     "oldest and newest entry, size on disk");
  command->add_flag("--json", *asJson, "Print JSON instead of a table");
  command->callback([&global, asJson] { printStats(openStore(global)->stats(), *asJson); });
}

}  // namespace kcache::cachectl
