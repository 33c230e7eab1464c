#include "store/lookup_cache.h"

#include <algorithm>

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
      maxPerShard_(std::max<std::size_t>(1, (options.maxEntries + kShards - 1) / kShards)) {}

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
      shard.entries.erase(found);
      return std::nullopt;
    }
    entry = found->second.entry;
  }
  // Not fresh for this pod: the store decides (it may hold a newer recording).
  if (!freshFor(*entry, podStalenessSeconds, nowInSec)) return std::nullopt;
  return *entry;  // the copy is made outside the lock
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
  auto shared = std::make_shared<const CacheEntry>(entry);
  Shard& shard = shardFor(cacheKey);
  std::lock_guard lock(shard.mutex);
  if (shard.entries.size() >= maxPerShard_ && !shard.entries.count(cacheKey)) {
    // Full: drop what has expired, and if that freed nothing, the oldest.
    const auto now = now_();
    std::erase_if(shard.entries,
                  [&](const auto& item) { return now - item.second.fetchedAt >= options_.ttl; });
    if (shard.entries.size() >= maxPerShard_) {
      shard.entries.erase(std::min_element(
          shard.entries.begin(), shard.entries.end(),
          [](const auto& a, const auto& b) { return a.second.fetchedAt < b.second.fetchedAt; }));
    }
  }
  shard.entries.insert_or_assign(cacheKey, Remembered{std::move(shared), fetchedAt});
}

}  // namespace kcache::store
