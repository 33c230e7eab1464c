#include "store/lookup_cache.h"

#include <algorithm>
#include <iterator>

#include "core/staleness.h"

namespace kcache::store {

namespace {

// One string per (scope, namespace, key). Cluster entries ignore the namespace; a namespace
// name never contains '\n' (it is a DNS label), so two different triples never share a string.
std::optional<std::string> cacheKeyOf(CacheScope scope, std::string_view ns, std::string_view key) {
  if (scope == CacheScope::kCluster) return "c\n" + std::string(key);
  if (ns.empty()) return std::nullopt;  // the store refuses it; nothing to remember
  std::string text = "n";
  text.reserve(2 + ns.size() + key.size());
  text += ns;
  text += '\n';
  text += key;
  return text;
}

std::size_t footprintOf(const std::string& cacheKey, const CacheEntry& entry) {
  return sizeof(CacheEntry) + cacheKey.size() + entry.key.size() + entry.namespaceName.size() +
         entry.podName.size() + entry.executionTemplate.size() + entry.executionOutput.size();
}

// The store's own rule (sql::kLookup), applied to an entry it returned earlier.
bool freshFor(const CacheEntry& entry, int64_t podStaleness, int64_t nowInSec) {
  return entry.startedAtInSec >= 0 &&
         core::StalenessPolicy::isFresh(nowInSec - entry.startedAtInSec, podStaleness,
                                        entry.maxCacheStaleness);
}

}  // namespace

RecentHitCache::RecentHitCache(CacheLookup& store, RecentHitCacheOptions options, Now now)
    : store_(store),
      options_(options),
      now_(now ? std::move(now) : Now([] { return Clock::now(); })),
      maxBytesPerShard_(options.maxBytes / kShards) {}

std::optional<CacheEntry> RecentHitCache::lookup(CacheScope scope, std::string_view namespaceName,
                                                 std::string_view key, int64_t podStalenessSeconds,
                                                 int64_t nowInSec) {
  if (auto remembered =
          lookupRemembered(scope, namespaceName, key, podStalenessSeconds, nowInSec)) {
    return remembered;
  }
  const auto fetchedAt = now_();
  auto entry = store_.lookup(scope, namespaceName, key, podStalenessSeconds, nowInSec);
  if (entry && enabled()) {
    if (const auto cacheKey = cacheKeyOf(scope, namespaceName, key)) {
      remember(*cacheKey, *entry, fetchedAt);
    }
  }
  return entry;
}

std::optional<CacheEntry> RecentHitCache::lookupLegacy(std::string_view legacyKey,
                                                       int64_t podStalenessSeconds,
                                                       int64_t nowInSec) {
  return store_.lookupLegacy(legacyKey, podStalenessSeconds, nowInSec);
}

void RecentHitCache::noteHit(int64_t entryId, int64_t nowInSec) {
  store_.noteHit(entryId, nowInSec);
}

std::optional<CacheEntry> RecentHitCache::lookupRemembered(CacheScope scope,
                                                           std::string_view namespaceName,
                                                           std::string_view key,
                                                           int64_t podStalenessSeconds,
                                                           int64_t nowInSec) {
  if (!enabled()) return std::nullopt;
  const auto cacheKey = cacheKeyOf(scope, namespaceName, key);
  if (!cacheKey) return std::nullopt;
  std::shared_ptr<const CacheEntry> entry;
  {
    Shard& shard = shardFor(*cacheKey);
    std::lock_guard lock(shard.mutex);
    const auto found = shard.entries.find(*cacheKey);
    if (found == shard.entries.end()) return std::nullopt;
    if (now_() - found->second.fetchedAt >= options_.ttl) {
      shard.bytes -= found->second.bytes;
      shard.entries.erase(found);
      return std::nullopt;
    }
    entry = found->second.entry;
  }
  // Not fresh for this pod: the store decides (it may hold a newer recording).
  if (!freshFor(*entry, podStalenessSeconds, nowInSec)) return std::nullopt;
  return *entry;  // the copy is made outside the lock
}

std::size_t RecentHitCache::bytes() const {
  std::size_t total = 0;
  for (const auto& shard : shards_) {
    std::lock_guard lock(shard.mutex);
    total += shard.bytes;
  }
  return total;
}

std::size_t RecentHitCache::size() const {
  std::size_t total = 0;
  for (const auto& shard : shards_) {
    std::lock_guard lock(shard.mutex);
    total += shard.entries.size();
  }
  return total;
}

RecentHitCache::Shard& RecentHitCache::shardFor(const std::string& cacheKey) {
  return shards_[std::hash<std::string>{}(cacheKey) % kShards];
}

void RecentHitCache::remember(const std::string& cacheKey, const CacheEntry& entry,
                              Clock::time_point fetchedAt) {
  const std::size_t bytes = footprintOf(cacheKey, entry);
  if (bytes > maxBytesPerShard_) return;
  auto shared = std::make_shared<const CacheEntry>(entry);
  Shard& shard = shardFor(cacheKey);
  std::lock_guard lock(shard.mutex);
  const auto forget = [&shard](auto position) {
    shard.bytes -= position->second.bytes;
    return shard.entries.erase(position);
  };
  if (const auto previous = shard.entries.find(cacheKey); previous != shard.entries.end()) {
    forget(previous);
  }
  if (shard.bytes + bytes > maxBytesPerShard_) {
    // Full: drop what has expired, then the oldest, until the new entry fits.
    const auto now = now_();
    for (auto it = shard.entries.begin(); it != shard.entries.end();) {
      it = now - it->second.fetchedAt >= options_.ttl ? forget(it) : std::next(it);
    }
    while (shard.bytes + bytes > maxBytesPerShard_ && !shard.entries.empty()) {
      forget(std::min_element(
          shard.entries.begin(), shard.entries.end(),
          [](const auto& a, const auto& b) { return a.second.fetchedAt < b.second.fetchedAt; }));
    }
  }
  shard.entries.emplace(cacheKey, Remembered{std::move(shared), fetchedAt, bytes});
  shard.bytes += bytes;
}

}  // namespace kcache::store
