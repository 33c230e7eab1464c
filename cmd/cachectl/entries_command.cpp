// cachectl list, show and purge: looking at and removing individual entries.
#include <unistd.h>

#include <iomanip>
#include <iostream>

#include <nlohmann/json.hpp>

#include "cmd/cachectl/commands.h"
#include "cmd/cachectl/input_files.h"
#include "cmd/common/go_style_flags.h"
#include "core/execution_key.h"
#include "core/execution_output.h"

namespace kcache::cachectl {
namespace {

using nlohmann::json;

struct FilterFlags {
  std::string namespaceName;
  bool namespaceGiven = false;
  std::string keyPrefix;
  std::string olderThan, newerThan;
};

void addFilterFlags(CLI::App& command, FilterFlags& flags) {
  command.add_option(
      "--namespace,-n", flags.namespaceName,
      "Only entries recorded in this namespace (\"\" selects legacy rows without one)");
  command.add_option("--key-prefix", flags.keyPrefix,
                     "Only keys starting with these hex characters");
  command
      .add_option("--older-than", flags.olderThan,
                  "Only entries recorded longer ago than this ISO-8601 duration (P7D)")
      ->check(cmd::nonEmpty("an ISO-8601 duration such as P7D"));
  command
      .add_option("--newer-than", flags.newerThan,
                  "Only entries recorded more recently than this duration")
      ->check(cmd::nonEmpty("an ISO-8601 duration such as P7D"));
}

store::EntryFilter toFilter(const CLI::App& command, const FilterFlags& flags, int64_t now) {
  store::EntryFilter filter;
  if (command.count("--namespace") > 0) filter.namespaceName = flags.namespaceName;
  for (char c : flags.keyPrefix) {
    if (!std::isxdigit(static_cast<unsigned char>(c)) ||
        std::isupper(static_cast<unsigned char>(c))) {
      throw UsageError("--key-prefix=" + flags.keyPrefix + " must be lower-case hex characters");
    }
  }
  filter.keyPrefix = flags.keyPrefix;
  if (!flags.olderThan.empty())
    filter.recordedBefore = now - parseAge("--older-than", flags.olderThan);
  if (!flags.newerThan.empty())
    filter.recordedAfter = now - parseAge("--newer-than", flags.newerThan);
  return filter;
}

json entryJson(const store::CacheEntry& entry, bool withTemplate) {
  json out = {
      {"id", entry.id},
      {"key", entry.key},
      {"namespace", entry.namespaceName},
      {"podName", entry.podName},
      {"maxCacheStaleness", entry.maxCacheStaleness},
      {"startedAtInSec", entry.startedAtInSec},
      {"runDurationSeconds", entry.runDurationSeconds},
      {"hitCount", entry.hitCount},
      {"lastHitAtInSec", entry.lastHitAtInSec ? json(*entry.lastHitAtInSec) : json(nullptr)},
      {"executionOutput", entry.executionOutput}};
  if (withTemplate) out["executionTemplate"] = entry.executionTemplate;
  return out;
}

void printTable(const std::vector<store::CacheEntry>& entries, int64_t now) {
  std::cout << std::left << std::setw(8) << "ID" << std::setw(28) << "NAMESPACE" << std::setw(15)
            << "KEY" << std::setw(22) << "RECORDED" << std::setw(14) << "AGE" << std::setw(12)
            << "STALENESS" << std::setw(7) << "HITS" << std::setw(10) << "RAN"
            << "POD\n";
  for (const auto& e : entries) {
    std::cout << std::left << std::setw(8) << e.id << std::setw(28)
              << (e.namespaceName.empty() ? "(legacy)" : e.namespaceName.substr(0, 27))
              << std::setw(15) << core::keyPreview(e.key) << std::setw(22)
              << formatTime(e.startedAtInSec) << std::setw(14)
              << formatDuration(now - e.startedAtInSec) << std::setw(12)
              << formatStaleness(e.maxCacheStaleness) << std::setw(7) << e.hitCount << std::setw(10)
              << formatDuration(e.runDurationSeconds) << e.podName << "\n";
  }
}

struct ListFlags {
  FilterFlags filter;
  int64_t limit = 50;
  int64_t afterId = 0;
  bool asJson = false;
};

void runList(const GlobalOptions& global, const CLI::App& command, const ListFlags& flags) {
  const int64_t now = nowInSeconds();
  const auto entries = openStore(global)->listEntries(toFilter(command, flags.filter, now),
                                                      flags.afterId, flags.limit);
  if (flags.asJson) {
    json out = json::array();
    for (const auto& entry : entries) out.push_back(entryJson(entry, false));
    std::cout << out.dump(2) << "\n";
    return;
  }
  if (entries.empty()) {
    std::cout << "no entries match\n";
    return;
  }
  printTable(entries, now);
  if (static_cast<int64_t>(entries.size()) == flags.limit) {
    std::cout << "(more may follow: add --after-id " << entries.back().id << ")\n";
  }
}

void runShow(const GlobalOptions& global, int64_t id, bool withTemplate, bool asJson) {
  store::EntryFilter filter;
  filter.id = id;
  const auto entries = openStore(global)->listEntries(filter, 0, 1);
  if (entries.empty()) throw UsageError("no entry with id " + std::to_string(id));
  const auto& e = entries.front();
  if (asJson) {
    std::cout << entryJson(e, withTemplate).dump(2) << "\n";
    return;
  }
  const int64_t now = nowInSeconds();
  std::cout << "entry        " << e.id << "\n"
            << "key          " << e.key << "\n"
            << "namespace    " << (e.namespaceName.empty() ? "(legacy, none)" : e.namespaceName)
            << "\n"
            << "pod          " << (e.podName.empty() ? "-" : e.podName) << "\n"
            << "recorded     " << formatTime(e.startedAtInSec) << " ("
            << formatDuration(now - e.startedAtInSec) << " ago)\n"
            << "staleness    " << formatStaleness(e.maxCacheStaleness) << "\n"
            << "ran          " << formatDuration(e.runDurationSeconds) << "\n"
            << "hits         " << e.hitCount
            << (e.lastHitAtInSec ? ", last " + formatTime(*e.lastHitAtInSec) : std::string())
            << "\n";
  const auto outputs = core::decodeExecutionOutput(e.executionOutput);
  if (!outputs) {
    std::cout << "outputs      (unreadable) " << e.executionOutput << "\n";
  } else {
    std::cout << "execution id "
              << (outputs->metadataExecutionId.empty() ? "-" : outputs->metadataExecutionId)
              << "\n";
    const json parsed = json::parse(outputs->argoOutputs, nullptr, false);
    std::cout << "outputs\n"
              << (parsed.is_discarded() ? outputs->argoOutputs : parsed.dump(2)) << "\n";
  }
  if (withTemplate) {
    const json parsed = json::parse(e.executionTemplate, nullptr, false);
    std::cout << "template\n"
              << (parsed.is_discarded() ? e.executionTemplate : parsed.dump(2)) << "\n";
  }
}

struct PurgeFlags {
  FilterFlags filter;
  std::optional<int64_t> id;
  std::string key;
  bool all = false;
  bool dryRun = false;
  bool yes = false;
};

void runPurge(const GlobalOptions& global, const CLI::App& command, const PurgeFlags& flags) {
  const int64_t now = nowInSeconds();
  store::EntryFilter filter = toFilter(command, flags.filter, now);
  filter.id = flags.id;
  if (!flags.key.empty()) filter.key = flags.key;
  const bool selective = filter.id || filter.key || !filter.keyPrefix.empty() ||
                         filter.namespaceName || filter.recordedBefore || filter.recordedAfter;
  if (!selective && !flags.all) {
    throw UsageError(
        "purge needs --id, --key, --key-prefix, --namespace, --older-than or --newer-than (or "
        "--all)");
  }
  const auto store = openStore(global);
  const int64_t count = store->countEntries(filter);
  if (count == 0) {
    std::cout << "no entries match; nothing to purge\n";
    return;
  }
  const auto sample = store->listEntries(filter, 0, 20);
  std::cout << count << " entries match" << (count > 20 ? " (first 20 shown)" : "") << ":\n";
  printTable(sample, now);
  if (flags.dryRun) {
    std::cout << "dry run: nothing deleted\n";
    return;
  }
  if (!flags.yes) {
    if (!isatty(STDIN_FILENO)) {
      throw UsageError("refusing to delete " + std::to_string(count) +
                       " entries without confirmation: pass --yes (or run in a terminal)");
    }
    std::cout << "delete these " << count << " entries? type yes: " << std::flush;
    std::string answer;
    std::getline(std::cin, answer);
    if (answer != "yes") {
      std::cout << "nothing deleted\n";
      return;
    }
  }
  std::cout << "deleted " << store->purgeEntries(filter) << " entries\n";
}

}  // namespace

void addListCommand(CLI::App& app, const GlobalOptions& global) {
  auto flags = std::make_shared<ListFlags>();
  auto* command =
      app.add_subcommand("list", "List cache entries, newest id last, with filters and paging");
  addFilterFlags(*command, flags->filter);
  command->add_option("--limit", flags->limit, "Entries per page")
      ->check(cmd::nonEmpty("a number 1-10000"))
      ->check(CLI::Range(int64_t{1}, int64_t{10000}))
      ->capture_default_str();
  command
      ->add_option("--after-id", flags->afterId,
                   "Start after this entry id (the previous page's last)")
      ->check(cmd::nonEmpty("an entry id"));
  command->add_flag("--json", flags->asJson, "Print JSON");
  command->callback([&global, command, flags] { runList(global, *command, *flags); });
}

void addShowCommand(CLI::App& app, const GlobalOptions& global) {
  auto id = std::make_shared<int64_t>(0);
  auto withTemplate = std::make_shared<bool>(false);
  auto asJson = std::make_shared<bool>(false);
  auto* command = app.add_subcommand("show", "Show one entry with its outputs pretty-printed");
  command->add_option("id", *id, "Entry id (see cachectl list)")->required();
  command->add_flag("--template", *withTemplate,
                    "Also print the Argo template the key was computed from");
  command->add_flag("--json", *asJson, "Print JSON");
  command->callback(
      [&global, id, withTemplate, asJson] { runShow(global, *id, *withTemplate, *asJson); });
}

void addPurgeCommand(CLI::App& app, const GlobalOptions& global) {
  auto flags = std::make_shared<PurgeFlags>();
  auto* command = app.add_subcommand("purge", "Delete entries by id, key, namespace or age");
  addFilterFlags(*command, flags->filter);
  command->add_option("--id", flags->id, "The entry with this id")
      ->check(cmd::nonEmpty("an entry id"));
  command->add_option("--key", flags->key, "Entries with this execution key")
      ->check(cmd::nonEmpty("an execution key (64 hex characters)"));
  command->add_flag("--all", flags->all, "Every entry (when no other filter is given)");
  command->add_flag("--dry-run", flags->dryRun, "Show what would be deleted, delete nothing");
  command->add_flag("--yes,-y", flags->yes, "Do not ask for confirmation");
  command->callback([&global, command, flags] { runPurge(global, *command, *flags); });
}

}  // namespace kcache::cachectl
