#include "watcher/informer.h"

#include <spdlog/spdlog.h>

#include "core/pod_contract.h"
#include "watcher/recording_plan.h"
#include "watcher/watch_event.h"

namespace kcache::watcher {
namespace {

constexpr std::chrono::seconds kHealthyStreamDuration{10};

std::string objectName(const nlohmann::json& object) {
  const auto& metadata = object.value("metadata", nlohmann::json::object());
  return metadata.value("namespace", "") + "/" + metadata.value("name", "");
}

std::string describe(const InformerConfig& config) {
  std::string what(config.resource.plural);
  what += config.namespaceName.empty() ? " in all namespaces" : " in namespace ";
  what += config.namespaceName;
  return what;
}

}  // namespace

Informer::Informer(kube::KubeApi& api, InformerConfig config, InformerEventHandler& handler,
                   InformerMetrics& metrics)
    : api_(api),
      config_(std::move(config)),
      handler_(handler),
      metrics_(metrics),
      what_(describe(config_)) {
  if (config_.labelSelector.empty())
    config_.labelSelector = std::string(core::contract::kCacheIdLabel);
}

std::string Informer::resumeVersion() const {
  std::lock_guard lock(mutex_);
  return resumeVersion_;
}

void Informer::setResumeVersion(const std::string& version) {
  std::lock_guard lock(mutex_);
  resumeVersion_ = version;
}

void Informer::run(std::stop_token stop) {
  Backoff backoff(config_.backoff);
  bool needList = true;
  bool firstList = true;
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
          spdlog::info("watcher: resource version {} of {} expired, relisting", resumeVersion(),
                       what_);
          needList = true;
          break;
        case WatchEnd::kClosed:
          metrics_.watchRestarts.inc();
          spdlog::debug("watcher: watch of {} ended, resuming from {}", what_, resumeVersion());
          break;
      }
    } catch (const kube::KubeApiError& e) {
      if (stop.stop_requested()) break;
      if (e.status() == 410) needList = true;
      spdlog::warn("watcher: {} ({}, resume version {})", e.what(), what_, resumeVersion());
      if (!needList) metrics_.watchRestarts.inc();
    } catch (const std::exception& e) {
      spdlog::error("watcher: unexpected error watching {}: {}", what_, e.what());
    }
    if (healthy) {
      backoff.reset();
    } else if (!sleepFor(backoff.next(), stop)) {
      break;
    }
  }
}

void Informer::listAll(std::stop_token stop) {
  kube::ListOptions options;
  options.labelSelector = config_.labelSelector;
  options.limit = config_.pageSize;
  options.stop = stop;
  std::string listVersion;
  size_t count = 0;
  std::set<std::string> listed;
  do {
    kube::ObjectListPage page;
    try {
      page = api_.list(config_.resource, config_.namespaceName, options);
    } catch (const kube::KubeApiError& e) {
      if (e.status() != 410 || options.continueToken.empty()) throw;
      // The snapshot behind the continue token was compacted away: like client-go's pager, fall
      // back to one unpaged list rather than starting a paged list that may expire again.
      spdlog::info("watcher: continue token expired after {} {}, listing without paging", count,
                   config_.resource.plural);
      options.limit = 0;
      options.continueToken.clear();
      listVersion.clear();
      listed.clear();
      count = 0;
      page = api_.list(config_.resource, config_.namespaceName, options);
    }
    // A paged list is one snapshot: the first page's version is the one to watch from.
    if (listVersion.empty()) listVersion = page.resourceVersion;
    for (const auto& object : page.items) {
      if (stop.stop_requested()) return;
      listed.insert(trackingId(identityOf(object)));
      try {
        handler_.onObject(object);
      } catch (const std::exception& e) {
        spdlog::error("watcher: handling listed {} {} failed: {}", config_.resource.kind,
                      objectName(object), e.what());
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
  spdlog::info("watcher: listed {} {} at resource version {}", count, what_, listVersion);
}

Informer::WatchEnd Informer::watchOnce(std::stop_token stop, bool& receivedEvents) {
  kube::WatchOptions options;
  options.labelSelector = config_.labelSelector;
  options.resourceVersion = resumeVersion();
  options.allowWatchBookmarks = true;
  options.timeoutSeconds = config_.watchTimeoutSeconds;
  bool expired = false;

  api_.watch(
      config_.resource, config_.namespaceName, options,
      [&](std::string_view line) {
        auto parsed = parseWatchEvent(line, config_.kind);
        if (!parsed) {
          metrics_.malformedEvents.inc();
          spdlog::warn("watcher: skipping watch event of {}: {} ({} bytes)", what_, parsed.error(),
                       line.size());
          return true;
        }
        WatchEvent& event = *parsed;
        metrics_.event(event.type).inc();
        if (event.type == WatchEventType::kError) {
          const int code = statusCode(event.object);
          spdlog::warn("watcher: ERROR event watching {} (code {}, reason {}): {}", what_, code,
                       event.object.value("reason", ""), event.object.value("message", ""));
          expired = true;  // 410 or anything else: the stream's position can no longer be trusted
          return false;
        }
        receivedEvents = true;
        if (!event.resourceVersion.empty()) setResumeVersion(event.resourceVersion);
        if (event.type == WatchEventType::kBookmark) return true;
        try {
          if (event.type == WatchEventType::kDeleted) {
            handler_.onDeleted(event.object);
          } else {
            handler_.onObject(event.object);
          }
        } catch (const std::exception& e) {
          spdlog::error("watcher: handling {} of {} {} failed: {}", toString(event.type),
                        config_.resource.kind, objectName(event.object), e.what());
        }
        return true;
      },
      stop);
  if (stop.stop_requested()) return WatchEnd::kStopped;
  return expired ? WatchEnd::kExpired : WatchEnd::kClosed;
}

}  // namespace kcache::watcher
