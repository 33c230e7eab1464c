#pragma once
// The execution key: byte-for-byte the key Kubeflow Pipelines v1 computes from ARGO_TEMPLATE
// (DESIGN.md section 4), so that entries written by Kubeflow's own cache server still match.
#include <string>
#include <string_view>

#include "core/expected.h"

namespace kcache::core {

enum class KeyErrorKind {
  kJsonSyntax,     // not JSON as Go's encoding/json reads it
  kJsonType,       // valid JSON, but not an object (or a number out of float64 range)
  kTemplateShape,  // "container" is not an object: Kubeflow panics here, kcache refuses
};

struct KeyError {
  KeyErrorKind kind;
  std::string message;
};

std::string_view toString(KeyErrorKind kind);

// A lower-case hex SHA-256. Only computeExecutionKey and fromHex make one.
class ExecutionKey {
 public:
  // Accepts exactly 64 lower-case hex characters (the form stored in the annotation).
  static Expected<ExecutionKey, std::string> fromHex(std::string_view hex);

  const std::string& hex() const noexcept { return hex_; }
  // A short form for logs: the first 12 characters and an ellipsis.
  std::string shortForm() const;

  friend bool operator==(const ExecutionKey&, const ExecutionKey&) = default;

 private:
  explicit ExecutionKey(std::string hex) : hex_(std::move(hex)) {}
  friend Expected<ExecutionKey, KeyError> computeExecutionKey(std::string_view);
  std::string hex_;
};

// The exact bytes Kubeflow hashes: the kept fields of the template, serialized as Go's
// encoding/json marshals a map[string]interface{}.
Expected<std::string, KeyError> canonicalTemplate(std::string_view argoTemplate);

// SHA-256 of canonicalTemplate(argoTemplate). Never throws on any input.
Expected<ExecutionKey, KeyError> computeExecutionKey(std::string_view argoTemplate);

}  // namespace kcache::core
