#pragma once
// What the watcher records for a pod, decided without I/O (docs/watcher.md, "When a pod is
// recordable", with kcache's additions: namespace, pod name, run duration; docs/watcher.md, "When a
// pod is recordable" for when a pod is ready). The outputs come from the pod's annotation (old
// Argo) or from its task result (join.h); either way they end up in the same ExecutionOutput shape.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/admission_stamp.h"
#include "core/expected.h"
#include "core/name_list.h"
#include "core/staleness.h"
#include "store/cache_store.h"

namespace kcache::watcher {

struct PodIdentity {
  std::string namespaceName;
  std::string name;
  std::string uid;
};

struct RecordingPlan {
  PodIdentity pod;
  store::NewEntry entry;
  std::string nodeId;               // workflows.argoproj.io/node-id, "" when absent
  std::string metadataExecutionId;  // the pod's metadata_execution_id label, "" when absent
  // ARGO_TEMPLATE is "offloaded": the key annotation (entry.key) is not verified yet; the
  // recorder reads the template from the pod's ConfigMap and checks it (verifyOffloadedKey)
  // before anything is written.
  bool templateOffloaded = false;
  // The uid of the Workflow owning the pod (set when the template is offloaded): only a ConfigMap
  // owned by that Workflow is read (core/offloaded_template.h).
  std::string workflowUid;
};

// What a pod is checked against before it is recorded.
struct RecordingRules {
  RecordingRules(core::StalenessPolicy staleness = {},
                 store::CacheScope scope = store::CacheScope::kNamespace)
      : staleness(std::move(staleness)), scope(scope) {}
  core::StalenessPolicy staleness;
  // The key the pod's annotation must equal, recomputed from its own template and namespace:
  // namespace-bound in namespace scope, template-only in cluster scope (store::keyBindingOf).
  store::CacheScope scope;
  // --- Least privilege (issue 13) ---
  // --read-offloaded-templates: off, a pod whose template is in a ConfigMap is refused
  // (kTemplateOffloaded) and no ConfigMap is read.
  bool readOffloadedTemplates = false;
  // --- tenancy (issue 13): who may write shared entries ---
  // Cluster scope only: the namespaces whose pods may be recorded into the shared cache
  // (--cluster-scope-writers; "*" for all). nullopt: not restricted (cachectl, whose operator is
  // the writer); cache-server always sets it in cluster scope. Ignored in namespace scope, where
  // an entry is only ever reused by the namespace that wrote it.
  std::optional<core::NameList> clusterScopeWriters;
  // --- Admission stamps (issue 13: record only what kcache admitted) ---
  // The secrets the webhook stamps pods with: a pod is recorded only when it carries
  // cache_enabled "true" and a stamp that verifies for its namespace, name, key and the
  // staleness it is recorded with. Null only for `cachectl record`, an operator's deliberate act
  // with database rights, where no stamp is asked for.
  std::shared_ptr<const core::StampKeyRing> admissionStamps;
};

enum class SkipReason {
  kNotAPod,          // no metadata.name / namespace
  kNotSucceeded,     // phase is not Succeeded, or `main` did not terminate with exit code 0
  kAlreadyLabelled,  // cache_id is set: recorded before, or a cache hit
  kReplay,           // reused_from_cache is set: a cache hit's pod
  kNoKey,            // no execution key annotation
  kInvalidKey,       // the annotation is not 64 lower-case hex characters
  // Refusals: the pod claims a key its own template and namespace do not give. Labels and
  // annotations are writable by anyone who can edit pods in the namespace, so the key is never
  // taken on trust (a forged one would poison another step's entry).
  kNoTemplate,   // no ARGO_TEMPLATE to recompute the key from
  kBadTemplate,  // ARGO_TEMPLATE gives no key
  kKeyMismatch,  // the recomputed key differs from the annotation
  // --- Least privilege (issue 13) ---
  kTemplateOffloaded,  // the template is in a ConfigMap and --read-offloaded-templates is off
  kTemplateNotOwned,   // that ConfigMap is not owned by the pod's Workflow (or lacks the key)
  // --- tenancy (issue 13) refusals ---
  // Cluster scope: the pod's namespace is not in --cluster-scope-writers, so its step may not
  // enter the cache every namespace reads.
  kNamespaceNotWriter,
  // Refusals: kcache's webhook did not tag this pod for recording as it is now (RecordingRules::
  // admissionStamps): created without cache_enabled, admitted while the webhook was down, or its
  // name, key or staleness changed after admission.
  kNotCacheEnabled,  // the cache_enabled label is not "true"
  kNoStamp,          // no admission stamp annotation
  kBadStamp,         // the stamp does not verify for the pod as it is
};
// The label of kcache_watcher_record_refusals_total{reason}, for the refusals above; nullopt for
// the other reasons (ordinary skips).
std::optional<std::string_view> refusalLabel(SkipReason reason);
std::string_view toString(SkipReason reason);

PodIdentity identityOf(const nlohmann::json& pod);

// How the watcher tells pods apart: the uid (a pod re-created under the same name is another
// pod), namespace/name only when a pod has no uid.
std::string trackingId(const PodIdentity& pod);

// Annotation workflows.argoproj.io/node-id, "" when absent.
std::string nodeIdOf(const nlohmann::json& pod);

// The cache_id label value, nullopt when the label is absent.
std::optional<std::string> cacheIdLabel(const nlohmann::json& pod);

// The pod side: whether `pod` is ready to be recorded (phase Succeeded, `main` exited 0, not a
// replay, carries a key, not labelled yet), and everything of its entry except the outputs
// (entry.executionOutput stays empty until setOutputs). `nowInSec` is the recording time. The
// `workflows.argoproj.io/completed` label plays no part: podGC may delete a pod before Argo
// sets it (docs/argo-lines.md, "The `completed` label").
core::Expected<RecordingPlan, SkipReason> planPodRecording(const nlohmann::json& pod,
                                                           const RecordingRules& rules,
                                                           int64_t nowInSec);

// For a plan whose template was offloaded: checks the key against the template read from the
// pod's ConfigMap and keeps that template as the entry's; kKeyMismatch or kBadTemplate when
// it does not give the annotated key.
core::Expected<RecordingPlan, SkipReason> verifyOffloadedKey(RecordingPlan plan,
                                                             std::string_view argoTemplate,
                                                             store::CacheScope scope);

// The pod annotation workflows.argoproj.io/outputs when it is usable: present, and, if the pod
// also carries annotation workflows.argoproj.io/report-outputs-completed (3.5.2+ executors),
// that one is "true". nullopt otherwise.
std::optional<std::string> annotationOutputs(const nlohmann::json& pod);

// Fills entry.executionOutput (core::encodeExecutionOutput) from the Argo outputs JSON text and
// the plan's metadata_execution_id.
void setOutputs(RecordingPlan& plan, const std::string& argoOutputs);

// The pod alone (the annotation path, and `cachectl record`): planPodRecording with the usable
// outputs annotation, or "" when there is none.
core::Expected<RecordingPlan, SkipReason> planRecording(const nlohmann::json& pod,
                                                        const RecordingRules& rules,
                                                        int64_t nowInSec);

// Exit code of the `main` container's terminated state, nullopt when it has not terminated.
std::optional<int64_t> mainExitCode(const nlohmann::json& pod);

// Seconds between the main container's state.terminated startedAt and finishedAt (else the
// first terminated container's); 0 when unknown.
int64_t runDurationSeconds(const nlohmann::json& pod);

// Parses an RFC 3339 timestamp ("2024-05-01T10:00:00Z", fractions and offsets allowed) to Unix
// seconds.
std::optional<int64_t> parseRfc3339(std::string_view text);

// The merge patch that sets only the cache_id label. The uid makes the API server refuse it
// (409) when the pod was replaced by another one of the same name.
nlohmann::json cacheIdPatch(const PodIdentity& pod, int64_t entryId);

}  // namespace kcache::watcher
