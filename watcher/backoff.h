#pragma once
// Exponential backoff with full jitter between failed attempts, and a sleep that a stop request
// interrupts at once.
#include <chrono>
#include <mutex>
#include <random>
#include <stop_token>

namespace kcache::watcher {

struct BackoffConfig {
  std::chrono::milliseconds initial{200};
  std::chrono::milliseconds maximum{30000};
  double factor = 2.0;
};

class Backoff {
 public:
  explicit Backoff(BackoffConfig config = {});
  // The next delay: a random duration in [ceiling/2, ceiling], the ceiling doubling from
  // `initial` up to `maximum` on each call.
  std::chrono::milliseconds next();
  void reset();

 private:
  BackoffConfig config_;
  double ceilingMs_;
  std::mt19937_64 random_;
};

// Sleeps for `duration` unless `stop` is requested first. Returns false when stopped.
bool sleepFor(std::chrono::milliseconds duration, std::stop_token stop);

}  // namespace kcache::watcher
