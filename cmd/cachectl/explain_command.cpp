// `cachectl explain --pod FILE`: the question users ask most, "why was my step not cached?".
// It runs the webhook's own decision functions on the pod, then looks the key up in the store and,
// when nothing would be reused, says which rule kept each entry with that key from matching.
#include <iostream>

#include "cmd/cachectl/commands.h"
#include "cmd/cachectl/input_files.h"
#include "cmd/common/go_style_flags.h"
#include "cmd/common/legacy_cache_mode.h"
#include "core/execution_key.h"
#include "core/offloaded_template.h"
#include "core/pod_template.h"
#include "webhook/admission_review.h"
#include "webhook/config.h"
#include "webhook/decision.h"

namespace kcache::cachectl {
namespace {

using nlohmann::json;

webhook::AdmissionRequest requestFor(const std::string& path) {
  const json document = readDocument(path);
  if (document.is_object() && document.value("kind", "") == "AdmissionReview") {
    auto request = webhook::decodeAdmissionReview(document.dump());
    if (!request) throw UsageError(path + ": " + request.error().message);
    return *request;
  }
  const json pod = readPod(path);
  webhook::AdmissionRequest request;
  request.apiVersion = "admission.k8s.io/v1";
  request.kind = "AdmissionReview";
  request.operation = "CREATE";
  request.resourceVersion = "v1";
  request.resourceName = "pods";
  const json metadata = pod.value("metadata", json::object());
  request.namespaceName = metadata.is_object() ? metadata.value("namespace", "default") : "default";
  request.name = metadata.is_object() ? metadata.value("name", "") : "";
  request.object = pod;
  return request;
}

// Why one stored entry with the pod's key is not reused for it. The store keeps the two scopes
// apart, so once freshness is ruled out, the scope is what separates the entry from the pod.
std::string whyNotReused(const store::CacheEntry& entry, const webhook::LookupPlan& plan,
                         store::CacheScope scope, int64_t now) {
  const int64_t age = now - entry.startedAtInSec;
  if (entry.startedAtInSec < 0) return "its recording time is negative, so it can never match";
  if (plan.staleness.seconds >= 0 && age > plan.staleness.seconds) {
    return "stale for this pod: " + formatDuration(age) + " old, the pod accepts " +
           formatStaleness(plan.staleness.seconds) + " (from " +
           std::string(core::toString(plan.staleness.source)) + ")";
  }
  if (entry.maxCacheStaleness >= 0 && age > entry.maxCacheStaleness) {
    return "stale by the staleness it was recorded with: " + formatDuration(age) +
           " old, recorded with " + formatStaleness(entry.maxCacheStaleness);
  }
  if (scope == store::CacheScope::kNamespace && entry.namespaceName != plan.namespaceName) {
    return "recorded in namespace " + entry.namespaceName +
           ": with --cache-scope=namespace an entry is reused only where it was recorded";
  }
  return "no longer fresh, or replaced while this explanation ran";
}

// The key of the scope not in force, for the operator comparing with another server or scope;
// nullopt when the template is not at hand (offloaded without --configmap cannot happen here).
std::optional<std::string> otherKey(const webhook::AdmissionRequest& request,
                                    const webhook::LookupPlan& lookup, core::KeyBinding binding,
                                    const std::string& configMapPath);

// The ARGO_TEMPLATE value of a ConfigMap document (JSON or YAML), as Argo offloads it, when the
// webhook would use it: owned by the pod's Workflow (core/offloaded_template.h).
std::string offloadedTemplate(const std::string& path, const json& pod) {
  const json configMap = readDocument(path);
  auto argoTemplate =
      core::offloadedTemplateOf(configMap, core::workflowOwnerUid(pod).value_or(""));
  if (!argoTemplate) {
    throw UsageError(path + ": the webhook would not use this ConfigMap: " + argoTemplate.error());
  }
  return std::move(argoTemplate).value();
}

std::optional<std::string> otherKey(const webhook::AdmissionRequest& request,
                                    const webhook::LookupPlan& lookup, core::KeyBinding binding,
                                    const std::string& configMapPath) {
  const auto found = core::findArgoTemplate(request.object);
  if (!found) return std::nullopt;
  const std::string argoTemplate =
      found->offloaded ? offloadedTemplate(configMapPath, request.object) : found->argoTemplate;
  const auto canonical = core::CanonicalTemplate::of(argoTemplate);
  if (!canonical) return std::nullopt;
  return binding == core::KeyBinding::kNamespaceBound
             ? canonical->templateOnlyKey().hex()
             : canonical->namespaceBoundKey(lookup.namespaceName).hex();
}

struct ExplainOptions {
  std::string podPath;
  std::string configMapPath;
  bool readOffloadedTemplates = false;  // as cache-server's --read-offloaded-templates
  // From the environment, read as cache-server reads it.
  cmd::LegacyCacheMode legacyCacheMode = cmd::LegacyCacheMode::kEnforce;
};

void explain(const GlobalOptions& global, const ExplainOptions& options) {
  const std::string& configMapPath = options.configMapPath;
  const auto request = requestFor(options.podPath);
  const store::CacheScope scope = cacheScope(global);
  auto loaded = webhook::loadAdmissionConfig(webhook::readProcessEnvironment, scope);
  loaded.config.legacyCacheMode = options.legacyCacheMode;
  loaded.config.readOffloadedTemplates = options.readOffloadedTemplates;
  for (const auto& warning : loaded.warnings) std::cout << "note: " << warning << "\n";

  webhook::Plan plan = webhook::planLookup(request, loaded.config);
  if (auto* offloaded = std::get_if<webhook::LookupPlan>(&plan);
      offloaded != nullptr && offloaded->templateOffloaded) {
    // Argo moved a template over 128 KiB into the ConfigMap named after the pod; the webhook
    // reads it through the API, explain from a file.
    if (configMapPath.empty()) {
      throw UsageError("the pod's ARGO_TEMPLATE is \"offloaded\": Argo keeps it in ConfigMap " +
                       request.namespaceName + "/" + request.name +
                       " (key ARGO_TEMPLATE); save it (kubectl get configmap -o yaml) and pass "
                       "it with --configmap");
    }
    std::visit([&plan](auto&& next) { plan = std::move(next); },
               webhook::withOffloadedTemplate(
                   *offloaded, offloadedTemplate(configMapPath, request.object), loaded.config));
  }
  std::cout << "pod " << request.namespaceName << "/"
            << (request.name.empty() ? "(generated name)" : request.name) << "\n";
  if (const auto* skip = std::get_if<webhook::Skip>(&plan)) {
    std::cout << "considered: no, skipped (" << webhook::toString(skip->reason)
              << "): " << skip->detail << "\n"
              << "the webhook lets this pod through unchanged\n";
    return;
  }
  if (const auto* failure = std::get_if<webhook::Failure>(&plan)) {
    std::cout << "considered: no, cannot be cached (" << webhook::toString(failure->reason)
              << "): " << failure->detail << "\nthe webhook lets this pod through unchanged\n";
    return;
  }
  const auto& lookup = std::get<webhook::LookupPlan>(plan);
  const auto binding = store::keyBindingOf(scope);
  std::cout << "considered: yes\n"
            << "execution key: " << lookup.key << " (" << core::toString(binding) << ", "
            << (binding == core::KeyBinding::kNamespaceBound
                    ? "as Kubeflow 2.18 computes it for namespace " + lookup.namespaceName
                    : std::string("as Kubeflow before 2.18 computes it"))
            << "; ARGO_TEMPLATE of container " << lookup.templateContainer << ")\n";
  const auto other = otherKey(request, lookup, binding, configMapPath);
  if (other) {
    std::cout << "the other key: " << *other << " ("
              << core::toString(binding == core::KeyBinding::kNamespaceBound
                                    ? core::KeyBinding::kTemplateOnly
                                    : core::KeyBinding::kNamespaceBound)
              << ", used by --cache-scope="
              << (binding == core::KeyBinding::kNamespaceBound ? "cluster" : "namespace")
              << ", not by this server)\n";
  }
  std::cout << "staleness: " << formatStaleness(lookup.staleness.seconds) << " (from "
            << (lookup.staleness.source == core::StalenessSource::kNone
                    ? std::string("no annotation, default or maximum set")
                    : std::string(core::toString(lookup.staleness.source)))
            << ")\n"
            << "cache scope: " << webhook::toString(scope) << "\n"
            << "legacy cache mode: " << cmd::toString(options.legacyCacheMode) << " ("
            << cmd::kLegacyCacheModeVariable << ")\n";

  const auto store = openStore(global);
  const int64_t now = nowInSeconds();
  auto hit = store->lookup(scope, lookup.namespaceName, lookup.key, lookup.staleness.seconds, now);
  bool fromLegacyRow = false;
  if (!hit && webhook::mayReuseLegacyRow(loaded.config, lookup)) {
    hit = store->lookupLegacy(lookup.legacyKey, lookup.staleness.seconds, now);
    fromLegacyRow = hit.has_value();
  }
  if (hit) {
    // The webhook's own reading of the entry: one it cannot replay runs the step.
    const auto outcome = webhook::interpretLookup(hit);
    if (const auto* miss = std::get_if<webhook::Miss>(&outcome)) {
      std::cout << "result: MISS, " << miss->unreadableEntry
                << ": the step runs, and the watcher records it again when it succeeds\n";
      return;
    }
    std::cout << "result: HIT, entry " << hit->id << " recorded " << formatTime(hit->startedAtInSec)
              << " (" << formatDuration(now - hit->startedAtInSec) << " ago) by pod "
              << (hit->namespaceName.empty() ? "" : hit->namespaceName + "/") << hit->podName
              << "; the step would be replaced by the cached outputs, saving about "
              << formatDuration(hit->runDurationSeconds) << "\n";
    if (fromLegacyRow) {
      std::cout << "  from a legacy row: no entry of this namespace has the key, and audit mode ("
                << cmd::kLegacyCacheModeVariable
                << "=audit) reuses this entry written before Kubeflow 2.18 under the "
                   "template-only key "
                << lookup.legacyKey
                << ". Its owner is unknown (finding ownership_unknown); the reuse would be "
                   "logged and counted in kcache_legacy_cache_reuse_total\n";
    }
    return;
  }
  store::EntryFilter sameKey;
  sameKey.key = lookup.key;
  const auto entries = store->listEntries(sameKey, 0, 20);
  if (entries.empty()) {
    std::cout << "result: MISS, no entry with this key. The step has not completed successfully "
                 "with this exact template since caching was enabled, or its entry was collected. "
                 "It runs, and the watcher records it when it succeeds.\n";
    if (other) {
      store::EntryFilter otherKeyFilter;
      otherKeyFilter.key = *other;
      const auto underOtherKey = store->listEntries(otherKeyFilter, 0, 20);
      for (const auto& entry : underOtherKey) {
        std::cout << "  entry " << entry.id << " (recorded " << formatTime(entry.startedAtInSec)
                  << (entry.namespaceName.empty()
                          ? std::string(", no namespace: written by Kubeflow before 2.18")
                          : " in namespace " + entry.namespaceName)
                  << ") has the other key: "
                  << (binding == core::KeyBinding::kNamespaceBound
                          ? std::string("it is reused only with --cache-scope=cluster") +
                                (entry.namespaceName.empty()
                                     ? std::string(", or in namespace scope with ") +
                                           std::string(cmd::kLegacyCacheModeVariable) + "=audit"
                                     : std::string())
                          : std::string("it belongs to namespace scope"))
                  << "\n";
      }
    }
    return;
  }
  std::cout << "result: MISS, " << entries.size() << (entries.size() == 20 ? "+" : "")
            << " entries have this key but none can be reused here:\n";
  for (const auto& entry : entries) {
    std::cout << "  entry " << entry.id << " (recorded " << formatTime(entry.startedAtInSec)
              << "): " << whyNotReused(entry, lookup, scope, now) << "\n";
  }
}

}  // namespace

void addExplainCommand(CLI::App& app, const GlobalOptions& global) {
  auto options = std::make_shared<ExplainOptions>();
  auto* command = app.add_subcommand(
      "explain",
      "Say whether a pod would be served from the cache, and if not, which rule prevents it");
  command
      ->add_option("--pod", options->podPath,
                   "Pod as JSON or YAML, or an AdmissionReview ('-' for stdin)")
      ->check(cmd::nonEmpty("a file name, or - for standard input"))
      ->required();
  command
      ->add_option("--configmap", options->configMapPath,
                   "The pod's ConfigMap (JSON or YAML) when Argo offloaded its template")
      ->check(cmd::nonEmpty("a file name, or - for standard input"));
  command
      ->add_option("--read-offloaded-templates", options->readOffloadedTemplates,
                   "Explain a server started with --read-offloaded-templates=true (off, as by "
                   "default, a pod whose template Argo offloaded is skipped)")
      ->check(cmd::nonEmpty("true or false"))
      ->envname("KCACHE_READ_OFFLOADED_TEMPLATES")
      ->capture_default_str();
  command->callback([&global, options] {
    try {
      options->legacyCacheMode = cmd::legacyCacheModeFromEnvironment();
    } catch (const std::invalid_argument& error) {
      throw UsageError(error.what());
    }
    explain(global, *options);
  });
}

}  // namespace kcache::cachectl
