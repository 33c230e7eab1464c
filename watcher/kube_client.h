#pragma once
// The real KubeApi: HTTPS to the Kubernetes API server (cpprestsdk, kept inside the .cpp file).
#include <memory>

#include "watcher/cluster_config.h"
#include "watcher/kube_api.h"

namespace kcache::watcher {

// Throws ClusterConfigError when the configuration cannot be used (e.g. no server URL).
std::unique_ptr<KubeApi> makeKubeClient(const ClusterConfig& config);

}  // namespace kcache::watcher
