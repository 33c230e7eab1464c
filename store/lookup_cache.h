#pragma once
// RecentHitCache: a short-lived memory of the entries the store recently FOUND, in front of any
// CacheLookup, so that a burst of identical steps (a parallelFor, a re-run pipeline) does not
// cost a database round trip per pod.
//
// Semantics, relative to asking the store every time:
// - Only hits are remembered. A miss always goes to the store, so a step recorded a moment ago
//   hits on its very next admission.
// - A remembered entry is used for at most `ttl` after the store returned it. Every use checks
//   it again against the pod's staleness and the entry's own recorded MaxCacheStaleness with the
//   rule the store's query applies (core::StalenessPolicy::isFresh); when it is not fresh the
//   store is asked.
// - So what changes in the database reaches admissions at most `ttl` later: an entry purged by
//   an operator or deleted by GC, or replaced by a newer recording of the same key, may still be
//   served during that time (the replaced one is still a valid result of the same step).
// - Scopes and namespaces never mix: a namespace-scoped entry is only served to its namespace.
// - Failures of the store are never remembered; they reach the caller as before.
// - noteHit and lookupLegacy pass straight through (the store batches hits).
#include <array>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "store/cache_store.h"

namespace kcache::store {

struct RecentHitCacheOptions {
  // How long an entry the store returned may be served from memory. Zero disables the cache.
  std::chrono::milliseconds ttl{2000};
  // Upper bound on the memory the remembered entries take (their strings, spread evenly over the
  // shards); beyond it the expired and then the oldest go first. An entry larger than a shard's
  // share is not remembered.
  std::size_t maxBytes = 8 * 1024 * 1024;
};

class RecentHitCache : public CacheLookup {
 public:
  using Clock = std::chrono::steady_clock;
  using Now = std::function<Clock::time_point()>;  // injectable for tests

  RecentHitCache(CacheLookup& store, RecentHitCacheOptions options, Now now = {});

  // The remembered entry when there is a usable one, else the store's answer (a hit is then
  // remembered). Throws what the store throws.
  std::optional<CacheEntry> lookup(CacheScope scope, std::string_view namespaceName,
                                   std::string_view key, int64_t podStalenessSeconds,
                                   int64_t nowInSec) override;
  // Straight to the store: audit-mode reuses are rare and each must be reported.
  std::optional<CacheEntry> lookupLegacy(std::string_view legacyKey, int64_t podStalenessSeconds,
                                         int64_t nowInSec) override;
  void noteHit(int64_t entryId, int64_t nowInSec) override;

  // Never blocks on the database: the remembered entry when it is within the TTL and fresh for
  // this pod; nullopt means "not known here, call lookup()" (it is NOT a miss).
  std::optional<CacheEntry> lookupRemembered(CacheScope scope, std::string_view namespaceName,
                                             std::string_view key, int64_t podStalenessSeconds,
                                             int64_t nowInSec);

  bool enabled() const { return options_.ttl.count() > 0; }
  std::size_t size() const;   // entries remembered now
  std::size_t bytes() const;  // what they take, as counted against maxBytes

 private:
  struct Remembered {
    std::shared_ptr<const CacheEntry> entry;
    Clock::time_point fetchedAt;
    std::size_t bytes = 0;
  };
  struct Shard {
    mutable std::mutex mutex;
    std::unordered_map<std::string, Remembered> entries;
    std::size_t bytes = 0;
  };
  static constexpr std::size_t kShards = 16;

  Shard& shardFor(const std::string& cacheKey);
  void remember(const std::string& cacheKey, const CacheEntry& entry, Clock::time_point now);

  CacheLookup& store_;
  RecentHitCacheOptions options_;
  Now now_;
  std::size_t maxBytesPerShard_;
  std::array<Shard, kShards> shards_;
};

}  // namespace kcache::store
