#include "watcher/backoff.h"

#include <algorithm>
#include <condition_variable>

namespace kcache::watcher {

Backoff::Backoff(BackoffConfig config)
    : config_(config),
      ceilingMs_(static_cast<double>(config.initial.count())),
      random_(std::random_device{}()) {}

std::chrono::milliseconds Backoff::next() {
  const double ceiling = std::max(1.0, ceilingMs_);
  std::uniform_real_distribution<double> jitter(ceiling / 2, ceiling);
  const auto delay = std::chrono::milliseconds(static_cast<int64_t>(jitter(random_)));
  ceilingMs_ = std::min(ceiling * config_.factor, static_cast<double>(config_.maximum.count()));
  return delay;
}

void Backoff::reset() {
  ceilingMs_ = static_cast<double>(config_.initial.count());
}

bool sleepFor(std::chrono::milliseconds duration, std::stop_token stop) {
  std::mutex mutex;
  std::condition_variable_any wakeUp;
  std::unique_lock lock(mutex);
  wakeUp.wait_for(lock, stop, duration, [] { return false; });
  return !stop.stop_requested();
}

}  // namespace kcache::watcher
