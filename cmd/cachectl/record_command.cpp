#include <iostream>

#include "cmd/cachectl/commands.h"
#include "cmd/cachectl/input_files.h"
#include "cmd/common/go_style_flags.h"
#include "watcher/recording_plan.h"

namespace kcache::cachectl {

void addRecordCommand(CLI::App& app, const GlobalOptions& global) {
  auto podPath = std::make_shared<std::string>();
  auto* command = app.add_subcommand("record",
                                     "Record a completed pod's outputs exactly as the watcher "
                                     "would (for tests, demos and repairs)");
  command->add_option("--pod", *podPath, "The completed pod as JSON or YAML ('-' for stdin)")
      ->check(cmd::nonEmpty("a file name, or - for standard input"))
      ->required();
  command->callback([&global, podPath] {
    const auto pod = readPod(*podPath);
    // The key is recomputed from the pod's template and namespace as the watcher does; a pod
    // whose annotation claims another key is refused.
    const auto plan = watcher::planRecording(
        pod, watcher::RecordingRules(stalenessFromEnvironment(), cacheScope(global)),
        nowInSeconds());
    if (!plan) {
      throw UsageError(*podPath +
                       " is not recorded: " + std::string(watcher::toString(plan.error())));
    }
    if (plan->templateOffloaded) {
      throw UsageError(*podPath +
                       " is not recorded: its ARGO_TEMPLATE is offloaded to a ConfigMap, so its "
                       "key cannot be checked here; the watcher records such pods in the cluster");
    }
    const auto store = openStore(global);
    const store::RecordResult recorded = store->recordEntry(cacheScope(global), plan->entry);
    const int64_t id = recorded.entryId;
    std::cout << (recorded.outcome == store::RecordOutcome::kKept
                      ? "not written, a fresh entry of another pod stays: entry "
                      : "recorded entry ")
              << id << " for key " << plan->entry.key << "\n"
              << "  pod " << plan->pod.namespaceName << "/" << plan->pod.name << ", ran "
              << formatDuration(plan->entry.runDurationSeconds) << ", staleness "
              << formatStaleness(plan->entry.maxCacheStaleness) << "\n"
              << "  the watcher then labels the pod with: "
              << watcher::cacheIdPatch(plan->pod, id).dump() << "\n";
  });
}

}  // namespace kcache::cachectl
