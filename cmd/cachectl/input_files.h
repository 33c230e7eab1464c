#pragma once
// Reading what operators hand to cachectl: a file or stdin ("-"), and a pod given as JSON or
// YAML, bare or inside an AdmissionReview.
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

namespace kcache::cachectl {

// A failure to report to the user as one line; the message says what, where and what to check.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

std::string readInput(const std::string& path);

// Parses JSON, or YAML when the text is not JSON.
nlohmann::json readDocument(const std::string& path);

// readDocument, unwrapping an AdmissionReview's request.object; the result has a spec.
nlohmann::json readPod(const std::string& path);

}  // namespace kcache::cachectl
