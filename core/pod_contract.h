#pragma once
// The names that Kubeflow Pipelines v1, Argo and kcache agree on (docs/pod-contract.md).
// Every component reads them from here so that a spelling lives in exactly one place.
#include <string_view>

namespace kcache::core::contract {

// Labels.
inline constexpr std::string_view kCacheEnabledLabel = "pipelines.kubeflow.org/cache_enabled";
inline constexpr std::string_view kCacheIdLabel = "pipelines.kubeflow.org/cache_id";
inline constexpr std::string_view kReusedFromCacheLabel =
    "pipelines.kubeflow.org/reused_from_cache";
inline constexpr std::string_view kMetadataExecutionIdLabel =
    "pipelines.kubeflow.org/metadata_execution_id";
inline constexpr std::string_view kMetadataWrittenLabel = "pipelines.kubeflow.org/metadata_written";
inline constexpr std::string_view kArgoCompletedLabel = "workflows.argoproj.io/completed";
inline constexpr std::string_view kArgoWorkflowLabel = "workflows.argoproj.io/workflow";
inline constexpr std::string_view kArgoControllerInstanceIdLabel =
    "workflows.argoproj.io/controller-instanceid";
// A label on task results (Argo >= 3.5.2) and an annotation on pods (3.5.11-3.5.15 read the
// outputs annotation only next to it).
inline constexpr std::string_view kArgoReportOutputsCompleted =
    "workflows.argoproj.io/report-outputs-completed";
// On the WorkflowTaskResults kcache creates for a hit: the entry id they replay.
inline constexpr std::string_view kReplayedFromLabel = "kcache.kubeflow.org/replayed-from";
inline constexpr std::string_view kPipelineSdkTypeLabel =
    "pipelines.kubeflow.org/pipeline-sdk-type";

// Annotations.
inline constexpr std::string_view kExecutionCacheKeyAnnotation =
    "pipelines.kubeflow.org/execution_cache_key";
inline constexpr std::string_view kMaxCacheStalenessAnnotation =
    "pipelines.kubeflow.org/max_cache_staleness";
inline constexpr std::string_view kArgoOutputsAnnotation = "workflows.argoproj.io/outputs";
inline constexpr std::string_view kArgoNodeIdAnnotation = "workflows.argoproj.io/node-id";
inline constexpr std::string_view kV2ComponentAnnotation = "pipelines.kubeflow.org/v2_component";
// kcache's proof that its webhook tagged the pod for recording (core/admission_stamp.h).
inline constexpr std::string_view kAdmissionStampAnnotation = "kcache.kubeflow.org/admission-stamp";

// Values.
inline constexpr std::string_view kTrue = "true";
inline constexpr std::string_view kPhaseSucceeded = "Succeeded";
inline constexpr std::string_view kTfxSdkMarker = "tfx";

// Environment.
inline constexpr std::string_view kArgoTemplateEnv = "ARGO_TEMPLATE";
// The ARGO_TEMPLATE value when Argo (>= 3.6) moved a template over 128 KiB into the ConfigMap
// named after the pod, under the key ARGO_TEMPLATE.
inline constexpr std::string_view kArgoTemplateOffloaded = "offloaded";
inline constexpr std::string_view kArgoNodeIdEnv = "ARGO_NODE_ID";
inline constexpr std::string_view kArgoWorkflowUidEnv = "ARGO_WORKFLOW_UID";
inline constexpr std::string_view kDefaultCacheStalenessEnv = "DEFAULT_CACHE_STALENESS";
inline constexpr std::string_view kMaximumCacheStalenessEnv = "MAXIMUM_CACHE_STALENESS";
inline constexpr std::string_view kCacheImageEnv = "CACHE_IMAGE";
inline constexpr std::string_view kCacheNodeRestrictionsEnv = "CACHE_NODE_RESTRICTIONS";
inline constexpr std::string_view kDefaultCacheImage = "ghcr.io/containerd/busybox";

// The container a cache hit leaves behind, and what it says.
inline constexpr std::string_view kCachedStepContainerName = "main";
inline constexpr std::string_view kCachedStepMessage = "This step output is taken from cache.";
inline constexpr std::string_view kCachedStepCpuRequest = "10m";
inline constexpr std::string_view kCachedStepMemoryRequest = "16Mi";

// Names of Argo's containers, used when looking for ARGO_TEMPLATE.
inline constexpr std::string_view kArgoMainContainer = "main";
inline constexpr std::string_view kArgoWaitContainer = "wait";
inline constexpr std::string_view kArgoInitContainer = "init";
inline constexpr std::string_view kArgoSupervisorContainer = "supervisor";  // 4.1 init-less pods

// Argo's resources, as the webhook's task results name them.
inline constexpr std::string_view kArgoApiVersion = "argoproj.io/v1alpha1";
inline constexpr std::string_view kArgoWorkflowKind = "Workflow";
inline constexpr std::string_view kArgoTaskResultKind = "WorkflowTaskResult";

}  // namespace kcache::core::contract
