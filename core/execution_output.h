#pragma once
// The ExecutionOutput column as Kubeflow Pipelines stores it: the Go JSON of a two-key map
// {"pipelines.kubeflow.org/metadata_execution_id": ..., "workflows.argoproj.io/outputs": ...},
// keys sorted, HTML characters escaped. kcache writes it byte-identically so that Kubeflow's own
// server can read kcache's entries and the other way round.
#include <optional>
#include <string>
#include <string_view>

namespace kcache::core {

struct StepOutputs {
  std::string argoOutputs;          // the pod's workflows.argoproj.io/outputs annotation, verbatim
  std::string metadataExecutionId;  // the pod's metadata_execution_id label
};

// Missing values are recorded as "", as Kubeflow does.
std::string encodeExecutionOutput(const StepOutputs& outputs);

// Reads what encodeExecutionOutput (or Kubeflow) wrote. Missing keys read as "".
// Returns nullopt when the text is not a JSON object of strings.
std::optional<StepOutputs> decodeExecutionOutput(std::string_view executionOutput);

}  // namespace kcache::core
