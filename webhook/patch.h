#pragma once
// The JSON Patch (RFC 6902) for a decision: only single label and annotation keys are added, so
// nothing another webhook set is lost; a whole map is added only when the pod has none.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "webhook/decision.h"

namespace kcache::webhook {

// A JSON Pointer reference token: "~" as "~0", "/" as "~1" (RFC 6901).
std::string escapePointerToken(std::string_view token);

// The container a cache hit leaves in the pod: busybox echoing the cache message, made to pass
// whatever admission the original pod passed (the pod's own securityContext, imagePullSecrets and
// everything else outside `containers` stay as they were):
//  - securityContext: a copy of the original `main` container's; when `main` has none (and the pod
//    is not a Windows pod), allowPrivilegeEscalation false, all capabilities dropped and the
//    runtime's default seccomp profile, which every Pod Security level accepts. When the result
//    (with the pod's) demands runAsNonRoot without naming a user, it runs as 65534: busybox's
//    image user is root, which the kubelet would refuse to start.
//  - resources: small fixed cpu and memory requests with limits equal to them (and the same for
//    ephemeral-storage when `main` declares it), so a ResourceQuota that requires limits admits it
//    and it fits on any node. Nothing is carried over from `main`: an echo needs neither its CPUs
//    nor its GPUs. (A LimitRange whose minimum is above these values would refuse it.)
nlohmann::json cachedStepContainer(const nlohmann::json& pod, const AdmissionConfig& config);

// Kubernetes refuses an object whose annotations, keys plus values in bytes, add up to more.
inline constexpr std::size_t kAnnotationsSizeLimitBytes = 256 * 1024;

// How a hit's annotations fit under that limit once its patch has set them.
enum class HitAnnotationsFit {
  kWithOutputs,     // the outputs annotation fits: the patch restores it
  kWithoutOutputs,  // only without it, and the outputs reach Argo in a task result: left out
  kTooLarge,        // the pod would be refused: buildPatch writes the miss patch instead
};
// Pure; for a Hit decision (anything else fits). A caller that delivers a hit's outputs before
// building the patch should treat kTooLarge as a miss before delivering.
HitAnnotationsFit hitAnnotationsFit(const nlohmann::json& pod, const AdmissionDecision& decision);

// nullopt for Skip and Failure (the pod is let through untouched), and for a Miss that is not to
// be tagged for recording (AdmissionDecision::tagForRecording). A Hit whose annotations would
// exceed Kubernetes' limit gets the miss patch: the step runs, it is never a refused pod.
std::optional<JsonPatch> buildPatch(const nlohmann::json& pod, const AdmissionDecision& decision,
                                    const AdmissionConfig& config);

}  // namespace kcache::webhook
