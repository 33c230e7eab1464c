#include <iostream>

#include "cmd/cachectl/commands.h"
#include "cmd/cachectl/input_files.h"
#include "cmd/common/go_style_flags.h"
#include "core/execution_key.h"
#include "watcher/recording_plan.h"

namespace kcache::cachectl {

void addRecordCommand(CLI::App& app, const GlobalOptions& global) {
  auto podPath = std::make_shared<std::string>();
  auto intoNamespace = std::make_shared<std::string>();
  auto* command = app.add_subcommand("record",
                                     "Record a completed pod's outputs exactly as the watcher "
                                     "would (for tests, demos and repairs)");
  command->add_option("--pod", *podPath, "The completed pod as JSON or YAML ('-' for stdin)")
      ->check(cmd::nonEmpty("a file name, or - for standard input"))
      ->required();
  command
      ->add_option("--into-namespace", *intoNamespace,
                   "Record the entry for this namespace instead of the pod's own (copying a "
                   "result into another tenant's cache; the key is recomputed for it)")
      ->check(cmd::nonEmpty("a namespace"));
  command->callback([&global, podPath, intoNamespace] {
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
    store::NewEntry entry = plan->entry;
    if (!intoNamespace->empty() && *intoNamespace != plan->pod.namespaceName) {
      // Never implied: an entry lands in another namespace's cache only when asked for by name.
      const auto key = core::computeExecutionKey(
          entry.executionTemplate, store::keyBindingOf(cacheScope(global)), *intoNamespace);
      if (!key) throw UsageError(*podPath + " is not recorded: " + key.error().message);
      entry.key = key->hex();
      entry.namespaceName = *intoNamespace;
      std::cerr << "note: recording for namespace " << *intoNamespace << ", not the pod's own ("
                << plan->pod.namespaceName << ")\n";
    }
    const auto store = openStore(global);
    const store::RecordResult recorded = store->recordEntry(cacheScope(global), entry);
    const int64_t id = recorded.entryId;
    std::cout << (recorded.outcome == store::RecordOutcome::kKept
                      ? "not written, a fresh entry of another pod stays: entry "
                      : "recorded entry ")
              << id << " for key " << entry.key << " in namespace " << entry.namespaceName << "\n"
              << "  pod " << plan->pod.namespaceName << "/" << plan->pod.name << ", ran "
              << formatDuration(entry.runDurationSeconds) << ", staleness "
              << formatStaleness(entry.maxCacheStaleness) << "\n"
              << "  the watcher then labels the pod with: "
              << watcher::cacheIdPatch(plan->pod, id).dump() << "\n";
  });
}

}  // namespace kcache::cachectl
