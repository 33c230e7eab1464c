#include "store/connection_pool.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "store/cache_store.h"
#include "store/dsn.h"

namespace kcache::store {

ConnectionPool::ConnectionPool(PoolOptions options) : options_(std::move(options)) {
  options_.size = std::max<std::size_t>(options_.size, 1);
  connector_ = std::thread([this] { connectLoop(); });
}

ConnectionPool::~ConnectionPool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wanted_.notify_all();
  connector_.join();
}

ConnectionPool::Lease::Lease(Lease&& other) noexcept
    : pool_(other.pool_), connection_(std::move(other.connection_)), broken_(other.broken_) {
  other.pool_ = nullptr;
}

ConnectionPool::Lease::~Lease() {
  if (pool_ != nullptr && connection_) pool_->giveBack(std::move(connection_), broken_);
}

ConnectionPool::Lease ConnectionPool::acquire(Clock::time_point deadline) {
  std::unique_lock lock(mutex_);
  for (;;) {
    if (!idle_.empty()) {
      const auto me = std::this_thread::get_id();
      auto chosen = std::find_if(idle_.begin(), idle_.end(),
                                 [&](const Idle& idle) { return idle.lastUser == me; });
      if (chosen == idle_.end()) chosen = idle_.end() - 1;
      auto connection = std::move(chosen->connection);
      idle_.erase(chosen);
      return Lease(this, std::move(connection));
    }
    const bool mayOpen = open_ < options_.size;
    if (mayOpen) {
      const auto now = Clock::now();
      if (now < nextConnectAttempt_) {
        const auto wait =
            std::chrono::duration_cast<std::chrono::milliseconds>(nextConnectAttempt_ - now);
        throw StoreError("PostgreSQL at " + options_.target + " is unreachable (next attempt in " +
                         std::to_string(wait.count()) + " ms): " + lastConnectError_);
      }
      ++open_;
      ++requested_;
      wanted_.notify_one();
    }
    const uint64_t failuresSeen = connectFailures_;
    // Having asked for a connection, wait for it (or its failure); otherwise also for a slot that
    // a broken connection freed.
    const bool woken = released_.wait_until(lock, deadline, [&] {
      return !idle_.empty() || connectFailures_ != failuresSeen ||
             (!mayOpen && open_ < options_.size);
    });
    if (!idle_.empty()) continue;
    if (connectFailures_ != failuresSeen) {
      throw StoreError("cannot connect to PostgreSQL at " + options_.target + ": " +
                       lastConnectError_);
    }
    if (!woken) {
      throw StoreError(mayOpen ? "connecting to PostgreSQL at " + options_.target +
                                     " did not finish within the deadline"
                               : "no free connection to PostgreSQL at " + options_.target +
                                     " within the deadline (pool of " +
                                     std::to_string(options_.size) + " busy)");
    }
  }
}

std::unique_ptr<pqxx::connection> ConnectionPool::connect() {
  auto connection = std::make_unique<pqxx::connection>(options_.dsn);
  if (options_.setup) options_.setup(*connection);
  return connection;
}

void ConnectionPool::connectLoop() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wanted_.wait(lock, [this] { return stopping_ || requested_ > 0; });
    if (stopping_) return;
    lock.unlock();
    std::unique_ptr<pqxx::connection> connection;
    std::string error;
    try {
      connection = connect();
    } catch (const std::exception& failure) {
      error = oneLineError(failure.what(), passwordOf(options_.dsn));
    }
    lock.lock();
    if (connection) {
      --requested_;
      idle_.push_back(Idle{std::move(connection), {}});
      if (backoff_.count() > 0) {
        spdlog::info("store: reconnected to PostgreSQL at {}", options_.target);
      }
      backoff_ = std::chrono::milliseconds(0);
      nextConnectAttempt_ = {};
    } else {
      // Every pending request fails with this attempt; callers come back after the backoff.
      open_ -= requested_;
      requested_ = 0;
      ++connectFailures_;
      backoff_ = backoff_.count() == 0 ? options_.backoffInitial
                                       : std::min(backoff_ * 2, options_.backoffMax);
      nextConnectAttempt_ = Clock::now() + backoff_;
      lastConnectError_ = error;
      spdlog::warn("store: cannot connect to PostgreSQL at {} (retry in {} ms): {}",
                   options_.target, backoff_.count(), error);
    }
    released_.notify_all();
  }
}

void ConnectionPool::giveBack(std::unique_ptr<pqxx::connection> connection, bool broken) {
  std::vector<Idle> dropped;
  {
    std::lock_guard lock(mutex_);
    if (broken) {
      --open_;
      open_ -= idle_.size();
      dropped = std::move(idle_);
      idle_.clear();
    } else {
      idle_.push_back(Idle{std::move(connection), std::this_thread::get_id()});
    }
  }
  released_.notify_all();
  // Closing happens outside the lock: `dropped` and a broken `connection` die here.
}

}  // namespace kcache::store
