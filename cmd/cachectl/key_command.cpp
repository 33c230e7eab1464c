#include "cmd/cachectl/commands.h"

#include <iostream>
#include <memory>
#include <optional>

#include "cmd/cachectl/input_files.h"
#include "cmd/common/go_style_flags.h"
#include "core/execution_key.h"
#include "core/pod_template.h"
#include "store/cache_store.h"

namespace kcache::cachectl {
namespace {

struct KeyOptions {
  std::string templatePath;
  std::string podPath;
  std::optional<std::string> namespaceName;
  bool printCanonical = false;
};

// The key of the scope in force (--cache-scope), as the webhook computes and annotates it. In
// namespace scope it is bound to --namespace, else to the pod's own namespace; with --template
// and no --namespace there is no namespace, and the template-only key is printed with a note.
void runKey(const GlobalOptions& global, const KeyOptions& options) {
  std::string argoTemplate;
  std::string origin;
  std::optional<std::string> namespaceName = options.namespaceName;
  if (!options.templatePath.empty()) {
    argoTemplate = readInput(options.templatePath);
    origin = options.templatePath;
  } else {
    const auto pod = readPod(options.podPath);
    const auto found = core::findArgoTemplate(pod);
    if (!found) {
      throw UsageError(options.podPath +
                       ": no ARGO_TEMPLATE env var with a value on the first, `main`, init or "
                       "supervisor containers, so the pod has no execution key (kcache lets it "
                       "through)");
    }
    if (found->offloaded) {
      throw UsageError(options.podPath +
                       ": ARGO_TEMPLATE is \"offloaded\": Argo keeps the template in the "
                       "ConfigMap named after the pod (key ARGO_TEMPLATE); pass that value with "
                       "--template");
    }
    argoTemplate = found->argoTemplate;
    origin = options.podPath + " (container " + found->containerName + ")";
    if (!namespaceName) {
      const auto& metadata = pod.contains("metadata") ? pod["metadata"] : nlohmann::json();
      if (metadata.is_object() && metadata.contains("namespace") &&
          metadata["namespace"].is_string()) {
        namespaceName = metadata["namespace"].get<std::string>();
      }
    }
  }
  const auto canonical = core::CanonicalTemplate::of(argoTemplate);
  if (!canonical) {
    throw UsageError("the template in " + origin + " has no execution key (" +
                     std::string(core::toString(canonical.error().kind)) +
                     "): " + canonical.error().message);
  }
  core::KeyBinding binding = store::keyBindingOf(cacheScope(global));
  if (binding == core::KeyBinding::kNamespaceBound && !namespaceName) {
    std::cerr << "note: no namespace (--namespace, or a pod with metadata.namespace): this is the "
                 "template-only key of --cache-scope=cluster and Kubeflow before 2.18\n";
    binding = core::KeyBinding::kTemplateOnly;
  }
  const std::string ns = namespaceName.value_or("");
  std::cout << canonical->key(binding, ns).hex() << "\n";
  if (options.printCanonical) {
    std::cout << (binding == core::KeyBinding::kNamespaceBound ? canonical->namespaceBoundBytes(ns)
                                                               : canonical->bytes())
              << "\n";
  }
}

}  // namespace

void addKeyCommand(CLI::App& app, const GlobalOptions& global) {
  auto options = std::make_shared<KeyOptions>();
  auto* command = app.add_subcommand(
      "key",
      "Print the execution key of a step, computed exactly as Kubeflow Pipelines does: bound to "
      "the namespace in namespace scope (Kubeflow 2.18), template-only in cluster scope");
  auto* templateOption =
      command
          ->add_option("--template", options->templatePath,
                       "File holding the ARGO_TEMPLATE JSON itself ('-' for stdin)")
          ->check(cmd::nonEmpty("a file name, or - for standard input"));
  auto* podOption = command
                        ->add_option("--pod", options->podPath,
                                     "Pod as JSON or YAML, or an AdmissionReview; the template is "
                                     "read from its ARGO_TEMPLATE")
                        ->check(cmd::nonEmpty("a file name, or - for standard input"));
  templateOption->excludes(podOption);
  podOption->excludes(templateOption);
  command->add_option("--namespace", options->namespaceName,
                      "Namespace the key is bound to in namespace scope (Kubeflow 2.18's key); "
                      "default: the pod's own namespace");
  command->add_flag("--canonical", options->printCanonical,
                    "Also print the exact bytes that are hashed (Go encoding/json form)");
  command->callback([&global, options, templateOption, podOption] {
    if (templateOption->count() == 0 && podOption->count() == 0) {
      throw CLI::RequiredError("--template or --pod");
    }
    runKey(global, *options);
  });
}

}  // namespace kcache::cachectl
