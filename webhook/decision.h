#pragma once
// The admission decision (docs/admission.md) as pure functions: which pods are skipped, what is
// looked up, and what a lookup result means. No I/O: the caller performs the store lookup between
// planLookup and decide.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include <nlohmann/json.hpp>

#include "core/admission_stamp.h"
#include "core/execution_output.h"
#include "core/name_list.h"
#include "core/pod_contract.h"
#include "core/pod_template.h"
#include "core/staleness.h"
#include "store/cache_store.h"
#include "webhook/admission_review.h"

namespace kcache::webhook {

// --argo-outputs: how a hit hands the cached outputs to Argo (webhook/README.md).
enum class ArgoOutputsMode {
  kAuto,        // per pod, from its layout: template on `main` (Argo <= 3.5) => annotation, else
                // task result
  kAnnotation,  // the pod annotations only (Argo <= 3.5)
  kTaskResult,  // a WorkflowTaskResult created before the answer (every Argo line from 3.3)
};
std::string_view toString(ArgoOutputsMode mode);

// How one pod's hit is delivered (the outputs annotation is restored in both).
enum class OutputsDelivery {
  kAnnotation,  // plus the report-outputs-completed annotation (Argo 3.5.11-3.5.15 need it)
  kTaskResult,  // the WorkflowTaskResult must exist before the pod is rewritten
};
std::string_view toString(OutputsDelivery delivery);

// What the environment and flags say about admission (fixed for the process lifetime).
struct AdmissionConfig {
  store::CacheScope scope = store::CacheScope::kNamespace;
  // KFP_SECURITY_LEGACY_CACHE_MODE: in namespace scope with kAudit, a genuine miss may reuse a
  // namespace-less row written before Kubeflow 2.18 under the template-only key.
  store::LegacyCacheMode legacyCacheMode = store::LegacyCacheMode::kEnforce;
  core::StalenessPolicy staleness;
  std::string cacheImage = std::string(core::contract::kDefaultCacheImage);
  bool keepNodeRestrictions = false;  // CACHE_NODE_RESTRICTIONS
  ArgoOutputsMode argoOutputs = ArgoOutputsMode::kAuto;
  // Whether the webhook has a Kubernetes API client to create task results with. Without one,
  // auto delivers through the annotation for every pod.
  bool taskResultsAvailable = false;

  // --- Least privilege (issue 13) ---
  // --read-offloaded-templates: read the template Argo offloaded to the pod's ConfigMap (only one
  // owned by the pod's Workflow). Off: such pods are skipped (kTemplateOffloaded) and no
  // ConfigMap is ever requested, so kcache needs no right to read ConfigMaps.
  bool readOffloadedTemplates = false;

  // --- tenancy (issue 13) ---
  // --trusted-creators: the user names (request.userInfo.username) whose pods kcache acts on;
  // empty: any creator. Argo only consumes the outputs of pods its controller creates, so a pod
  // anyone else created is not a workflow step: it is let through untouched (untrusted_creator),
  // neither tagged for recording nor served a hit (which could make kcache create a task result on
  // that creator's behalf).
  core::NameList trustedCreators;
  // --cluster-scope-writers, cluster scope only: pods of other namespaces are still served hits
  // (reading shared entries is what the cluster scope is for) but a miss is not tagged for
  // recording, since the watcher would refuse to record it. nullopt: not restricted.
  std::optional<core::NameList> clusterScopeWriters;
  // --- end tenancy ---

  // --- Admission stamps (issue 13: record only what kcache admitted) ---
  // Signs the pods tagged for recording (the miss patch), so that the watcher records only
  // those. Null, or empty until the secret is known (it may live in the database): pods are
  // tagged without a stamp, and no watcher records them.
  std::shared_ptr<const core::SharedStampKeys> admissionStamps;
};

// The delivery for a pod of `layout` under `config` (pure).
OutputsDelivery chooseOutputsDelivery(const AdmissionConfig& config, core::ArgoLayout layout);

// Why a pod is let through untouched because caching does not apply to it.
enum class SkipReason {
  kNotPodCreate,       // another resource, a subresource or an operation other than CREATE
  kSystemNamespace,    // kube-system, kube-public
  kCacheNotEnabled,    // no cache_enabled=true label
  kTfx,                // TFX pods (and pods without containers, as Kubeflow treats them)
  kKfpV2,              // v2_component annotation
  kNoArgoTemplate,     // no ARGO_TEMPLATE env value
  kStalenessDisabled,  // staleness resolves to 0
  // --- Least privilege (issue 13) ---
  kTemplateOffloaded,  // ARGO_TEMPLATE offloaded to a ConfigMap, --read-offloaded-templates off
  // tenancy (issue 13)
  kUntrustedCreator,  // --trusted-creators is set and does not list request.userInfo.username
};
std::string_view toString(SkipReason reason);

// Why a pod is let through untouched because something about it is not what kcache expects.
// Counted as errors: they point at a bug or an unexpected cluster setup, never at a user choice.
enum class ErrorReason {
  kUnexpectedObject,  // request.object is not a pod-shaped object
  kBadTemplate,       // ARGO_TEMPLATE from which no key can be computed
  kStoreUnavailable,  // the lookup failed or timed out
  // The template Argo offloaded to the pod's ConfigMap could not be read (no API client, 404,
  // missing key, timeout).
  kTemplateUnavailable,
};
std::string_view toString(ErrorReason reason);

struct Skip {
  SkipReason reason;
  std::string detail;  // for the log line
};
struct Failure {
  ErrorReason reason;
  std::string detail;
};

// Everything needed to query the store for one pod.
struct LookupPlan {
  std::string key;  // 64 hex characters: the key of the scope in force (store::keyBindingOf)
  // The template-only key, set only where audit mode may look a legacy row up with it (namespace
  // scope, KFP_SECURITY_LEGACY_CACHE_MODE=audit); computing it costs one more SHA-256.
  std::string legacyKey;
  std::string namespaceName;
  std::string podName;
  std::string templateContainer;  // where ARGO_TEMPLATE was found (for logs)
  core::PodStaleness staleness;
  core::ArgoLayout layout = core::ArgoLayout::kUnknown;
  OutputsDelivery outputsDelivery = OutputsDelivery::kAnnotation;
  // ARGO_TEMPLATE is "offloaded": `key` stays empty until the template is read from the pod's
  // ConfigMap in the blocking phase (withOffloadedTemplate).
  bool templateOffloaded = false;
  // The uid of the Workflow owning the pod (its ownerReference), "" when it has none: an
  // offloaded template is read only from a ConfigMap that Workflow owns.
  std::string workflowUid;
  // tenancy (issue 13): false when the pod's namespace may not write the shared cache (cluster
  // scope, --cluster-scope-writers): a hit is served, a miss is let through untagged.
  bool mayRecord = true;
};

using Plan = std::variant<Skip, Failure, LookupPlan>;

// Applies the skip rules in order and computes the key and the staleness.
Plan planLookup(const AdmissionRequest& request, const AdmissionConfig& config);

// Whether a genuine miss of `plan` may be followed by the audit-mode lookup of a legacy row.
bool mayReuseLegacyRow(const AdmissionConfig& config, const LookupPlan& plan);

// The plan of a pod whose template was offloaded, with the key computed from the ConfigMap's
// ARGO_TEMPLATE value by the same algorithm as an inline template; Failure when it gives no key.
std::variant<Failure, LookupPlan> withOffloadedTemplate(LookupPlan plan,
                                                        std::string_view argoTemplate,
                                                        const AdmissionConfig& config);

struct Miss {
  // Set when an entry was found but its ExecutionOutput cannot be read: the pod then runs and is
  // recorded again (restoring "" as Kubeflow does would fail the step in Argo).
  std::string unreadableEntry;
};
struct Hit {
  int64_t entryId = 0;
  core::StepOutputs outputs;
  int64_t savedSeconds = 0;  // the recorded run duration: compute time the hit saves
  // Audit mode reused a namespace-less row written before Kubeflow 2.18 (ownership unknown).
  bool legacyRow = false;
};
using LookupOutcome = std::variant<Miss, Hit>;

// What a lookup result means for the pod. `entry` is what the store returned.
LookupOutcome interpretLookup(const std::optional<store::CacheEntry>& entry);

// The final decision for one review.
struct AdmissionDecision {
  std::variant<Skip, Failure, Miss, Hit> outcome;
  std::string key;                                                 // set for Miss and Hit
  OutputsDelivery outputsDelivery = OutputsDelivery::kAnnotation;  // how a Hit is delivered
  // A Miss is tagged for recording (key annotation, empty cache_id label) only when true.
  bool tagForRecording = true;
  // The admission stamp the miss patch sets (admissionStampOf), only for a Miss tagged for
  // recording; "" otherwise.
  std::string admissionStamp;
};

// The admission stamp of the pod of `request` tagged for recording under `key`
// (core/admission_stamp.h): bound to its name, or to its generateName prefix when it has no name
// yet, and to the staleness the watcher will record it with. "" when no key ring is installed.
std::string admissionStampOf(const AdmissionRequest& request, std::string_view key,
                             const AdmissionConfig& config);

std::string_view outcomeLabel(const AdmissionDecision& decision);  // hit, miss, skipped, error
// The label of AdmissionDecision::outcome's alternative number `index`.
std::string_view outcomeLabel(std::size_t index);

}  // namespace kcache::webhook
