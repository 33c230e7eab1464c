#include "store/deadline_watchdog.h"

#include <sys/socket.h>

#include <algorithm>

namespace kcache::store {

DeadlineWatchdog::DeadlineWatchdog() : thread_([this] { run(); }) {}

DeadlineWatchdog::~DeadlineWatchdog() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

DeadlineWatchdog::Guard DeadlineWatchdog::watch(int socket, Clock::time_point deadline) {
  std::unique_lock lock(mutex_);
  const uint64_t id = nextId_++;
  watched_.emplace(id, Watched{socket, deadline});
  // Wake the thread only when it would sleep past this deadline (see run()).
  const bool wakeEarlier = deadline < wakeAt_;
  if (wakeEarlier) wakeAt_ = deadline;
  lock.unlock();
  if (wakeEarlier) changed_.notify_one();
  return Guard(this, id);
}

DeadlineWatchdog::Guard::~Guard() {
  if (watchdog_ == nullptr) return;
  std::lock_guard lock(watchdog_->mutex_);
  watchdog_->watched_.erase(id_);
}

bool DeadlineWatchdog::Guard::fired() const {
  std::lock_guard lock(watchdog_->mutex_);
  const auto found = watchdog_->watched_.find(id_);
  return found != watchdog_->watched_.end() && found->second.fired;
}

void DeadlineWatchdog::run() {
  // Waking up at least every tick, even with nothing to watch, means a new query needs to wake
  // the thread only when its deadline is closer than that: practically never.
  constexpr auto kTick = std::chrono::milliseconds(25);
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    const auto now = Clock::now();
    auto next = now + kTick;
    for (auto& [id, watched] : watched_) {
      if (watched.fired) continue;
      if (watched.deadline <= now) {
        // Under the lock, so the guard (and with it the open socket) cannot go away meanwhile.
        ::shutdown(watched.socket, SHUT_RDWR);
        watched.fired = true;
      } else {
        next = std::min(next, watched.deadline);
      }
    }
    wakeAt_ = next;
    changed_.wait_until(lock, next);
  }
}

}  // namespace kcache::store
