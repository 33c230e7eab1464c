#pragma once
// The Argo pod fixtures of docs/argo-lines.md, "Pod layout per line" (tests/data/pods/argo-*.json)
// for the webhook's Argo tests.
#include <fstream>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

namespace kcache::webhook::testing {

// What every fixture pod carries.
inline constexpr const char* kFixtureWorkflow = "my-pipeline-x7k2p";
inline constexpr const char* kFixtureWorkflowUid = "1b0f7a5e-4c1d-4a3b-9f0e-2d6c8b7a9e01";
inline constexpr const char* kFixtureNodeId = "my-pipeline-x7k2p-1727472585";

// tests/data/<relativePath>, parsed.
inline nlohmann::json readTestData(const std::string& relativePath) {
  std::ifstream in(std::string(KCACHE_TEST_DATA_DIR) + "/" + relativePath);
  if (!in) throw std::runtime_error("missing test data " + relativePath);
  return nlohmann::json::parse(in);
}

// tests/data/pods/<name>.json: "argo-3.3", "argo-3.5", "argo-3.6", "argo-4.1-legacy",
// "argo-4.1-initless", "argo-3.6-offloaded".
inline nlohmann::json argoPodFixture(const std::string& name) {
  return readTestData("pods/" + name + ".json");
}

// A gtest parameter name for a fixture name ("argo-4.1-legacy" -> "argo_4_1_legacy").
inline std::string parameterName(std::string name) {
  for (char& c : name) {
    if (c == '-' || c == '.') c = '_';
  }
  return name;
}

}  // namespace kcache::webhook::testing
