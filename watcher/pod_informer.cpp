#include "watcher/pod_informer.h"

#include <spdlog/spdlog.h>

#include "core/pod_contract.h"
#include "watcher/recording_plan.h"
#include "watcher/watch_event.h"

namespace kcache::watcher {
namespace {

constexpr std::chrono::seconds kHealthyStreamDuration{10};

std::string podName(const nlohmann::json& pod) {
  const auto& metadata = pod.value("metadata", nlohmann::json::object());
  return metadata.value("namespace", "") + "/" + metadata.value("name", "");
}

}  // namespace

PodInformer::PodInformer(kube::KubeApi& api, InformerConfig config, PodEventHandler& handler,
                         WatcherMetrics& metrics)
    : api_(api), config_(std::move(config)), handler_(handler), metrics_(metrics) {
  if (config_.labelSelector.empty())
    config_.labelSelector = std::string(core::contract::kCacheIdLabel);
}

std::string PodInformer::resumeVersion() const {
  std::lock_guard lock(mutex_);
  return resumeVersion_;
}

void PodInformer::setResumeVersion(const std::string& version) {
  std::lock_guard lock(mutex_);
  resumeVersion_ = version;
}

void PodInformer::run(std::stop_token stop) {
  Backoff backoff(config_.backoff);
  bool needList = true;
  bool firstList = true;
  const std::string scope =
      config_.namespaceName.empty() ? "all namespaces" : "namespace " + config_.namespaceName;
  while (!stop.stop_requested()) {
    bool healthy = false;
    try {
      if (needList) {
        if (!firstList) metrics_.relists.inc();
        listAll(stop);
        if (stop.stop_requested()) break;
        needList = false;
        firstList = false;
        // The backoff is not reset here: a server that lists fine but fails every watch must
        // not be relisted at the initial rate forever. A healthy watch resets it.
      }
      const auto watchStarted = std::chrono::steady_clock::now();
      const WatchEnd end = watchOnce(stop, healthy);
      // A quiet stream that lasted (the server's timeoutSeconds) was healthy too: reconnect at
      // once rather than backing off further on a cluster without bookmarks.
      if (std::chrono::steady_clock::now() - watchStarted >= kHealthyStreamDuration) healthy = true;
      switch (end) {
        case WatchEnd::kStopped:
          return;
        case WatchEnd::kExpired:
          spdlog::info("watcher: resource version {} expired in {}, relisting", resumeVersion(),
                       scope);
          needList = true;
          break;
        case WatchEnd::kClosed:
          metrics_.watchRestarts.inc();
          spdlog::debug("watcher: watch stream ended, resuming from {}", resumeVersion());
          break;
      }
    } catch (const kube::KubeApiError& e) {
      if (stop.stop_requested()) break;
      if (e.status() == 410) needList = true;
      spdlog::warn("watcher: {} in {} (resume version {})", e.what(), scope, resumeVersion());
      if (!needList) metrics_.watchRestarts.inc();
    } catch (const std::exception& e) {
      spdlog::error("watcher: unexpected error in {}: {}", scope, e.what());
    }
    if (healthy) {
      backoff.reset();
    } else if (!sleepFor(backoff.next(), stop)) {
      break;
    }
  }
}

void PodInformer::listAll(std::stop_token stop) {
  kube::ListOptions options;
  options.labelSelector = config_.labelSelector;
  options.limit = config_.pageSize;
  options.stop = stop;
  std::string listVersion;
  size_t count = 0;
  std::set<std::string> listed;
  do {
    kube::PodListPage page;
    try {
      page = api_.list(kube::resources::kPods, config_.namespaceName, options);
    } catch (const kube::KubeApiError& e) {
      if (e.status() != 410 || options.continueToken.empty()) throw;
      // The snapshot behind the continue token was compacted away: like client-go's pager, fall
      // back to one unpaged list rather than starting a paged list that may expire again.
      spdlog::info("watcher: continue token expired after {} pods, listing without paging", count);
      options.limit = 0;
      options.continueToken.clear();
      listVersion.clear();
      listed.clear();
      count = 0;
      page = api_.list(kube::resources::kPods, config_.namespaceName, options);
    }
    // A paged list is one snapshot: the first page's version is the one to watch from.
    if (listVersion.empty()) listVersion = page.resourceVersion;
    for (const auto& pod : page.items) {
      if (stop.stop_requested()) return;
      listed.insert(trackingId(identityOf(pod)));
      try {
        handler_.onPod(pod);
      } catch (const std::exception& e) {
        spdlog::error("watcher: handling listed pod {} failed: {}", podName(pod), e.what());
      }
      ++count;
    }
    options.continueToken = page.continueToken;
  } while (!options.continueToken.empty() && !stop.stop_requested());
  if (stop.stop_requested()) return;
  handler_.onListed(listed);
  setResumeVersion(listVersion);
  metrics_.lists.inc();
  completedLists_.fetch_add(1);
  spdlog::info("watcher: listed {} tagged pods at resource version {}", count, listVersion);
}

PodInformer::WatchEnd PodInformer::watchOnce(std::stop_token stop, bool& receivedEvents) {
  kube::WatchOptions options;
  options.labelSelector = config_.labelSelector;
  options.resourceVersion = resumeVersion();
  options.allowWatchBookmarks = true;
  options.timeoutSeconds = config_.watchTimeoutSeconds;
  bool expired = false;

  api_.watch(
      kube::resources::kPods, config_.namespaceName, options,
      [&](std::string_view line) {
        auto parsed = parseWatchEvent(line);
        if (!parsed) {
          metrics_.malformedEvents.inc();
          spdlog::warn("watcher: skipping watch event: {} ({} bytes)", parsed.error(), line.size());
          return true;
        }
        WatchEvent& event = *parsed;
        metrics_.event(event.type).inc();
        if (event.type == WatchEventType::kError) {
          const int code = statusCode(event.object);
          spdlog::warn("watcher: ERROR event (code {}, reason {}): {}", code,
                       event.object.value("reason", ""), event.object.value("message", ""));
          expired = true;  // 410 or anything else: the stream's position can no longer be trusted
          return false;
        }
        receivedEvents = true;
        if (!event.resourceVersion.empty()) setResumeVersion(event.resourceVersion);
        if (event.type == WatchEventType::kBookmark) return true;
        try {
          if (event.type == WatchEventType::kDeleted) {
            handler_.onPodDeleted(event.object);
          } else {
            handler_.onPod(event.object);
          }
        } catch (const std::exception& e) {
          spdlog::error("watcher: handling {} of pod {} failed: {}", toString(event.type),
                        podName(event.object), e.what());
        }
        return true;
      },
      stop);
  if (stop.stop_requested()) return WatchEnd::kStopped;
  return expired ? WatchEnd::kExpired : WatchEnd::kClosed;
}

}  // namespace kcache::watcher
