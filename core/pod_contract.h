#pragma once
// The names that Kubeflow Pipelines v1, Argo and kcache agree on (DESIGN.md section 3).
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

// Values.
inline constexpr std::string_view kTrue = "true";
inline constexpr std::string_view kPhaseSucceeded = "Succeeded";
inline constexpr std::string_view kTfxSdkMarker = "tfx";

// Environment.
inline constexpr std::string_view kArgoTemplateEnv = "ARGO_TEMPLATE";
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

}  // namespace kcache::core::contract
