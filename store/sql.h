#pragma once
// The statements CacheStore prepares on every connection. Only parameters, never spliced values.
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

namespace kcache::store::sql {

// A PostgreSQL array literal ({1,2,3}) of numbers or of lower-case hex keys, passed as one
// parameter and cast in the statement (libpqxx 6.4 has no array parameters). Nothing in such
// values needs quoting.
template <typename Value>
std::string arrayLiteral(const std::vector<Value>& values) {
  std::string literal = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0) literal += ',';
    if constexpr (std::is_arithmetic_v<Value>) {
      literal += std::to_string(values[i]);
    } else {
      literal += values[i];
    }
  }
  return literal + '}';
}

inline constexpr const char* kEntryColumns =
    R"("ID", "ExecutionCacheKey", "Namespace", "PodName", "ExecutionTemplate", "ExecutionOutput",
       "MaxCacheStaleness", "StartedAtInSec", "EndedAtInSec", "RunDurationInSec", "HitCount",
       "LastHitAtInSec")";

// Since migration 4 every row kcache writes has "ScopeKey" '' and the key alone tells the scope:
// namespace-bound keys (namespace scope, Kubeflow 2.18) and template-only keys (cluster scope,
// Kubeflow <= 2.17) never coincide. The unique ("ScopeKey", "ExecutionCacheKey") index therefore
// holds at most one row per key (record() keeps the first fresh writer's): no ORDER BY, so no
// sort step. Rows an older kcache left with a namespace in "ScopeKey"
// (template-only keys bound to a namespace that migration 4 could not convert) never match.
inline constexpr const char* kFreshFor = R"(
    AND "StartedAtInSec" >= 0
    AND ("MaxCacheStaleness" < 0 OR $2::bigint - "StartedAtInSec" <= "MaxCacheStaleness")
    AND ($3::bigint < 0 OR $2::bigint - "StartedAtInSec" <= $3::bigint))";

// $1 cache key, $2 now, $3 pod staleness (never 0 here), $4 the pod's namespace in namespace
// scope ('' in cluster scope, where any recording namespace matches). Fresh by both the entry's
// recorded staleness and the pod's, boundary inclusive as in Kubeflow.
inline const std::string kLookup = std::string("SELECT ") + kEntryColumns + R"(
  FROM execution_caches
  WHERE "ScopeKey" = '' AND "ExecutionCacheKey" = $1
    AND ($4::text = '' OR "Namespace" = $4::text))" +
                                   kFreshFor;

// Audit mode: a row with no namespace (Kubeflow before 2.18) under the template-only key $1.
inline const std::string kLookupLegacy = std::string("SELECT ") + kEntryColumns + R"(
  FROM execution_caches
  WHERE "ScopeKey" = '' AND "ExecutionCacheKey" = $1 AND "Namespace" = '')" +
                                         kFreshFor;

// First fresh writer wins. A record replaces the entry of its key in place (same id, hit counters
// restart) only when it is newer and either
//  - the entry is no longer fresh at the record's time, under the staleness the entry was recorded
//    with capped by $10 (MAXIMUM_CACHE_STALENESS in seconds, negative: no cap), so a P1000Y
//    staleness cannot outlive the operator's maximum; or
//  - the record comes from the pod that wrote the entry (same namespace and pod name): a pod
//    recorded again after a retry.
// Anything else (a repeated or forged record of a fresh step, an older result) leaves the entry
// alone and returns no row. $9 is the recording namespace in namespace scope ('' in cluster
// scope): a namespace never replaces another's entry, even if handed a key that collides.
// RETURNING tells an insert (xmax = 0) from a replacement.
inline const std::string kUpsert = R"(
  INSERT INTO execution_caches AS current
    ("ExecutionCacheKey", "ExecutionTemplate", "ExecutionOutput", "MaxCacheStaleness",
     "StartedAtInSec", "EndedAtInSec", "Namespace", "ScopeKey", "PodName", "RunDurationInSec",
     "HitCount")
  VALUES ($1, $2, $3, $4, $5, $5, $6, '', $7, $8, 0)
  ON CONFLICT ("ScopeKey", "ExecutionCacheKey") DO UPDATE SET
    "ExecutionTemplate" = EXCLUDED."ExecutionTemplate",
    "ExecutionOutput" = EXCLUDED."ExecutionOutput",
    "MaxCacheStaleness" = EXCLUDED."MaxCacheStaleness",
    "StartedAtInSec" = EXCLUDED."StartedAtInSec",
    "EndedAtInSec" = EXCLUDED."EndedAtInSec",
    "Namespace" = EXCLUDED."Namespace",
    "PodName" = EXCLUDED."PodName",
    "RunDurationInSec" = EXCLUDED."RunDurationInSec",
    "HitCount" = 0,
    "LastHitAtInSec" = NULL
  WHERE current."StartedAtInSec" < EXCLUDED."StartedAtInSec"
    AND ($9::text = '' OR current."Namespace" = $9::text)
    AND ((current."PodName" <> '' AND current."PodName" = EXCLUDED."PodName"
          AND current."Namespace" = EXCLUDED."Namespace")
         OR current."StartedAtInSec" < 0
         OR (current."MaxCacheStaleness" >= 0
             AND EXCLUDED."StartedAtInSec" - current."StartedAtInSec" > current."MaxCacheStaleness")
         OR ($10::bigint >= 0
             AND EXCLUDED."StartedAtInSec" - current."StartedAtInSec" > $10::bigint))
  RETURNING "ID", (xmax = 0) AS inserted)";

// The entry a refused upsert left in place, locked until the end of the transaction so that it
// can be replaced when it turns out not to be replayable (replaceUnusable).
inline const std::string kExistingId = R"(SELECT "ID", "Namespace", "ExecutionOutput",
    "StartedAtInSec" FROM execution_caches
  WHERE "ScopeKey" = '' AND "ExecutionCacheKey" = $1 FOR UPDATE)";

// Replaces entry $1 (locked by kExistingId) with the record: the same columns as kUpsert.
inline const std::string kReplaceById = R"(
  UPDATE execution_caches SET
    "ExecutionTemplate" = $2, "ExecutionOutput" = $3, "MaxCacheStaleness" = $4,
    "StartedAtInSec" = $5, "EndedAtInSec" = $5, "Namespace" = $6, "PodName" = $7,
    "RunDurationInSec" = $8, "HitCount" = 0, "LastHitAtInSec" = NULL
  WHERE "ID" = $1)";

// $1 ids, $2 hit counts, $3 last hit times, as bigint array literals.
inline const std::string kHits = R"(
  UPDATE execution_caches AS e
  SET "HitCount" = e."HitCount" + v.hits,
      "LastHitAtInSec" = GREATEST(COALESCE(e."LastHitAtInSec", v.last), v.last)
  FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS v(id, hits, last)
  WHERE e."ID" = v.id)";

inline const std::string kGcExpired = R"(
  DELETE FROM execution_caches WHERE "ID" IN (
    SELECT "ID" FROM execution_caches WHERE "StartedAtInSec" < $1
    ORDER BY "StartedAtInSec" LIMIT $2))";

inline const std::string kGcEvict = R"(
  DELETE FROM execution_caches WHERE "ID" IN (
    SELECT "ID" FROM execution_caches
    ORDER BY COALESCE("LastHitAtInSec", "StartedAtInSec"), "ID" LIMIT $1))";

// Operators' queries (cachectl list, show, purge). Optional filters arrive as (flag, value) pairs
// because libpqxx 6.4 cannot pass NULL parameters: $1/$2 id, $3/$4 key, $5 key prefix ('' for
// any), $6/$7 namespace, $8/$9 recorded before, $10/$11 recorded after.
inline constexpr const char* kEntryFilter = R"(
  WHERE ($1::boolean IS FALSE OR "ID" = $2::bigint)
    AND ($3::boolean IS FALSE OR "ExecutionCacheKey" = $4::text)
    AND left("ExecutionCacheKey", length($5::text)) = $5::text
    AND ($6::boolean IS FALSE OR "Namespace" = $7::text)
    AND ($8::boolean IS FALSE OR "StartedAtInSec" < $9::bigint)
    AND ($10::boolean IS FALSE OR "StartedAtInSec" > $11::bigint))";

// $12 the last id of the previous page, $13 the page size.
inline const std::string kListEntries =
    std::string("SELECT ") + kEntryColumns + " FROM execution_caches" + kEntryFilter +
    R"( AND "ID" > $12::bigint ORDER BY "ID" LIMIT $13::bigint)";
inline const std::string kCountEntries =
    std::string("SELECT count(*) FROM execution_caches") + kEntryFilter;
inline const std::string kPurgeEntries = std::string("DELETE FROM execution_caches") + kEntryFilter;

}  // namespace kcache::store::sql
