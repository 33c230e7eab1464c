#include "cmd/cachectl/commands.h"

#include <iostream>
#include <memory>

#include "cmd/cachectl/input_files.h"
#include "cmd/common/go_style_flags.h"
#include "core/execution_key.h"
#include "core/pod_template.h"

namespace kcache::cachectl {
namespace {

struct KeyOptions {
  std::string templatePath;
  std::string podPath;
  bool printCanonical = false;
};

void runKey(const KeyOptions& options) {
  std::string argoTemplate;
  std::string origin;
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
  }
  const auto canonical = core::canonicalTemplate(argoTemplate);
  if (!canonical) {
    throw UsageError("the template in " + origin + " has no execution key (" +
                     std::string(core::toString(canonical.error().kind)) +
                     "): " + canonical.error().message);
  }
  const auto key = core::computeExecutionKey(argoTemplate);
  std::cout << key->hex() << "\n";
  if (options.printCanonical) std::cout << *canonical << "\n";
}

}  // namespace

void addKeyCommand(CLI::App& app) {
  auto options = std::make_shared<KeyOptions>();
  auto* command = app.add_subcommand(
      "key", "Print the execution key of a step, computed exactly as Kubeflow Pipelines does");
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
  command->add_flag("--canonical", options->printCanonical,
                    "Also print the exact bytes that are hashed (Go encoding/json form)");
  command->callback([options, templateOption, podOption] {
    if (templateOption->count() == 0 && podOption->count() == 0) {
      throw CLI::RequiredError("--template or --pod");
    }
    runKey(*options);
  });
}

}  // namespace kcache::cachectl
