#pragma once
// One raw HTTPS request to the fake API server, for what kcache's client never sends (another
// content type, a bad selector, a path outside any resource): tests then see exactly what a
// Kubernetes client would get back. Boost.Beast stays inside raw_https.cpp.
#include <string>

#include <nlohmann/json.hpp>

#include "tests/fakekube/fake_kube_server.h"

namespace kcache::fakekube {

struct RawResponse {
  int status = 0;
  std::string contentType;
  nlohmann::json body;  // discarded when not JSON
};

// `method` is "GET", "POST", ...; `target` the path and query. Throws on connection failures.
RawResponse rawRequest(const FakeKubeServer& server, const std::string& method,
                       const std::string& target, const std::string& contentType = "",
                       const std::string& body = "");

}  // namespace kcache::fakekube
