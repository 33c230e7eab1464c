// cache-server: the kcache admission webhook. The watcher and the garbage collector join this
// process later; until then it serves the webhook only and says so at start-up.
#include <signal.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cerrno>
#include <ctime>
#include <iostream>
#include <memory>
#include <optional>

#include "cmd/cache-server/options.h"
#include "core/logging.h"
#include "core/metrics.h"
#include "store/cache_store.h"
#include "store/dsn.h"
#include "webhook/admission_handler.h"
#include "webhook/config.h"
#include "webhook/server.h"

namespace {

using namespace kcache;

// Waits up to `timeout` for SIGINT or SIGTERM (blocked in every thread); true when one came.
bool waitForStopSignal(const sigset_t& signals, std::optional<std::chrono::milliseconds> timeout) {
  while (true) {
    int received = 0;
    if (!timeout) {
      if (sigwait(&signals, &received) == 0) return true;
      continue;
    }
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(*timeout);
    const timespec wait{static_cast<time_t>(seconds.count()),
                        static_cast<long>((*timeout - seconds).count() * 1000000)};
    if (sigtimedwait(&signals, nullptr, &wait) >= 0) return true;
    if (errno == EAGAIN) return false;
  }
}

// The store as the webhook sees it while the database may not be reachable yet: until the
// CacheStore is open every lookup fails fast (the pod is admitted untouched, /readyz says not
// ready); afterwards lookups go to the store.
class StoreWhenConnected : public store::CacheLookup {
 public:
  void attach(store::CacheLookup& store) { store_.store(&store); }
  std::optional<store::CacheEntry> lookup(store::CacheScope scope, std::string_view namespaceName,
                                          std::string_view key, int64_t podStalenessSeconds,
                                          int64_t nowInSec) override {
    auto* target = store_.load();
    if (target == nullptr) throw store::StoreError("the cache store is not connected yet");
    return target->lookup(scope, namespaceName, key, podStalenessSeconds, nowInSec);
  }
  void noteHit(int64_t entryId, int64_t nowInSec) override {
    if (auto* target = store_.load()) target->noteHit(entryId, nowInSec);
  }

 private:
  std::atomic<store::CacheLookup*> store_{nullptr};
};

int run(const cache_server::Options& options, const sigset_t& signals) {
  core::configureLogging(core::parseLogFormat(options.logFormat), options.logLevel);
  cache_server::validate(options);

  const auto scope = *webhook::parseCacheScope(options.cacheScope);
  auto loaded = webhook::loadAdmissionConfig(webhook::readProcessEnvironment, scope);
  for (const auto& warning : loaded.warnings) spdlog::warn("configuration: {}", warning);

  store::StoreOptions storeOptions;
  storeOptions.dsn = store::buildDsn(options.database.flags);
  storeOptions.poolSize = options.dbPoolSize;
  storeOptions.lookupTimeout = std::chrono::milliseconds(options.lookupTimeoutMs);

  core::MetricsRegistry metrics;
  StoreWhenConnected lookup;
  webhook::AdmissionHandler handler(std::move(loaded.config), lookup, metrics);

  webhook::ServerOptions serverOptions;
  serverOptions.bindAddress = options.listenAddress;
  serverOptions.tlsPort = options.listenPort;
  serverOptions.httpPort = options.httpPort;
  serverOptions.certFile = cache_server::resolveTlsFile(options.tlsDir, options.tlsCertFilename);
  serverOptions.keyFile = cache_server::resolveTlsFile(options.tlsDir, options.tlsKeyFilename);
  serverOptions.ioThreads = options.ioThreads;
  serverOptions.lookupThreads = options.lookupThreads;
  serverOptions.bodyLimitBytes = options.maxBodyBytes;
  serverOptions.lookupDeadline = std::chrono::milliseconds(options.lookupTimeoutMs + 100);
  serverOptions.certificatePollInterval = std::chrono::milliseconds(options.tlsReloadIntervalMs);

  // The webhook serves at once (answering "allowed, untouched" and not ready) while the database
  // may still be coming up: keep trying to open the store rather than crash-looping.
  webhook::WebhookServer server(serverOptions, handler, metrics);
  server.start();
  spdlog::info("watcher not started: this build of cache-server runs the webhook only");

  std::unique_ptr<store::CacheStore> cacheStore;
  auto retryDelay = std::chrono::milliseconds(500);
  bool stopRequested = false;
  while (!cacheStore && !stopRequested) {
    try {
      cacheStore = std::make_unique<store::CacheStore>(storeOptions);
    } catch (const std::exception& error) {
      spdlog::warn("cache store {} not available, retrying in {} ms: {}",
                   store::describeDsn(storeOptions.dsn), retryDelay.count(), error.what());
      stopRequested = waitForStopSignal(signals, retryDelay);
      retryDelay = std::min(retryDelay * 2, std::chrono::milliseconds(10000));
    }
  }
  if (cacheStore) {
    lookup.attach(*cacheStore);
    spdlog::info("cache store {} ready, scope {}", cacheStore->target(), options.cacheScope);
    waitForStopSignal(signals, std::nullopt);
  }
  spdlog::info("stopping on signal");
  // Before the store goes away: no lookup may still be running on it.
  server.stop();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "cache-server: the kcache step cache for Kubeflow Pipelines v1.\n"
      "Serves the mutating admission webhook (HTTPS POST /mutate) that rewrites a pipeline "
      "step's pod into a busybox echo of its cached outputs, and /healthz, /readyz, /metrics "
      "on a plain HTTP port.\n"
      "Environment read as Kubeflow Pipelines does: DEFAULT_CACHE_STALENESS, "
      "MAXIMUM_CACHE_STALENESS (ISO-8601 durations), CACHE_IMAGE (default "
      "ghcr.io/containerd/busybox), CACHE_NODE_RESTRICTIONS (true keeps affinity and "
      "nodeSelector on cached pods).\n"
      "Kubeflow's flag spellings (--db_host, -db_host, ...) are accepted too."};
  kcache::cache_server::Options options;
  kcache::cache_server::addOptions(app, options);
  auto arguments = kcache::cmd::normalizeGoStyleArguments(argc, argv);
  std::vector<const char*> pointers;
  for (const auto& argument : arguments) pointers.push_back(argument.c_str());
  try {
    app.parse(static_cast<int>(pointers.size()), pointers.data());
  } catch (const CLI::ParseError& error) {
    return app.exit(error);
  }

  // Block the stop signals before any thread starts, so that only sigwait receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  try {
    return run(options, signals);
  } catch (const std::exception& error) {
    spdlog::critical("cache-server cannot run: {}", error.what());
    return 1;
  }
}
