// cache-server: the kcache admission webhook on every replica, and on the elected leader the
// watcher that records completed steps and the garbage collector.
#include <malloc.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <memory>
#include <optional>

#include "cmd/cache-server/options.h"
#include "cmd/cache-server/stamp_keys.h"
#include "cmd/common/go_style_flags.h"
#include "cmd/common/secret_arguments.h"
#include "core/logging.h"
#include "core/metrics.h"
#include "kube/cluster_config.h"
#include "kube/kube_client.h"
#include "store/cache_store.h"
#include "store/dsn.h"
#include "store/lookup_cache.h"
#include "watcher/watcher_service.h"
#include "webhook/admission_handler.h"
#include "webhook/config.h"
#include "webhook/server.h"
#include "webhook/task_result.h"

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
  std::optional<store::CacheEntry> lookupLegacy(std::string_view legacyKey,
                                                int64_t podStalenessSeconds,
                                                int64_t nowInSec) override {
    auto* target = store_.load();
    if (target == nullptr) throw store::StoreError("the cache store is not connected yet");
    return target->lookupLegacy(legacyKey, podStalenessSeconds, nowInSec);
  }
  void noteHit(int64_t entryId, int64_t nowInSec) override {
    if (auto* target = store_.load()) target->noteHit(entryId, nowInSec);
  }

 private:
  std::atomic<store::CacheLookup*> store_{nullptr};
};

// The leader's garbage collection: entries older than MAXIMUM_CACHE_STALENESS, then the least
// recently hit beyond --gc-max-entries.
std::function<void()> garbageCollector(const cache_server::Options& options,
                                       const core::StalenessPolicy& staleness,
                                       store::CacheStore& cacheStore) {
  const int64_t maxStaleness = staleness.maximumSeconds().value_or(core::kUnlimitedStaleness);
  const int64_t maxEntries = options.gcMaxEntries;
  return [&cacheStore, maxStaleness, maxEntries] {
    if (maxStaleness < 0 && maxEntries == 0) return;  // nothing to collect
    store::GcOptions gc;
    gc.nowInSec = static_cast<int64_t>(std::time(nullptr));
    gc.maxStalenessSeconds = maxStaleness;
    if (maxEntries > 0) gc.maxEntries = maxEntries;
    cacheStore.gc(gc);
  };
}

// Starts the watcher when asked to and a cluster configuration exists; nullptr otherwise.
std::unique_ptr<watcher::WatcherService> startWatcher(
    const cache_server::Options& options, store::CacheScope scope,
    const core::StalenessPolicy& staleness, store::CacheStore& cacheStore,
    core::MetricsRegistry& metrics, std::shared_ptr<const core::StampKeyRing> stamps) {
  if (!options.watch) {
    spdlog::info("watcher off (--watch=false): this replica serves the webhook only");
    return nullptr;
  }
  std::optional<kube::ClusterConfig> cluster;
  try {
    cluster = kube::discoverClusterConfig(options.kubeconfig);
  } catch (const std::exception& error) {
    // A broken cluster configuration must not take the webhook down with it.
    spdlog::error("watcher not started: {}; this replica serves the webhook only", error.what());
    return nullptr;
  }
  if (!cluster) {
    spdlog::info(
        "watcher not started: no cluster configuration (--kubeconfig, $KUBECONFIG or in-cluster); "
        "this replica serves the webhook only");
    return nullptr;
  }
  watcher::WatcherConfig config;
  config.informer.namespaceName = options.namespaceToWatch;
  config.recorder.scope = scope;
  config.recorder.staleness = staleness;
  config.recorder.readOffloadedTemplates = options.readOffloadedTemplates;
  if (scope == store::CacheScope::kCluster) {
    config.recorder.clusterScopeWriters = core::NameList::parse(options.clusterScopeWriters);
  }
  config.recorder.admissionStamps = std::move(stamps);
  config.gcInterval = std::chrono::seconds(options.gcIntervalSeconds);
  config.watchTaskResults = options.watchTaskResults;
  config.join.taskResultWait = std::chrono::seconds(options.taskResultWaitSeconds);
  config.join.maxTaskResultBytes = options.maxTaskResultBytes;
  auto service = std::make_unique<watcher::WatcherService>(
      kube::makeKubeClient(*cluster), config, cacheStore,
      garbageCollector(options, staleness, cacheStore), metrics);
  service->start();
  spdlog::info("watcher started against {} ({}), watching {}", cluster->server, cluster->source,
               options.namespaceToWatch.empty() ? "all namespaces" : options.namespaceToWatch);
  return service;
}

// The webhook's own Kubernetes client (task results, offloaded templates), with the short
// --argo-api-timeout-ms; nullptr when there is no cluster configuration, said once here.
std::unique_ptr<kube::KubeApi> argoApiClient(const cache_server::Options& options) {
  const std::string consequence =
      options.argoOutputs == "taskresult"
          ? "with --argo-outputs=taskresult every hit runs its step instead"
      : options.argoOutputs == "auto"
          ? "--argo-outputs=auto delivers outputs through the pod annotation for every pod "
            "(Argo >= 3.6 then gets no outputs from cache hits)"
      : options.readOffloadedTemplates ? "offloaded templates cannot be read"
                                       : "nothing is lost";
  std::optional<kube::ClusterConfig> cluster;
  try {
    cluster = kube::discoverClusterConfig(options.kubeconfig);
  } catch (const std::exception& error) {
    spdlog::warn("webhook has no Kubernetes API client: {}; {}", error.what(), consequence);
    return nullptr;
  }
  if (!cluster) {
    spdlog::warn(
        "webhook has no Kubernetes API client: no cluster configuration (--kubeconfig, "
        "$KUBECONFIG or in-cluster); {}",
        consequence);
    return nullptr;
  }
  cluster->requestTimeout = std::chrono::milliseconds(options.argoApiTimeoutMs);
  try {
    auto client = kube::makeKubeClient(*cluster);
    spdlog::info(
        "webhook creates task results and reads offloaded templates through {} ({}), "
        "{} ms per call, --argo-outputs={}",
        cluster->server, cluster->source, options.argoApiTimeoutMs, options.argoOutputs);
    return client;
  } catch (const std::exception& error) {
    spdlog::warn("webhook has no Kubernetes API client: {}; {}", error.what(), consequence);
    return nullptr;
  }
}

// Startup warnings about secrets: a password that was on the command line, a database connection
// that does not verify the server.
void warnAboutSecrets(std::size_t hiddenArguments, const std::string& dsn) {
  if (hiddenArguments > 0) {
    spdlog::warn(
        "the database password was given on the command line (--db_password): it has been "
        "overwritten in this process's command line, but was readable by anyone on the node "
        "(ps, /proc/<pid>/cmdline) until now and stays in the pod spec; set the DBCONFIG_PASSWORD "
        "environment variable from a Secret instead");
  }
  if (auto warning = store::unverifiedServerWarning(dsn, std::getenv("PGSSLMODE"))) {
    spdlog::warn("{}", *warning);
  }
}

int run(cache_server::Options& options, const sigset_t& signals, std::size_t hiddenArguments) {
  core::configureLogging(core::parseLogFormat(options.logFormat), options.logLevel);
  cache_server::readEnvironmentOnlySettings(options);
  cache_server::validate(options);

  const auto scope = *webhook::parseCacheScope(options.cacheScope);
  auto loaded = webhook::loadAdmissionConfig(webhook::readProcessEnvironment, scope);
  for (const auto& warning : loaded.warnings) spdlog::warn("configuration: {}", warning);
  loaded.config.legacyCacheMode = options.legacyCacheMode;
  // tenancy (issue 13): who may write the cache, and whose pods kcache acts on.
  for (const auto& warning : cache_server::ineffectiveSettings(options)) {
    spdlog::warn("configuration: {}", warning);
  }
  loaded.config.trustedCreators = core::NameList::parse(options.trustedCreators);
  if (scope == store::CacheScope::kCluster) {
    loaded.config.clusterScopeWriters = core::NameList::parse(options.clusterScopeWriters);
    spdlog::info("cluster scope: steps of namespaces [{}] are recorded into the shared cache",
                 loaded.config.clusterScopeWriters->describe());
  }
  if (!loaded.config.trustedCreators.empty()) {
    spdlog::info("only pods created by [{}] are tagged for recording or served hits",
                 loaded.config.trustedCreators.describe());
  }
  if (loaded.config.legacyCacheMode == store::LegacyCacheMode::kAudit) {
    if (scope == store::CacheScope::kNamespace) {
      spdlog::warn(
          "{}=audit: after a miss, entries written before Kubeflow 2.18 (no namespace, so no "
          "known owner) may be reused in any namespace, which weakens namespace isolation; each "
          "reuse is logged as finding=ownership_unknown and counted in "
          "kcache_legacy_cache_reuse_total. Kubeflow plans to remove audit mode in 3.0.",
          cmd::kLegacyCacheModeVariable);
    } else {
      spdlog::warn(
          "{}=audit has no effect with --cache-scope=cluster, where entries without a "
          "namespace are reused anyway",
          cmd::kLegacyCacheModeVariable);
    }
  }

  store::StoreOptions storeOptions;
  storeOptions.dsn = store::buildDsn(options.database.flags);
  warnAboutSecrets(hiddenArguments, storeOptions.dsn);
  storeOptions.poolSize = options.dbPoolSize;
  storeOptions.lookupTimeout = std::chrono::milliseconds(options.lookupTimeoutMs);

  const core::StalenessPolicy staleness = loaded.config.staleness;  // the watcher records with it
  // First fresh writer wins, with freshness capped by MAXIMUM_CACHE_STALENESS.
  storeOptions.maximumStalenessSeconds =
      staleness.maximumSeconds().value_or(core::kUnlimitedStaleness);
  core::MetricsRegistry metrics;
  StoreWhenConnected lookup;
  const auto argoApi = argoApiClient(options);
  loaded.config.argoOutputs = *webhook::parseArgoOutputsMode(options.argoOutputs);
  loaded.config.taskResultsAvailable = argoApi != nullptr;
  loaded.config.readOffloadedTemplates = options.readOffloadedTemplates;
  webhook::TaskResultDelivery delivery(argoApi.get(), metrics);
  // The admission stamp secret: from the files now, or from the database once it is open (until
  // then every lookup fails and no pod is tagged for recording, so none needs a stamp).
  auto stampKeys = std::make_shared<core::SharedStampKeys>();
  if (auto fromFiles = cache_server::stampKeysFromFiles(options.stampSecretFile,
                                                        options.previousStampSecretFile)) {
    spdlog::info("admission stamps: secret from {}{}", options.stampSecretFile,
                 fromFiles->rotating() ? " (the previous secret still verifies)" : "");
    stampKeys->install(std::move(*fromFiles));
  }
  loaded.config.admissionStamps = stampKeys;
  // Hits found in the store are answered from memory for a moment (misses never are).
  store::RecentHitCache recentHits(lookup, {std::chrono::milliseconds(options.hitCacheTtlMs)});
  webhook::AdmissionHandler handler(std::move(loaded.config), recentHits, metrics, &delivery);

  webhook::ServerOptions serverOptions;
  serverOptions.bindAddress = options.listenAddress;
  serverOptions.tlsPort = options.listenPort;
  serverOptions.httpPort = options.httpPort;
  serverOptions.certFile = cache_server::resolveTlsFile(options.tlsDir, options.tlsCertFilename);
  serverOptions.keyFile = cache_server::resolveTlsFile(options.tlsDir, options.tlsKeyFilename);
  serverOptions.ioThreads = options.ioThreads;
  serverOptions.lookupThreads = options.lookupThreads;
  serverOptions.bodyLimitBytes = options.maxBodyBytes;
  serverOptions.maxConnections = options.maxConnections;
  serverOptions.clientCaFile = options.clientCaFile;
  serverOptions.lookupDeadline = std::chrono::milliseconds(options.lookupTimeoutMs + 100);
  serverOptions.certificatePollInterval = std::chrono::milliseconds(options.tlsReloadIntervalMs);

  // The webhook serves at once (answering "allowed, untouched" and not ready) while the database
  // may still be coming up: keep trying to open the store rather than crash-looping.
  webhook::WebhookServer server(serverOptions, handler, metrics);
  server.start();

  std::unique_ptr<store::CacheStore> cacheStore;
  auto retryDelay = std::chrono::milliseconds(500);
  bool stopRequested = false;
  while (!cacheStore && !stopRequested) {
    try {
      cacheStore = std::make_unique<store::CacheStore>(storeOptions);
      if (stampKeys->get() == nullptr) {
        stampKeys->install(cache_server::stampKeysFromDatabase(*cacheStore));
        spdlog::info(
            "admission stamps: secret kept in the database (no --stamp-secret-file), shared by "
            "every replica using it");
      }
    } catch (const std::exception& error) {
      cacheStore.reset();  // open, but without the secret the watcher cannot start
      spdlog::warn("cache store {} not available, retrying in {} ms: {}",
                   store::describeDsn(storeOptions.dsn), retryDelay.count(), error.what());
      stopRequested = waitForStopSignal(signals, retryDelay);
      retryDelay = std::min(retryDelay * 2, std::chrono::milliseconds(10000));
    }
  }
  std::unique_ptr<watcher::WatcherService> watcherService;
  if (cacheStore) {
    lookup.attach(*cacheStore);
    spdlog::info("cache store {} ready, scope {}", cacheStore->target(), options.cacheScope);
    watcherService =
        startWatcher(options, scope, staleness, *cacheStore, metrics, stampKeys->get());
    waitForStopSignal(signals, std::nullopt);
  }
  spdlog::info("stopping on signal");
  // The watcher first (it releases the lease), then the webhook: no lookup or record may still
  // be running when the store goes away.
  watcherService.reset();
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
      "nodeSelector on cached pods), KFP_SECURITY_LEGACY_CACHE_MODE (enforce, the default, or "
      "audit).\n"
      "Kubeflow's flag spellings (--db_host, -db_host, ...) are accepted too. As in Go, an empty "
      "value (--namespace_to_watch=) is the empty string; flags that cannot be empty refuse it.",
      "cache-server"};
  kcache::cache_server::Options options;
  kcache::cache_server::addOptions(app, options);
  // Parsed from a copy: the password's value is then overwritten in argv, which is what
  // /proc/<pid>/cmdline shows.
  std::vector<std::string> arguments(argv + 1, argv + argc);
  const std::size_t hiddenArguments = kcache::cmd::hideSecretArguments(argc, argv);
  try {
    kcache::cmd::parseGoStyle(app, std::move(arguments));
  } catch (const CLI::ParseError& error) {
    return app.exit(error);
  }

  // Buffers a client sizes (request bodies, watch events with a task result's outputs) are
  // allocated with mmap and given back to the system when freed: glibc's default threshold grows
  // after such frees, after which they stay in the heap's arenas and the process's memory keeps
  // the high-water mark of every burst an attacker sends (issue 13).
  mallopt(M_MMAP_THRESHOLD, 256 * 1024);
  // Block the stop signals before any thread starts, so that only sigwait receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  try {
    return run(options, signals, hiddenArguments);
  } catch (const std::exception& error) {
    spdlog::critical("cache-server cannot run: {}", error.what());
    return 1;
  }
}
