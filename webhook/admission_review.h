#pragma once
// AdmissionReview decoding and encoding (admission.k8s.io/v1 and v1beta1), as pure functions.
// The answer always echoes the request's apiVersion, kind and uid.
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

#include "core/expected.h"

namespace kcache::webhook {

// The parts of an AdmissionReview request that kcache reads.
struct AdmissionRequest {
  std::string apiVersion;  // "admission.k8s.io/v1" or "admission.k8s.io/v1beta1"
  std::string kind;        // "AdmissionReview"
  std::string uid;
  std::string operation;  // CREATE, UPDATE, ...
  std::string namespaceName;
  std::string name;  // may be empty (generateName)
  std::string resourceGroup, resourceVersion, resourceName, subResource;
  bool dryRun = false;
  // request.userInfo.username: who asked the API server to create the object (for pods of a
  // workflow, the Argo workflow controller's service account). Only as trustworthy as the caller
  // of /mutate: authenticate kube-apiserver (--client-ca-file) before relying on it.
  std::string userName;
  // The parts of request.object that the decision and the patch read (null when absent):
  // metadata name, generateName, namespace, labels, annotations and ownerReferences; spec
  // containers and initContainers (name, command, securityContext, resources, and the ARGO_TEMPLATE
  // entries of env with name and value); spec securityContext and os; whether spec.affinity and
  // spec.nodeSelector exist. A member of an unexpected type keeps its type, so the decision sees
  // the same pod as in the full object.
  nlohmann::json object;
};

struct ReviewError {
  std::string message;  // returned to the client with status 400
};

// Deepest JSON nesting accepted in a review. Kubernetes objects are far shallower; the limit
// bounds the work and memory a hostile body can cause.
inline constexpr int kMaxReviewNestingDepth = 512;

// Decodes a request body (simdjson; only the parts kcache reads are copied out). Never throws:
// anything that is not a usable AdmissionReview comes back as a ReviewError saying what is wrong.
core::Expected<AdmissionRequest, ReviewError> decodeAdmissionReview(std::string_view body);

// A JSON Patch document kept as its serialized text, which is what the answer base64-encodes:
// the hit path writes it directly instead of building and dumping a JSON tree. The text is
// byte for byte what nlohmann's dump() gives for the same patch (members sorted, no spaces).
class JsonPatch {
 public:
  JsonPatch() = default;
  explicit JsonPatch(std::string text) : text_(std::move(text)) {}
  // From a patch built as JSON (tests, tools); invalid UTF-8 is replaced, never thrown on.
  JsonPatch(const nlohmann::json& patch);  // NOLINT(google-explicit-constructor): reads as JSON

  const std::string& text() const { return text_; }
  std::string dump() const { return text_; }
  // Parsed back, to apply it with nlohmann's json::patch.
  operator nlohmann::json() const;  // NOLINT(google-explicit-constructor)

  friend bool operator==(const JsonPatch&, const JsonPatch&) = default;
  friend bool operator==(const nlohmann::json& tree, const JsonPatch& patch);
  friend std::ostream& operator<<(std::ostream& out, const JsonPatch& patch);

 private:
  std::string text_;
};

// Appends `value` as a JSON string exactly as nlohmann's dump() writes it (UTF-8 kept, control
// characters escaped, invalid UTF-8 replaced by U+FFFD).
void appendJsonString(std::string& out, std::string_view value);

struct AdmissionResponse {
  bool allowed = true;             // kcache never denies; the field exists to make that explicit
  std::optional<JsonPatch> patch;  // a JSON Patch array, absent when nothing changes
};

// Encodes the answer in the request's version, echoing apiVersion, kind and uid; patchType
// JSONPatch and the base64 patch only when there is a patch.
std::string encodeAdmissionResponse(const AdmissionRequest& request,
                                    const AdmissionResponse& response);

std::string base64Encode(std::string_view bytes);
void appendBase64(std::string& out, std::string_view bytes);

}  // namespace kcache::webhook
