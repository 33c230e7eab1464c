#include "core/execution_output.h"

#include <nlohmann/json.hpp>

#include "core/go_json.h"
#include "core/pod_contract.h"

namespace kcache::core {

std::string encodeExecutionOutput(const StepOutputs& outputs) {
  // Keys in Go's sorted order: "pipelines…" < "workflows…".
  std::string out;
  out.reserve(outputs.argoOutputs.size() + outputs.metadataExecutionId.size() + 96);
  out.push_back('{');
  gojson::appendQuoted(out, contract::kMetadataExecutionIdLabel);
  out.push_back(':');
  gojson::appendQuoted(out, outputs.metadataExecutionId);
  out.push_back(',');
  gojson::appendQuoted(out, contract::kArgoOutputsAnnotation);
  out.push_back(':');
  gojson::appendQuoted(out, outputs.argoOutputs);
  out.push_back('}');
  return out;
}

std::optional<StepOutputs> decodeExecutionOutput(std::string_view executionOutput) {
  const auto parsed = nlohmann::json::parse(executionOutput, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_object()) return std::nullopt;
  StepOutputs outputs;
  auto read = [&](std::string_view key, std::string& into) {
    const auto found = parsed.find(key);
    if (found == parsed.end()) return true;
    if (!found->is_string()) return false;
    into = found->get<std::string>();
    return true;
  };
  if (!read(contract::kArgoOutputsAnnotation, outputs.argoOutputs) ||
      !read(contract::kMetadataExecutionIdLabel, outputs.metadataExecutionId)) {
    return std::nullopt;
  }
  return outputs;
}

}  // namespace kcache::core
