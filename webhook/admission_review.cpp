#include "webhook/admission_review.h"

#include <algorithm>
#include <cstdint>
#include <optional>

#include <simdjson.h>

#include "core/go_json.h"
#include "core/pod_contract.h"

namespace kcache::webhook {

namespace {

using nlohmann::json;
namespace dom = simdjson::dom;

constexpr std::string_view kApiVersionV1 = "admission.k8s.io/v1";
constexpr std::string_view kApiVersionV1beta1 = "admission.k8s.io/v1beta1";
constexpr std::string_view kReviewKind = "AdmissionReview";

// Bodies up to this size are decoded by a parser kept per thread (its buffers are reused);
// larger ones get a parser of their own, so one huge body does not pin its memory for good.
constexpr size_t kReusedParserCapacity = 256 * 1024;
// simdjson's depth counts brackets, as the limit does.
constexpr size_t kParserMaxDepth = kMaxReviewNestingDepth;

json copyOf(dom::element value) {
  switch (value.type()) {
    case dom::element_type::OBJECT: {
      json out = json::object();
      for (const auto field : dom::object(value)) out[std::string(field.key)] = copyOf(field.value);
      return out;
    }
    case dom::element_type::ARRAY: {
      json out = json::array();
      for (const dom::element item : dom::array(value)) out.push_back(copyOf(item));
      return out;
    }
    case dom::element_type::STRING:
      return std::string(std::string_view(value));
    case dom::element_type::INT64:
      return int64_t(value);
    case dom::element_type::UINT64:
      return uint64_t(value);
    case dom::element_type::DOUBLE:
      return double(value);
    case dom::element_type::BOOL:
      return bool(value);
    case dom::element_type::NULL_VALUE:
      break;
  }
  return nullptr;
}

// A JSON value of the same type as `value` without its contents: enough for the checks that only
// ask whether a member exists or what type it has.
json shapeOf(dom::element value) {
  switch (value.type()) {
    case dom::element_type::OBJECT:
      return json::object();
    case dom::element_type::ARRAY:
      return json::array();
    default:
      return copyOf(value);
  }
}

// Keeps the members of an object for which `select` returns a value, dropping the others. Members
// are visited in order, so a repeated key keeps its last value, as a full parse does. A value that
// is not an object keeps only its shape (the readers treat it as malformed either way).
template <typename Select>
json selectMembers(dom::element value, Select&& select) {
  if (value.type() != dom::element_type::OBJECT) return shapeOf(value);
  json out = json::object();
  for (const auto field : dom::object(value)) {
    if (auto kept = select(field.key, field.value)) out[std::string(field.key)] = std::move(*kept);
  }
  return out;
}

json arrayOf(dom::element value, json (*each)(dom::element)) {
  if (value.type() != dom::element_type::ARRAY) return shapeOf(value);
  json out = json::array();
  for (const dom::element item : dom::array(value)) out.push_back(each(item));
  return out;
}

bool isArgoTemplateVariable(dom::element variable) {
  if (variable.type() != dom::element_type::OBJECT) return false;
  std::string_view name;
  for (const auto field : dom::object(variable)) {
    if (field.key == "name") {
      name = field.value.type() == dom::element_type::STRING ? std::string_view(field.value) : "";
    }
  }
  return name == core::contract::kArgoTemplateEnv;
}

// The ARGO_TEMPLATE variables of an env list, in order, with their name and literal value:
// core::findArgoTemplate reads nothing else (the first variable of that name decides).
json argoTemplateEnv(dom::element env) {
  if (env.type() != dom::element_type::ARRAY) return shapeOf(env);
  json out = json::array();
  for (const dom::element variable : dom::array(env)) {
    if (!isArgoTemplateVariable(variable)) continue;
    out.push_back(selectMembers(
        variable, [](std::string_view key, dom::element value) -> std::optional<json> {
          if (key == "name" || key == "value") return copyOf(value);
          return std::nullopt;
        }));
  }
  return out;
}

// A container: what the TFX check and core::findArgoTemplate read, and what the echo container
// of a hit inherits from `main` (its securityContext and resources).
json containerView(dom::element container) {
  return selectMembers(
      container, [](std::string_view key, dom::element value) -> std::optional<json> {
        if (key == "name" || key == "command" || key == "securityContext" || key == "resources") {
          return copyOf(value);
        }
        if (key == "env") return argoTemplateEnv(value);
        return std::nullopt;
      });
}

json specView(dom::element spec) {
  return selectMembers(spec, [](std::string_view key, dom::element value) -> std::optional<json> {
    if (key == "containers" || key == "initContainers") return arrayOf(value, containerView);
    // The patch only asks whether these exist.
    if (key == "affinity" || key == "nodeSelector") return shapeOf(value);
    // The echo container's security settings depend on the pod's (webhook/patch.h).
    if (key == "securityContext" || key == "os") return copyOf(value);
    return std::nullopt;
  });
}

json metadataView(dom::element metadata) {
  return selectMembers(metadata,
                       [](std::string_view key, dom::element value) -> std::optional<json> {
                         // ownerReferences: the Workflow a replayed task result belongs to (its
                         // uid); generateName: what the admission stamp binds when there is no
                         // name yet.
                         if (key == "name" || key == "generateName" || key == "namespace" ||
                             key == "labels" || key == "annotations" || key == "ownerReferences") {
                           return copyOf(value);
                         }
                         return std::nullopt;
                       });
}

json podView(dom::element pod) {
  return selectMembers(pod, [](std::string_view key, dom::element value) -> std::optional<json> {
    if (key == "metadata") return metadataView(value);
    if (key == "spec") return specView(value);
    return std::nullopt;
  });
}

std::string stringOf(dom::element value) {
  return value.type() == dom::element_type::STRING ? std::string(std::string_view(value))
                                                   : std::string();
}

// request.userInfo.username; "" when absent or not a string.
std::string userNameOf(dom::element userInfo) {
  if (userInfo.type() != dom::element_type::OBJECT) return "";
  for (const auto field : dom::object(userInfo)) {
    if (field.key == "username") return stringOf(field.value);
  }
  return "";
}

void readResource(dom::element resource, AdmissionRequest& request) {
  request.resourceGroup.clear();
  request.resourceVersion.clear();
  request.resourceName.clear();
  if (resource.type() != dom::element_type::OBJECT) return;
  for (const auto field : dom::object(resource)) {
    if (field.key == "group") {
      request.resourceGroup = stringOf(field.value);
    } else if (field.key == "version") {
      request.resourceVersion = stringOf(field.value);
    } else if (field.key == "resource") {
      request.resourceName = stringOf(field.value);
    }
  }
}

core::Unexpected<ReviewError> fail(std::string message) {
  return core::Unexpected<ReviewError>{ReviewError{std::move(message)}};
}

}  // namespace

core::Expected<AdmissionRequest, ReviewError> decodeAdmissionReview(std::string_view body) {
  thread_local dom::parser reusedParser;
  std::optional<dom::parser> ownParser;
  dom::parser& parser = body.size() <= kReusedParserCapacity ? reusedParser : ownParser.emplace();
  // The parser refuses deep nesting while indexing, before it builds anything, so a body of
  // millions of '[' costs little.
  if (parser.max_depth() != kParserMaxDepth || parser.capacity() < body.size()) {
    const size_t capacity = std::max({parser.capacity(), body.size(), size_t{16 * 1024}});
    if (parser.allocate(capacity, kParserMaxDepth) != simdjson::SUCCESS) {
      return fail("could not decode the AdmissionReview: out of memory for " +
                  std::to_string(body.size()) + " bytes");
    }
  }
  dom::element review;
  if (const auto error = parser.parse(body.data(), body.size()).get(review)) {
    if (error == simdjson::DEPTH_ERROR) {
      return fail("could not decode the AdmissionReview: JSON nested deeper than " +
                  std::to_string(kMaxReviewNestingDepth) + " levels");
    }
    return fail(std::string("could not decode the AdmissionReview: ") +
                simdjson::error_message(error));
  }
  if (review.type() != dom::element_type::OBJECT) {
    return fail("could not decode the AdmissionReview: not a JSON object");
  }

  AdmissionRequest request;
  std::optional<dom::element> inner;
  // Every member is visited so that a repeated key keeps its last value, as a full parse does.
  for (const auto field : dom::object(review)) {
    if (field.key == "apiVersion") {
      request.apiVersion = stringOf(field.value);
    } else if (field.key == "kind") {
      request.kind = stringOf(field.value);
    } else if (field.key == "request") {
      inner = field.value;
    }
  }
  if (request.apiVersion != kApiVersionV1 && request.apiVersion != kApiVersionV1beta1) {
    return fail("unsupported AdmissionReview apiVersion \"" + request.apiVersion +
                "\" (expected admission.k8s.io/v1 or admission.k8s.io/v1beta1)");
  }
  if (request.kind != kReviewKind) {
    return fail("unsupported kind \"" + request.kind + "\" (expected AdmissionReview)");
  }
  if (!inner || inner->is_null()) {
    return fail("malformed AdmissionReview: request is missing or null");
  }
  if (inner->type() != dom::element_type::OBJECT) {
    return fail("malformed AdmissionReview: request is not an object");
  }
  for (const auto field : dom::object(*inner)) {
    const std::string_view key = field.key;
    if (key == "uid") {
      request.uid = stringOf(field.value);
    } else if (key == "operation") {
      request.operation = stringOf(field.value);
    } else if (key == "namespace") {
      request.namespaceName = stringOf(field.value);
    } else if (key == "name") {
      request.name = stringOf(field.value);
    } else if (key == "subResource") {
      request.subResource = stringOf(field.value);
    } else if (key == "dryRun") {
      request.dryRun = field.value.type() == dom::element_type::BOOL && bool(field.value);
    } else if (key == "userInfo") {
      request.userName = userNameOf(field.value);
    } else if (key == "resource") {
      readResource(field.value, request);
    } else if (key == "object") {
      request.object = podView(field.value);
    }
  }
  if (request.uid.empty()) return fail("malformed AdmissionReview: request.uid is missing");
  return request;
}

std::string encodeAdmissionResponse(const AdmissionRequest& request,
                                    const AdmissionResponse& response) {
  // Written directly rather than through a JSON tree: the base64 patch is most of the answer, and
  // a serializer would copy and re-escape it. Members in the order a sorted-map serializer uses.
  const std::string_view patch = response.patch ? std::string_view(response.patch->text()) : "";
  std::string out;
  out.reserve(160 + request.uid.size() + (patch.size() + 2) / 3 * 4);
  out += R"({"apiVersion":)";
  core::gojson::appendQuoted(out, request.apiVersion);
  out += R"(,"kind":)";
  core::gojson::appendQuoted(out, request.kind);
  out += R"(,"response":{"allowed":)";
  out += response.allowed ? "true" : "false";
  if (response.patch) {
    out += R"(,"patch":")";
    appendBase64(out, patch);
    out += R"(","patchType":"JSONPatch")";
  }
  out += R"(,"uid":)";
  core::gojson::appendQuoted(out, request.uid);
  out += "}}";
  return out;
}

void appendBase64(std::string& out, std::string_view bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const size_t start = out.size();
  out.resize(start + (bytes.size() + 2) / 3 * 4);
  char* next = out.data() + start;
  const auto byteAt = [&](size_t i) {
    return static_cast<uint32_t>(static_cast<uint8_t>(bytes[i]));
  };
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t chunk = (byteAt(i) << 16) | (byteAt(i + 1) << 8) | byteAt(i + 2);
    *next++ = kAlphabet[(chunk >> 18) & 63];
    *next++ = kAlphabet[(chunk >> 12) & 63];
    *next++ = kAlphabet[(chunk >> 6) & 63];
    *next++ = kAlphabet[chunk & 63];
  }
  const size_t rest = bytes.size() - i;
  if (rest == 0) return;
  const uint32_t chunk = (byteAt(i) << 16) | (rest == 2 ? byteAt(i + 1) << 8 : 0);
  *next++ = kAlphabet[(chunk >> 18) & 63];
  *next++ = kAlphabet[(chunk >> 12) & 63];
  *next++ = rest == 2 ? kAlphabet[(chunk >> 6) & 63] : '=';
  *next = '=';
}

JsonPatch::JsonPatch(const json& patch)
    : text_(patch.dump(-1, ' ', false, json::error_handler_t::replace)) {}

JsonPatch::operator json() const {
  return json::parse(text_);
}

bool operator==(const json& tree, const JsonPatch& patch) {
  return tree == json(patch);
}

std::ostream& operator<<(std::ostream& out, const JsonPatch& patch) {
  return out << patch.text();
}

void appendJsonString(std::string& out, std::string_view value) {
  // Invalid UTF-8 (possible only in outputs read from the store: reviews are validated when
  // decoded) takes nlohmann's own replacement path, so the text stays what dump() gives.
  const bool ascii = std::all_of(value.begin(), value.end(),
                                 [](char c) { return static_cast<unsigned char>(c) < 0x80; });
  if (!ascii && !simdjson::validate_utf8(value.data(), value.size())) {
    out += json(std::string(value)).dump(-1, ' ', false, json::error_handler_t::replace);
    return;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  out.reserve(out.size() + value.size() + 2);
  out += '"';
  size_t plainFrom = 0;
  for (size_t i = 0; i < value.size(); ++i) {
    const auto c = static_cast<unsigned char>(value[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(value.data() + plainFrom, i - plainFrom);
    plainFrom = i + 1;
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        out += "\\u00";
        out += kHex[c >> 4];
        out += kHex[c & 0xF];
    }
  }
  out.append(value.data() + plainFrom, value.size() - plainFrom);
  out += '"';
}

std::string base64Encode(std::string_view bytes) {
  std::string out;
  appendBase64(out, bytes);
  return out;
}

}  // namespace kcache::webhook
