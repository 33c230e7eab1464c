// Operators' queries (cachectl list, show, purge): filters, paging, counting, purging.
#include <gtest/gtest.h>

#include "tests/store/store_fixture.h"

namespace kcache::store::testing {
namespace {

constexpr int64_t kT = 1'700'000'000;

class OperatorTest : public StoreTest {
 protected:
  void SetUp() override {
    StoreTest::SetUp();
    a1_ = store().record(CacheScope::kNamespace, makeEntry(keyOf('a'), "team-a", kT));
    a2_ = store().record(CacheScope::kNamespace, makeEntry(keyOf('b'), "team-a", kT + 10));
    b1_ = store().record(CacheScope::kNamespace, makeEntry(keyOf('d'), "team-b", kT + 20));
    sql("INSERT INTO execution_caches (\"ExecutionCacheKey\", \"ExecutionTemplate\", "
        "\"ExecutionOutput\", \"MaxCacheStaleness\", \"StartedAtInSec\", \"EndedAtInSec\") "
        "VALUES ('" +
        keyOf('c') + "', '{}', '{}', -1, 5, 5)");
  }
  std::vector<int64_t> ids(const EntryFilter& filter, int64_t afterId = 0, int64_t limit = 100) {
    std::vector<int64_t> result;
    for (const auto& entry : store().listEntries(filter, afterId, limit)) {
      result.push_back(entry.id);
    }
    return result;
  }
  int64_t a1_ = 0, a2_ = 0, b1_ = 0;
};

TEST_F(OperatorTest, FiltersSelectByIdKeyPrefixNamespaceAndTime) {
  EXPECT_EQ(ids({}).size(), 4u);
  EntryFilter byId;
  byId.id = a2_;
  EXPECT_EQ(ids(byId), std::vector<int64_t>{a2_});
  EntryFilter byKey;
  byKey.key = keyOf('a');
  EXPECT_EQ(ids(byKey), std::vector<int64_t>{a1_});
  EntryFilter byPrefix;
  byPrefix.keyPrefix = "bbbb";
  EXPECT_EQ(ids(byPrefix), std::vector<int64_t>{a2_});
  EntryFilter byNamespace;
  byNamespace.namespaceName = "team-a";
  EXPECT_EQ(ids(byNamespace), (std::vector<int64_t>{a1_, a2_}));
  EntryFilter legacy;
  legacy.namespaceName = "";
  ASSERT_EQ(ids(legacy).size(), 1u);
  EXPECT_EQ(store().listEntries(legacy, 0, 10)[0].key, keyOf('c'));
  EntryFilter window;
  window.recordedAfter = kT;
  window.recordedBefore = kT + 20;
  EXPECT_EQ(ids(window), std::vector<int64_t>{a2_});
  EXPECT_EQ(store().countEntries(byNamespace), 2);
  EXPECT_EQ(store().countEntries({}), 4);
}

TEST_F(OperatorTest, ListingPagesInIdOrder) {
  const std::vector<int64_t> all = ids({});
  const std::vector<int64_t> first = ids({}, 0, 2);
  ASSERT_EQ(first.size(), 2u);
  const std::vector<int64_t> second = ids({}, first.back(), 2);
  ASSERT_EQ(second.size(), 2u);
  EXPECT_EQ(std::vector<int64_t>({first[0], first[1], second[0], second[1]}), all);
  EXPECT_TRUE(ids({}, second.back(), 2).empty());
}

TEST_F(OperatorTest, PurgeDeletesExactlyTheSelection) {
  EntryFilter byNamespace;
  byNamespace.namespaceName = "team-a";
  EXPECT_EQ(store().purgeEntries(byNamespace), 2);
  EXPECT_EQ(store().countEntries({}), 2);
  EXPECT_FALSE(store().lookup(CacheScope::kNamespace, "team-a", keyOf('a'), -1, kT));
  EXPECT_TRUE(store().lookup(CacheScope::kNamespace, "team-b", keyOf('d'), -1, kT + 20));
}

}  // namespace
}  // namespace kcache::store::testing
