#pragma once
// Shared pieces of the tests that talk to the fake API server (tests/fakekube): bounded waits, a
// client configuration for the fake server, and names and keys for numbered pods.
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <thread>

#include "kube/cluster_config.h"
#include "tests/fakekube/fake_kube_server.h"

namespace kcache::kube::testing {

// Polls `condition` until it holds or `limit` passes; returns whether it held.
inline bool waitFor(const std::function<bool()>& condition,
                    std::chrono::milliseconds limit = std::chrono::seconds(30)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return condition();
}

inline kube::ClusterConfig configFor(const fakekube::FakeKubeServer& server) {
  kube::ClusterConfig config;
  config.server = server.url();
  config.caData = server.serverCa().certificate;
  config.requestTimeout = std::chrono::seconds(5);
  config.source = "fake";
  return config;
}

// A valid-looking execution key (64 lower-case hex characters) for pod number `n`.
inline std::string keyFor(int n) {
  char text[65];
  std::snprintf(text, sizeof text, "%064x", n);
  return text;
}

// "<prefix><n>", built by appending (GCC 12 warns falsely about "literal" + std::string).
inline std::string numbered(const std::string& prefix, int n) {
  std::string name = prefix;
  name += std::to_string(n);
  return name;
}

}  // namespace kcache::kube::testing
