#include "webhook/admission_review.h"

#include <cstdint>

namespace kcache::webhook {

namespace {

using nlohmann::json;

constexpr std::string_view kApiVersionV1 = "admission.k8s.io/v1";
constexpr std::string_view kApiVersionV1beta1 = "admission.k8s.io/v1beta1";
constexpr std::string_view kReviewKind = "AdmissionReview";

// Measures the bracket nesting outside strings without building anything, so a body of millions
// of '[' is refused before the parser allocates a value per level.
bool nestingWithin(std::string_view body, int maxDepth) {
  int depth = 0;
  bool inString = false;
  bool escaped = false;
  for (char c : body) {
    if (inString) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        inString = false;
      }
      continue;
    }
    if (c == '"') {
      inString = true;
    } else if (c == '{' || c == '[') {
      if (++depth > maxDepth) return false;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return true;
}

std::string stringField(const json& object, const char* name) {
  if (!object.is_object()) return {};
  const auto it = object.find(name);
  if (it == object.end() || !it->is_string()) return {};
  return it->get<std::string>();
}

core::Unexpected<ReviewError> fail(std::string message) {
  return core::Unexpected<ReviewError>{ReviewError{std::move(message)}};
}

}  // namespace

core::Expected<AdmissionRequest, ReviewError> decodeAdmissionReview(std::string_view body) {
  if (!nestingWithin(body, kMaxReviewNestingDepth)) {
    return fail("could not decode the AdmissionReview: JSON nested deeper than " +
                std::to_string(kMaxReviewNestingDepth) + " levels");
  }
  json review;
  try {
    review = json::parse(body.begin(), body.end());
  } catch (const json::exception& error) {
    return fail(std::string("could not decode the AdmissionReview: ") + error.what());
  }
  if (!review.is_object()) return fail("could not decode the AdmissionReview: not a JSON object");

  AdmissionRequest request;
  request.apiVersion = stringField(review, "apiVersion");
  request.kind = stringField(review, "kind");
  if (request.apiVersion != kApiVersionV1 && request.apiVersion != kApiVersionV1beta1) {
    return fail("unsupported AdmissionReview apiVersion \"" + request.apiVersion +
                "\" (expected admission.k8s.io/v1 or admission.k8s.io/v1beta1)");
  }
  if (request.kind != kReviewKind) {
    return fail("unsupported kind \"" + request.kind + "\" (expected AdmissionReview)");
  }
  const auto found = review.find("request");
  if (found == review.end() || found->is_null()) {
    return fail("malformed AdmissionReview: request is missing or null");
  }
  json& inner = *found;
  if (!inner.is_object()) return fail("malformed AdmissionReview: request is not an object");
  request.uid = stringField(inner, "uid");
  if (request.uid.empty()) return fail("malformed AdmissionReview: request.uid is missing");
  request.operation = stringField(inner, "operation");
  request.namespaceName = stringField(inner, "namespace");
  request.name = stringField(inner, "name");
  if (const auto resource = inner.find("resource"); resource != inner.end()) {
    request.resourceGroup = stringField(*resource, "group");
    request.resourceVersion = stringField(*resource, "version");
    request.resourceName = stringField(*resource, "resource");
  }
  request.subResource = stringField(inner, "subResource");
  if (const auto dryRun = inner.find("dryRun"); dryRun != inner.end() && dryRun->is_boolean()) {
    request.dryRun = dryRun->get<bool>();
  }
  if (const auto object = inner.find("object"); object != inner.end()) {
    request.object = std::move(*object);
  }
  return request;
}

std::string encodeAdmissionResponse(const AdmissionRequest& request,
                                    const AdmissionResponse& response) {
  json answer = json::object();
  answer["uid"] = request.uid;
  answer["allowed"] = response.allowed;
  if (response.patch) {
    answer["patchType"] = "JSONPatch";
    answer["patch"] =
        base64Encode(response.patch->dump(-1, ' ', false, json::error_handler_t::replace));
  }
  json review = json::object();
  review["apiVersion"] = request.apiVersion;
  review["kind"] = request.kind;
  review["response"] = std::move(answer);
  // Replace, not throw, on invalid UTF-8: the answer must always be produced.
  return review.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string base64Encode(std::string_view bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t chunk = (static_cast<uint8_t>(bytes[i]) << 16) |
                           (static_cast<uint8_t>(bytes[i + 1]) << 8) |
                           static_cast<uint8_t>(bytes[i + 2]);
    out += kAlphabet[(chunk >> 18) & 63];
    out += kAlphabet[(chunk >> 12) & 63];
    out += kAlphabet[(chunk >> 6) & 63];
    out += kAlphabet[chunk & 63];
  }
  const size_t rest = bytes.size() - i;
  if (rest == 1) {
    const uint32_t chunk = static_cast<uint8_t>(bytes[i]) << 16;
    out += kAlphabet[(chunk >> 18) & 63];
    out += kAlphabet[(chunk >> 12) & 63];
    out += "==";
  } else if (rest == 2) {
    const uint32_t chunk =
        (static_cast<uint8_t>(bytes[i]) << 16) | (static_cast<uint8_t>(bytes[i + 1]) << 8);
    out += kAlphabet[(chunk >> 18) & 63];
    out += kAlphabet[(chunk >> 12) & 63];
    out += kAlphabet[(chunk >> 6) & 63];
    out += '=';
  }
  return out;
}

}  // namespace kcache::webhook
