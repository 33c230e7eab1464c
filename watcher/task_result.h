#pragma once
// Argo's WorkflowTaskResult as the watcher reads it (docs/argo-lines.md, "The WorkflowTaskResult"):
// which node it belongs to, whether the executor is done with it, and its outputs in the form
// kcache records. Pure.
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace kcache::watcher {

// The workflows.argoproj.io/report-outputs-completed label.
enum class ReportState {
  kCompleted,   // "true": final (executors >= 3.5.2)
  kInProgress,  // any other value ("false"): the executor has not finalized it yet
  kUnlabelled,  // absent: an executor older than 3.5.2
};

struct TaskResultView {
  std::string namespaceName;
  std::string nodeId;      // the task result's name is the node id
  std::string trackingId;  // trackingId() of recording_plan.h: uid, else namespace/name
  ReportState report = ReportState::kUnlabelled;
  // `outputs` serialized compactly without `exitCode` (the controller's field, never the
  // executor's), i.e. what the pod annotation workflows.argoproj.io/outputs would hold; nullopt
  // when the task result has no outputs object.
  std::optional<std::string> outputs;
};

// nullopt when the object has no name or namespace. Tolerates any other shape.
std::optional<TaskResultView> readTaskResult(const nlohmann::json& taskResult);

// Whether the outputs are final, given that the node's pod has Succeeded (docs/watcher.md, "The
// join with task results"): the label says "true", or there is no label (pre-3.5.2 executors write
// outputs before `wait` exits, so a succeeded pod implies the write happened) and there are
// outputs.
bool isFinal(const TaskResultView& taskResult);

// What a final task result contributes as the Argo outputs text: its outputs, or "{}" when it
// has none (valid Outputs JSON for every Argo line, unlike "").
std::string recordedOutputs(const TaskResultView& taskResult);

// The label selector of the task result stream: Argo's own results only, never the ones kcache
// replays on a cache hit.
std::string taskResultSelector();

}  // namespace kcache::watcher
