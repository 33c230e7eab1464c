#include <gtest/gtest.h>

#include "core/execution_output.h"

namespace kcache::core {
namespace {

TEST(ExecutionOutput, EncodesExactlyAsKubeflow) {
  // The shape of docs/watcher.md, "When a pod is recordable" (the ExecutionOutput shape): sorted
  // keys, HTML escaping inside the outputs.
  const StepOutputs outputs{R"({"parameters":[{"name":"w","value":"<a&b>"}],"exitCode":"0"})",
                            "42"};
  EXPECT_EQ(
      encodeExecutionOutput(outputs),
      R"({"pipelines.kubeflow.org/metadata_execution_id":"42","workflows.argoproj.io/outputs":"{\"parameters\":[{\"name\":\"w\",\"value\":\"\u003ca\u0026b\u003e\"}],\"exitCode\":\"0\"}"})");
  EXPECT_EQ(
      encodeExecutionOutput({}),
      R"({"pipelines.kubeflow.org/metadata_execution_id":"","workflows.argoproj.io/outputs":""})");
}

TEST(ExecutionOutput, RoundTrips) {
  const StepOutputs outputs{"{\"artifacts\":[\"\u2028x\"]}", "7"};
  const auto decoded = decodeExecutionOutput(encodeExecutionOutput(outputs));
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(decoded->argoOutputs, outputs.argoOutputs);
  EXPECT_EQ(decoded->metadataExecutionId, outputs.metadataExecutionId);
}

TEST(ExecutionOutput, DecodingIsLenientAboutMissingKeysButNotShapes) {
  EXPECT_EQ(decodeExecutionOutput("{}")->argoOutputs, "");
  EXPECT_FALSE(decodeExecutionOutput("").has_value());
  EXPECT_FALSE(decodeExecutionOutput("[]").has_value());
  EXPECT_FALSE(decodeExecutionOutput(R"({"workflows.argoproj.io/outputs":1})").has_value());
}

}  // namespace
}  // namespace kcache::core
