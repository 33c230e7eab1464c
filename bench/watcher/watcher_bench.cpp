// How fast the watcher turns completed pods into cache entries and cache_id labels: N completed
// pods created at once on the fake API server (real HTTP/TLS wire protocol), recorded into a real
// PostgreSQL by the WatcherService. Prints events/s and completion-to-label latency p50/p99, and
// in the same run the baseline: the same client sending N bare merge patches one after another
// (the cheapest possible labelling, without watching or recording).
//   KCACHE_BENCH_PODS (default 1000)
//   KCACHE_BENCH_SOURCE=annotation (default; outputs in the pod annotation, old Argo) or
//   taskresult (each pod's final WorkflowTaskResult created just before the pod; modern Argo)
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>

#include "core/metrics.h"
#include "kube/kube_client.h"
#include "store/cache_store.h"
#include "tests/support/postgres_server.h"
#include "tests/watcher/watcher_test_support.h"
#include "watcher/watcher_service.h"

namespace {

using namespace kcache;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

const char* const kOutputs = R"({"parameters":[{"name":"p","value":"1"}]})";

// Timestamps each successful cache_id patch.
class PatchClock : public watcher::testing::DelegatingKubeApi {
 public:
  using DelegatingKubeApi::DelegatingKubeApi;
  json mergePatch(const kube::ResourceType& type, const std::string& ns, const std::string& name,
                  const json& patch) override {
    json result = real_.mergePatch(type, ns, name, patch);
    std::lock_guard lock(mutex_);
    labelledAt_.emplace(name, Clock::now());
    return result;
  }
  size_t labelled() const {
    std::lock_guard lock(mutex_);
    return labelledAt_.size();
  }
  std::map<std::string, Clock::time_point> times() const {
    std::lock_guard lock(mutex_);
    return labelledAt_;
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::string, Clock::time_point> labelledAt_;
};

bool fromTaskResults() {
  const char* source = std::getenv("KCACHE_BENCH_SOURCE");
  return source != nullptr && std::string(source) == "taskresult";
}

json completedPod(int n) {
  // Tagged as the webhook tags it, with the real key of its template (the watcher checks it).
  json pod = fakekube::makeTaggedPod("team-a", watcher::testing::numbered("step-", n),
                                     watcher::testing::keyFor(n));
  pod["metadata"]["annotations"]["workflows.argoproj.io/node-id"] =
      watcher::testing::numbered("wf-", n);
  pod["status"] = {
      {"phase", "Succeeded"},
      {"containerStatuses",
       json::array({{{"name", "main"}, {"state", {{"terminated", {{"exitCode", 0}}}}}}})}};
  if (!fromTaskResults()) {
    pod["metadata"]["annotations"]["workflows.argoproj.io/outputs"] = kOutputs;
  }
  return pod;
}

json taskResultFor(int n) {
  return {{"metadata",
           {{"name", watcher::testing::numbered("wf-", n)},
            {"namespace", "team-a"},
            {"labels",
             {{"workflows.argoproj.io/workflow", "wf"},
              {"workflows.argoproj.io/report-outputs-completed", "true"}}}}},
          {"outputs", json::parse(kOutputs)}};
}

// Creates step n as Argo would leave it when it completed.
void complete(fakekube::FakeKubeServer& fake, int n) {
  if (fromTaskResults()) fake.createObject("workflowtaskresults", taskResultFor(n));
  fake.createPod(completedPod(n));
}

double percentile(std::vector<double> values, double p) {
  std::sort(values.begin(), values.end());
  return values[static_cast<size_t>(p * static_cast<double>(values.size() - 1))];
}

}  // namespace

int main() {
  const int pods =
      std::getenv("KCACHE_BENCH_PODS") ? std::atoi(std::getenv("KCACHE_BENCH_PODS")) : 1000;
  auto& postgres = test_support::PostgresServer::shared();
  store::StoreOptions storeOptions;
  storeOptions.dsn = postgres.createFreshDatabase("watcherbench");
  store::CacheStore store(storeOptions);

  fakekube::FakeKubeServer fake;
  auto client = kube::makeKubeClient(watcher::testing::configFor(fake));
  auto clock = std::make_shared<PatchClock>(*client);

  core::MetricsRegistry metrics;
  watcher::WatcherConfig config;
  config.leaderElection = false;
  config.gcInterval = std::chrono::milliseconds(0);
  watcher::WatcherService service(clock, config, store, {}, metrics);
  service.start();
  watcher::testing::waitFor(
      [&] { return service.completedLists() > 0 && service.completedTaskResultLists() > 0; });

  std::map<std::string, Clock::time_point> createdAt;
  const auto start = Clock::now();
  for (int n = 0; n < pods; ++n) {
    createdAt.emplace(watcher::testing::numbered("step-", n), Clock::now());
    complete(fake, n);
  }
  const bool all = watcher::testing::waitFor(
      [&] { return clock->labelled() >= static_cast<size_t>(pods); }, std::chrono::minutes(5));
  const auto end = Clock::now();

  // Paced: 100 completions per second, the latency a single step sees in normal operation.
  const int paced = 200;
  for (int n = pods; n < pods + paced; ++n) {
    createdAt.emplace(watcher::testing::numbered("step-", n), Clock::now());
    complete(fake, n);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const bool allPaced = watcher::testing::waitFor(
      [&] { return clock->labelled() >= static_cast<size_t>(pods + paced); },
      std::chrono::minutes(1));
  service.stop();
  if (!all) {
    std::cerr << "only " << clock->labelled() << " of " << pods
              << " pods were labelled within 5 minutes\n";
    return 1;
  }
  if (!allPaced) {
    std::cerr << "paced pods were not all labelled within a minute\n";
    return 1;
  }
  std::vector<double> latencies, pacedLatencies;
  for (const auto& [name, at] : clock->times()) {
    const double ms = std::chrono::duration<double, std::milli>(at - createdAt.at(name)).count();
    (std::stoi(name.substr(5)) < pods ? latencies : pacedLatencies).push_back(ms);
  }
  const double seconds = std::chrono::duration<double>(end - start).count();

  // Baseline: the same client, bare merge patches one after another.
  const auto baselineStart = Clock::now();
  for (int n = 0; n < pods; ++n) {
    client->mergePatch(kube::resources::kPods, "team-a", watcher::testing::numbered("step-", n),
                       {{"metadata", {{"labels", {{"kcache-bench", std::to_string(n)}}}}}});
  }
  const double baselineSeconds =
      std::chrono::duration<double>(Clock::now() - baselineStart).count();

  std::cout << pods << " completed pods, outputs from "
            << (fromTaskResults() ? "task results" : "pod annotations")
            << ", fake API server over TLS, real PostgreSQL 15\n"
            << "watcher: " << static_cast<int>(pods / seconds)
            << " pods recorded and labelled per second (" << seconds
            << " s in all); completion-to-label p50 " << percentile(latencies, 0.5) << " ms, p99 "
            << percentile(latencies, 0.99) << " ms\n"
            << "at 100 completions/s: completion-to-label p50 " << percentile(pacedLatencies, 0.5)
            << " ms, p99 " << percentile(pacedLatencies, 0.99) << " ms\n"
            << "baseline, bare merge patches from one client: "
            << static_cast<int>(pods / baselineSeconds) << " patches/s\n"
            << "ratio: " << (pods / seconds) / (pods / baselineSeconds) << " of the baseline\n"
            << "entries in the store: " << store.countEntries({}) << "\n";
  return 0;
}
