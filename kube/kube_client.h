#pragma once
// The real KubeApi: HTTPS to the Kubernetes API server (cpprestsdk, kept inside the .cpp file).
#include <memory>

#include "kube/cluster_config.h"
#include "kube/kube_api.h"

namespace kcache::kube {

// Throws ClusterConfigError when the configuration cannot be used (e.g. no server URL).
std::unique_ptr<KubeApi> makeKubeClient(const ClusterConfig& config);

}  // namespace kcache::kube
