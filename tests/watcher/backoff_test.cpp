#include <gtest/gtest.h>

#include <thread>

#include "watcher/backoff.h"

namespace kcache::watcher {
namespace {

using std::chrono::milliseconds;

TEST(Backoff, GrowsWithJitterUpToTheMaximumAndResets) {
  Backoff backoff(BackoffConfig{milliseconds(100), milliseconds(1000), 2.0});
  const milliseconds ceilings[] = {milliseconds(100), milliseconds(200),  milliseconds(400),
                                   milliseconds(800), milliseconds(1000), milliseconds(1000)};
  for (const auto ceiling : ceilings) {
    const auto delay = backoff.next();
    EXPECT_GE(delay, ceiling / 2);
    EXPECT_LE(delay, ceiling);
  }
  backoff.reset();
  EXPECT_LE(backoff.next(), milliseconds(100));
}

TEST(Backoff, SleepReturnsAtOnceWhenStopped) {
  std::stop_source stop;
  std::thread stopper([&] {
    std::this_thread::sleep_for(milliseconds(50));
    stop.request_stop();
  });
  // An hour-long sleep would hang the test if the stop request did not interrupt it.
  EXPECT_FALSE(sleepFor(std::chrono::hours(1), stop.get_token()));
  stopper.join();
  EXPECT_TRUE(sleepFor(milliseconds(1), std::stop_source().get_token()));
}

}  // namespace
}  // namespace kcache::watcher
