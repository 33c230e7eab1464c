#pragma once
// The execution key: byte-for-byte the key Kubeflow Pipelines v1 computes from ARGO_TEMPLATE
// (docs/execution-key.md), so that entries written by Kubeflow's own cache server still match.
// Two keys exist for one template: the template-only key of Kubeflow <= 2.17, and the key bound
// to the pod's namespace that Kubeflow 2.18 introduced. Both hash the same canonical bytes.
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

// How a key appears in logs and messages: its first 12 characters and an ellipsis (a shorter
// text, such as a malformed key from a pod, as it is).
std::string keyPreview(std::string_view key);

// A lower-case hex SHA-256. Only computeExecutionKey and fromHex make one.
class ExecutionKey {
 public:
  // Accepts exactly 64 lower-case hex characters (the form stored in the annotation).
  static Expected<ExecutionKey, std::string> fromHex(std::string_view hex);

  const std::string& hex() const noexcept { return hex_; }
  // keyPreview(hex()).
  std::string shortForm() const;

  friend bool operator==(const ExecutionKey&, const ExecutionKey&) = default;

 private:
  explicit ExecutionKey(std::string hex) : hex_(std::move(hex)) {}
  friend class CanonicalTemplate;
  std::string hex_;
};

// Which key a cache uses. kTemplateOnly: the SHA-256 of the canonical template (Kubeflow before
// 2.18, and kcache's cluster scope, where an entry is shared by every namespace).
// kNamespaceBound: the SHA-256 of Go's json.Marshal of {"namespace": ns, "template": <the kept
// fields>} (Kubeflow 2.18 and later, and kcache's namespace scope).
enum class KeyBinding { kTemplateOnly, kNamespaceBound };
std::string_view toString(KeyBinding binding);

// The kept fields of one template as Go marshals them, computed once; every key of the template
// is a hash over these bytes, so asking for a second key costs one SHA-256, not a second parse.
class CanonicalTemplate {
 public:
  // Never throws on any input.
  static Expected<CanonicalTemplate, KeyError> of(std::string_view argoTemplate);

  const std::string& bytes() const noexcept { return bytes_; }

  ExecutionKey templateOnlyKey() const;
  ExecutionKey namespaceBoundKey(std::string_view namespaceName) const;
  ExecutionKey key(KeyBinding binding, std::string_view namespaceName) const;
  // The exact bytes the namespace-bound key hashes (for `cachectl key --canonical`).
  std::string namespaceBoundBytes(std::string_view namespaceName) const;

 private:
  explicit CanonicalTemplate(std::string bytes) : bytes_(std::move(bytes)) {}
  std::string bytes_;
};

// The exact bytes Kubeflow hashes: the kept fields of the template, serialized as Go's
// encoding/json marshals a map[string]interface{}.
Expected<std::string, KeyError> canonicalTemplate(std::string_view argoTemplate);

// The template-only key: SHA-256 of canonicalTemplate(argoTemplate). Never throws on any input.
Expected<ExecutionKey, KeyError> computeExecutionKey(std::string_view argoTemplate);

// The key of `binding` for a pod of `namespaceName`. Never throws on any input.
Expected<ExecutionKey, KeyError> computeExecutionKey(std::string_view argoTemplate,
                                                     KeyBinding binding,
                                                     std::string_view namespaceName);

}  // namespace kcache::core
