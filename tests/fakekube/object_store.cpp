#include "tests/fakekube/object_store.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <ctime>
#include <stdexcept>

namespace kcache::fakekube {
namespace {

using json = nlohmann::json;

const ResourceInfo kWellKnown[] = {
    {"v1", "pods", "Pod"},
    {"v1", "configmaps", "ConfigMap"},
    {"v1", "secrets", "Secret"},
    {"v1", "services", "Service"},
    {"v1", "serviceaccounts", "ServiceAccount"},
    {"v1", "events", "Event"},
    {"coordination.k8s.io/v1", "leases", "Lease"},
    {"argoproj.io/v1alpha1", "workflowtaskresults", "WorkflowTaskResult"},
    {"argoproj.io/v1alpha1", "workflows", "Workflow"},
    {"argoproj.io/v1alpha1", "workflowtasksets", "WorkflowTaskSet"},
    {"argoproj.io/v1alpha1", "workflowtemplates", "WorkflowTemplate"},
};

// "widgets" -> "Widget", "policies" -> "Policy".
std::string kindFromPlural(const std::string& plural) {
  std::string singular = plural;
  if (singular.size() > 3 && singular.ends_with("ies")) {
    singular.replace(singular.size() - 3, 3, "y");
  } else if (singular.size() > 1 && singular.ends_with('s')) {
    singular.pop_back();
  }
  if (!singular.empty()) {
    singular[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(singular[0])));
  }
  return singular;
}

std::string keyOf(const std::string& ns, const std::string& name) {
  return ns + "/" + name;
}

std::string nowRfc3339() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

// Looks like the API server's UUIDs, and is unique and predictable within one server.
std::string uidFor(int64_t n) {
  char text[64];
  std::snprintf(text, sizeof text, "00000000-0000-4000-8000-%012lld", static_cast<long long>(n));
  return text;
}

// Base-36 suffix for generateName, five characters like the API server's.
std::string nameSuffix(int64_t n) {
  static constexpr char kDigits[] = "bcdfghjklmnpqrstvwxz2456789";
  std::string suffix;
  for (int i = 0; i < 5; ++i) {
    suffix.push_back(kDigits[n % (sizeof kDigits - 1)]);
    n /= static_cast<int64_t>(sizeof kDigits - 1);
  }
  return suffix;
}

std::string stringField(const json& object, const char* field) {
  if (!object.is_object()) return "";
  const auto it = object.find(field);
  return it != object.end() && it->is_string() ? it->get<std::string>() : "";
}

const json& metadataOf(const json& object) {
  static const json kEmpty = json::object();
  if (!object.is_object()) return kEmpty;
  const auto it = object.find("metadata");
  return it != object.end() && it->is_object() ? *it : kEmpty;
}

json details(const ResourceInfo& type, const std::string& name) {
  return {{"name", name}, {"group", type.group()}, {"kind", type.plural}};
}

json watchEvent(const std::string& type, const json& object) {
  return {{"type", type}, {"object", object}};
}

ApiResult badRequest(const std::string& message) {
  return {400, statusObject(400, "BadRequest", message)};
}

}  // namespace

json statusObject(int code, const std::string& reason, const std::string& message,
                  const json& details) {
  json status = {{"kind", "Status"},    {"apiVersion", "v1"}, {"metadata", json::object()},
                 {"status", "Failure"}, {"message", message}, {"reason", reason},
                 {"code", code}};
  if (!details.is_null()) status["details"] = details;
  return status;
}

std::string reasonForStatus(int code) {
  switch (code) {
    case 400:
      return "BadRequest";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "NotFound";
    case 405:
      return "MethodNotAllowed";
    case 409:
      return "Conflict";
    case 410:
      return "Expired";
    case 415:
      return "UnsupportedMediaType";
    case 422:
      return "Invalid";
    case 429:
      return "TooManyRequests";
    case 503:
      return "ServiceUnavailable";
    case 504:
      return "Timeout";
    default:
      return "InternalError";
  }
}

std::string ResourceInfo::group() const {
  const size_t slash = apiVersion.find('/');
  return slash == std::string::npos ? "" : apiVersion.substr(0, slash);
}

bool ResourceInfo::builtIn() const {
  const std::string g = group();
  return g.find('.') == std::string::npos || g.ends_with(".k8s.io");
}

std::string ResourceInfo::qualifiedName() const {
  const std::string g = group();
  return g.empty() ? plural : plural + "." + g;
}

ResourceInfo ObjectStore::resource(const std::string& plural, const std::string& apiVersion,
                                   const std::string& kindHint) {
  if (const auto it = resources_.find(plural); it != resources_.end()) return it->second;
  ResourceInfo info{apiVersion.empty() ? "v1" : apiVersion, plural,
                    kindHint.empty() ? kindFromPlural(plural) : kindHint};
  for (const ResourceInfo& known : kWellKnown) {
    if (known.plural == plural) info = known;
  }
  resources_.emplace(plural, info);
  return info;
}

std::optional<ResourceInfo> ObjectStore::served(const std::string& plural,
                                                const std::string& apiVersion,
                                                const std::string& kindHint) {
  const bool known = resources_.count(plural) > 0 ||
                     std::any_of(std::begin(kWellKnown), std::end(kWellKnown),
                                 [&](const ResourceInfo& r) { return r.plural == plural; });
  if (!known) {
    const ResourceInfo asked{apiVersion, plural, ""};
    const bool closedGroup =
        asked.builtIn() ||
        std::any_of(std::begin(kWellKnown), std::end(kWellKnown),
                    [&](const ResourceInfo& r) { return r.group() == asked.group(); });
    if (closedGroup) return std::nullopt;
  }
  ResourceInfo info = resource(plural, apiVersion, kindHint);
  if (info.apiVersion != apiVersion) return std::nullopt;
  return info;
}

ApiResult ObjectStore::notFound(const ResourceInfo& type, const std::string& name) const {
  return {404, statusObject(404, "NotFound", type.qualifiedName() + " \"" + name + "\" not found",
                            details(type, name))};
}

ApiResult ObjectStore::conflict(const ResourceInfo& type, const std::string& name) const {
  return {409,
          statusObject(409, "Conflict",
                       "Operation cannot be fulfilled on " + type.qualifiedName() + " \"" + name +
                           "\": the object has been modified; please apply your changes to "
                           "the latest version and try again",
                       details(type, name))};
}

std::optional<ApiResult> ObjectStore::preconditionFailure(const ResourceInfo& type,
                                                          const std::string& name,
                                                          const json& current,
                                                          const json& expected) const {
  auto given = [&](const char* field) -> const json* {
    const auto it = expected.find(field);
    if (it == expected.end() || it->is_null() || *it == "") return nullptr;
    return &*it;
  };
  if (const json* uid = given("uid"); uid && *uid != current["uid"]) {
    return ApiResult{409,
                     statusObject(409, "Conflict",
                                  "Precondition failed: UID in precondition: " +
                                      (uid->is_string() ? uid->get<std::string>() : uid->dump()) +
                                      ", UID in object meta: " + current["uid"].get<std::string>(),
                                  details(type, name))};
  }
  if (const json* version = given("resourceVersion");
      version && *version != current["resourceVersion"]) {
    return conflict(type, name);
  }
  return std::nullopt;
}

json& ObjectStore::store(Objects& objects, const std::string& key, json object,
                         const std::string& plural, const std::string& type, json previous) {
  object["metadata"]["resourceVersion"] = std::to_string(++version_);
  json& stored = objects[key] = std::move(object);
  appendEvent(StoredEvent{version_, plural, type, stored, std::move(previous)});
  return stored;
}

void ObjectStore::appendEvent(StoredEvent event) {
  history_.push_back(std::move(event));
  while (history_.size() > historyLimit_) {
    compactedThrough_ = std::max(compactedThrough_, history_.front().version);
    history_.pop_front();
  }
}

ApiResult ObjectStore::create(const ResourceInfo& type, const std::string& ns, json object,
                              bool dryRun) {
  if (!object.is_object()) return badRequest("the body of the request is not a JSON object");
  if (!object.contains("metadata")) object["metadata"] = json::object();
  json& metadata = object["metadata"];
  if (!metadata.is_object()) return badRequest("metadata is not an object");
  const std::string bodyNamespace = stringField(metadata, "namespace");
  if (!bodyNamespace.empty() && bodyNamespace != ns) {
    return badRequest(
        "the namespace of the provided object does not match the namespace sent on the request");
  }
  std::string name = stringField(metadata, "name");
  if (name.empty() && !stringField(metadata, "generateName").empty()) {
    name = stringField(metadata, "generateName") + nameSuffix(uidCounter_ + 1);
  }
  if (name.empty()) {
    return {422, statusObject(422, "Invalid",
                              type.kind + " \"\" is invalid: metadata.name: Required value: name "
                                          "or generateName is required",
                              details(type, ""))};
  }
  Objects& objects = objects_[type.plural];
  const std::string key = keyOf(ns, name);
  if (objects.count(key)) {
    return {409, statusObject(409, "AlreadyExists",
                              type.qualifiedName() + " \"" + name + "\" already exists",
                              details(type, name))};
  }
  if (stringField(object, "kind").empty()) object["kind"] = type.kind;
  if (stringField(object, "apiVersion").empty()) object["apiVersion"] = type.apiVersion;
  metadata["name"] = name;
  metadata["namespace"] = ns;
  metadata["uid"] = uidFor(++uidCounter_);
  metadata["creationTimestamp"] = nowRfc3339();
  metadata.erase("resourceVersion");
  if (dryRun) return {201, object};
  return {201, store(objects, key, std::move(object), type.plural, "ADDED", nullptr)};
}

ApiResult ObjectStore::update(const ResourceInfo& type, const std::string& ns,
                              const std::string& name, json object, bool dryRun) {
  if (!object.is_object() || !object.contains("metadata") || !object["metadata"].is_object()) {
    return badRequest("the body of the request is not a " + type.kind);
  }
  json& metadata = object["metadata"];
  const std::string bodyName = stringField(metadata, "name");
  if (!bodyName.empty() && bodyName != name) {
    return badRequest("the name of the object (" + bodyName +
                      ") does not match the name on the URL (" + name + ")");
  }
  const std::string bodyNamespace = stringField(metadata, "namespace");
  if (!bodyNamespace.empty() && bodyNamespace != ns) {
    return badRequest(
        "the namespace of the provided object does not match the namespace sent on the request");
  }
  Objects& objects = objects_[type.plural];
  const auto it = objects.find(keyOf(ns, name));
  if (it == objects.end()) return notFound(type, name);
  const json& current = it->second["metadata"];
  if (auto failed = preconditionFailure(type, name, current, metadata)) return *failed;
  if (!type.builtIn() && stringField(metadata, "resourceVersion").empty()) {
    return {422, statusObject(422, "Invalid",
                              type.kind + "." + type.group() + " \"" + name +
                                  "\" is invalid: metadata.resourceVersion: Invalid value: 0x0: "
                                  "must be specified for an update",
                              details(type, name))};
  }
  if (stringField(object, "kind").empty()) object["kind"] = type.kind;
  if (stringField(object, "apiVersion").empty()) object["apiVersion"] = type.apiVersion;
  metadata["name"] = name;
  metadata["namespace"] = ns;
  for (const char* field : {"uid", "creationTimestamp"}) metadata[field] = current[field];
  if (dryRun) {
    metadata["resourceVersion"] = current["resourceVersion"];
    return {200, object};
  }
  json previous = std::move(it->second);  // replaced right below
  return {200, store(objects, it->first, std::move(object), type.plural, "MODIFIED",
                     std::move(previous))};
}

ApiResult ObjectStore::mergePatch(const ResourceInfo& type, const std::string& ns,
                                  const std::string& name, const json& patch, bool dryRun) {
  if (!patch.is_object()) return badRequest("merge patch is not a JSON object");
  Objects& objects = objects_[type.plural];
  const auto it = objects.find(keyOf(ns, name));
  if (it == objects.end()) return notFound(type, name);
  const json& current = it->second["metadata"];
  if (auto failed = preconditionFailure(type, name, current, metadataOf(patch))) return *failed;
  json patched = it->second;
  patched.merge_patch(patch);
  if (!patched.contains("metadata") || !patched["metadata"].is_object()) {
    patched["metadata"] = json::object();
  }
  for (const char* field : {"name", "namespace", "uid", "creationTimestamp", "resourceVersion"}) {
    patched["metadata"][field] = current[field];
  }
  for (const char* field : {"kind", "apiVersion"}) patched[field] = it->second[field];
  if (dryRun) return {200, patched};
  json previous = std::move(it->second);  // replaced right below
  return {200, store(objects, it->first, std::move(patched), type.plural, "MODIFIED",
                     std::move(previous))};
}

ApiResult ObjectStore::remove(const ResourceInfo& type, const std::string& ns,
                              const std::string& name, const json& options, bool dryRun) {
  Objects& objects = objects_[type.plural];
  const auto it = objects.find(keyOf(ns, name));
  if (it == objects.end()) return notFound(type, name);
  const json& current = it->second["metadata"];
  if (options.is_object() && options.contains("preconditions") &&
      options["preconditions"].is_object()) {
    if (auto failed = preconditionFailure(type, name, current, options["preconditions"])) {
      return *failed;
    }
  }
  json object = it->second;
  if (dryRun) return {200, object};
  objects.erase(it);
  object["metadata"]["resourceVersion"] = std::to_string(++version_);
  appendEvent(StoredEvent{version_, type.plural, "DELETED", object, nullptr});
  return {200, object};
}

ApiResult ObjectStore::get(const ResourceInfo& type, const std::string& ns,
                           const std::string& name) const {
  if (auto found = object(type.plural, ns, name)) return {200, std::move(*found)};
  return notFound(type, name);
}

ApiResult ObjectStore::list(const ResourceInfo& type, const std::string& ns,
                            const std::string& selectorText, int64_t limit,
                            const std::string& continueToken) {
  std::shared_ptr<Snapshot> snapshot;
  size_t offset = 0;
  if (!continueToken.empty()) {
    // Continue tokens look like "<snapshot id>:<offset>".
    const size_t colon = continueToken.find(':');
    std::map<int64_t, std::shared_ptr<Snapshot>>::const_iterator it = snapshots_.end();
    try {
      if (colon != std::string::npos) {
        it = snapshots_.find(std::stoll(continueToken.substr(0, colon)));
        offset = std::stoull(continueToken.substr(colon + 1));
      }
    } catch (const std::exception&) {
      it = snapshots_.end();
    }
    if (it == snapshots_.end() || it->second->version < compactedThrough_) {
      return {410, statusObject(410, "Expired",
                                "The provided continue parameter is too old to display a "
                                "consistent list result. You can start a new list without the "
                                "continue parameter.")};
    }
    snapshot = it->second;
  } else {
    std::optional<LabelSelector> selector;
    try {
      selector.emplace(selectorText);
    } catch (const std::invalid_argument& e) {
      return badRequest(e.what());
    }
    snapshot = std::make_shared<Snapshot>();
    snapshot->version = version_;
    if (const auto objects = objects_.find(type.plural); objects != objects_.end()) {
      for (const auto& [key, object] : objects->second) {
        if ((ns.empty() || object["metadata"]["namespace"] == ns) && selector->matches(object)) {
          snapshot->items.push_back(object);
        }
      }
    }
  }
  json items = json::array();
  const size_t end = limit > 0
                         ? std::min(snapshot->items.size(), offset + static_cast<size_t>(limit))
                         : snapshot->items.size();
  for (size_t i = std::min(offset, end); i < end; ++i) items.push_back(snapshot->items[i]);
  json metadata = {{"resourceVersion", std::to_string(snapshot->version)}};
  if (end < snapshot->items.size()) {
    const int64_t id = ++snapshotCounter_;
    snapshots_[id] = snapshot;
    metadata["continue"] = std::to_string(id) + ":" + std::to_string(end);
    metadata["remainingItemCount"] = static_cast<int64_t>(snapshot->items.size() - end);
  }
  return {200,
          {{"kind", type.kind + "List"},
           {"apiVersion", type.apiVersion},
           {"metadata", std::move(metadata)},
           {"items", std::move(items)}}};
}

ObjectStore::WatchStart ObjectStore::startWatch(const ResourceInfo& type, const std::string& ns,
                                                const LabelSelector& selector,
                                                const std::string& resourceVersion) const {
  WatchStart start;
  if (resourceVersion.empty() || resourceVersion == "0") {
    if (const auto objects = objects_.find(type.plural); objects != objects_.end()) {
      for (const auto& [key, object] : objects->second) {
        if ((ns.empty() || object["metadata"]["namespace"] == ns) && selector.matches(object)) {
          start.events.push_back(watchEvent("ADDED", object));
        }
      }
    }
    start.cursor = version_;
    return start;
  }
  int64_t from = -1;
  try {
    from = std::stoll(resourceVersion);
  } catch (const std::exception&) {
  }
  if (from < compactedThrough_) {
    start.expired = true;
    start.events.push_back(
        watchEvent("ERROR", statusObject(410, "Expired",
                                         "too old resource version: " + resourceVersion + " (" +
                                             std::to_string(compactedThrough_) + ")")));
    return start;
  }
  start.cursor = from;
  return start;
}

std::vector<json> ObjectStore::eventsAfter(int64_t& cursor, const ResourceInfo& type,
                                           const std::string& ns,
                                           const LabelSelector& selector) const {
  std::vector<json> events;
  auto passes = [&](const json& object) {
    return object.is_object() && (ns.empty() || metadataOf(object).value("namespace", "") == ns) &&
           selector.matches(object);
  };
  auto it = std::upper_bound(history_.begin(), history_.end(), cursor,
                             [](int64_t v, const StoredEvent& e) { return v < e.version; });
  for (; it != history_.end(); ++it) {
    if (it->plural != type.plural) continue;
    const bool now = passes(it->object);
    if (it->type != "MODIFIED") {
      if (now) events.push_back(watchEvent(it->type, it->object));
      continue;
    }
    const bool before = passes(it->previous);
    if (now) {
      events.push_back(watchEvent(before ? "MODIFIED" : "ADDED", it->object));
    } else if (before) {
      // Left the selector: the watch sees it deleted, in its previous state at this version.
      json gone = it->previous;
      gone["metadata"]["resourceVersion"] = std::to_string(it->version);
      events.push_back(watchEvent("DELETED", gone));
    }
  }
  if (!history_.empty()) cursor = std::max(cursor, history_.back().version);
  return events;
}

std::optional<json> ObjectStore::object(const std::string& plural, const std::string& ns,
                                        const std::string& name) const {
  const auto objects = objects_.find(plural);
  if (objects == objects_.end()) return std::nullopt;
  const auto it = objects->second.find(keyOf(ns, name));
  if (it == objects->second.end()) return std::nullopt;
  return it->second;
}

std::vector<json> ObjectStore::objects(const std::string& plural) const {
  std::vector<json> all;
  if (const auto objects = objects_.find(plural); objects != objects_.end()) {
    for (const auto& [key, object] : objects->second) all.push_back(object);
  }
  return all;
}

}  // namespace kcache::fakekube
