#include "core/offloaded_template.h"

#include "core/pod_contract.h"

namespace kcache::core {
namespace {

using nlohmann::json;

const json* objectMember(const json& object, std::string_view name) {
  if (!object.is_object()) return nullptr;
  const auto found = object.find(name);
  return found != object.end() && found->is_object() ? &*found : nullptr;
}

std::string stringOr(const json& object, std::string_view name) {
  const auto found = object.find(name);
  return found != object.end() && found->is_string() ? found->get<std::string>() : std::string();
}

// Any argoproj.io version: the group and kind are what identify a Workflow.
bool isWorkflowReference(const json& reference) {
  const std::string apiVersion = stringOr(reference, "apiVersion");
  return stringOr(reference, "kind") == contract::kArgoWorkflowKind &&
         apiVersion.rfind("argoproj.io/", 0) == 0;
}

// The uids of the Workflows among the ownerReferences of `object`.
template <typename Visit>
void forEachWorkflowOwner(const json& object, Visit visit) {
  const json* metadata = objectMember(object, "metadata");
  if (metadata == nullptr) return;
  const auto owners = metadata->find("ownerReferences");
  if (owners == metadata->end() || !owners->is_array()) return;
  for (const json& reference : *owners) {
    if (!reference.is_object() || !isWorkflowReference(reference)) continue;
    const std::string uid = stringOr(reference, "uid");
    if (!uid.empty() && visit(uid)) return;
  }
}

}  // namespace

std::optional<std::string> workflowOwnerUid(const json& pod) {
  std::optional<std::string> found;
  forEachWorkflowOwner(pod, [&found](const std::string& uid) {
    found = uid;
    return true;
  });
  return found;
}

Expected<std::string, std::string> offloadedTemplateOf(const json& configMap,
                                                       const std::string& workflowUid) {
  bool owned = false;
  if (!workflowUid.empty()) {
    forEachWorkflowOwner(configMap, [&](const std::string& uid) {
      owned = uid == workflowUid;
      return owned;
    });
  }
  if (!owned) {
    return Unexpected{std::string("it is not owned by the pod's Workflow (uid ") +
                      (workflowUid.empty() ? "unknown" : workflowUid) + ")"};
  }
  const json* data = objectMember(configMap, "data");
  const std::string missing = "it has no " + std::string(contract::kArgoTemplateEnv) + " key";
  if (data == nullptr) return Unexpected{missing};
  const auto value = data->find(contract::kArgoTemplateEnv);
  if (value == data->end() || !value->is_string()) return Unexpected{missing};
  return value->get<std::string>();
}

}  // namespace kcache::core
