#pragma once
// A fresh database per test on the binary's shared PostgreSQL server, plus helpers to look at it
// directly with SQL.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <vector>

#include "core/execution_key.h"
#include "store/cache_store.h"
#include "tests/support/postgres_server.h"

namespace kcache::store::testing {

// The table as Kubeflow Pipelines' GORM AutoMigrate leaves it on PostgreSQL, before 2.18.
inline constexpr const char* kKubeflowSchema = R"(
  CREATE TABLE "execution_caches" ("ID" bigserial,"ExecutionCacheKey" text NOT NULL,
    "ExecutionTemplate" text NOT NULL,"ExecutionOutput" text NOT NULL,
    "MaxCacheStaleness" bigint NOT NULL,"StartedAtInSec" bigint NOT NULL,
    "EndedAtInSec" bigint NOT NULL,PRIMARY KEY ("ID"));
  CREATE INDEX IF NOT EXISTS "idx_cache_key" ON "execution_caches" ("ExecutionCacheKey");
  CREATE INDEX IF NOT EXISTS "composite_id_idx" ON "execution_caches" ("ID","StartedAtInSec");)";

inline std::string keyOf(char c) {
  return std::string(64, c);
}

// A step's template (the image names the step) and its real key in `scope` for a pod of
// `namespaceName`: what the webhook looks up and the watcher records. Tests about scopes and
// namespaces need real keys, since keys are what keeps them apart.
inline std::string stepTemplate(char step) {
  return std::string(R"({"container":{"image":"python:3.11-)") + step +
         R"(","command":["python"]}})";
}
inline std::string stepKey(char step, CacheScope scope, const std::string& namespaceName) {
  return core::computeExecutionKey(stepTemplate(step), keyBindingOf(scope), namespaceName)
      .value()
      .hex();
}

inline NewEntry makeEntry(std::string key, std::string ns, int64_t recordedAt,
                          int64_t maxStaleness = -1, std::string output = "{\"outputs\":1}") {
  NewEntry entry;
  entry.key = std::move(key);
  entry.namespaceName = std::move(ns);
  entry.podName = "pod-" + std::to_string(recordedAt);
  entry.executionTemplate = "{\"container\":{\"image\":\"python:3.11\"}}";
  entry.executionOutput = std::move(output);
  entry.maxCacheStaleness = maxStaleness;
  entry.runDurationSeconds = 42;
  entry.recordedAtInSec = recordedAt;
  return entry;
}

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override { dsn_ = test_support::PostgresServer::shared().createFreshDatabase(); }

  StoreOptions options() const {
    StoreOptions options;
    options.dsn = dsn_;
    options.hitFlushInterval = std::chrono::milliseconds(50);
    return options;
  }

  CacheStore& store() {
    if (!store_) store_ = std::make_unique<CacheStore>(options());
    return *store_;
  }

  pqxx::result sql(const std::string& statement) {
    pqxx::connection connection(dsn_);
    pqxx::work txn(connection);
    pqxx::result result = txn.exec(statement);
    txn.commit();
    return result;
  }

  int64_t scalar(const std::string& statement) { return sql(statement)[0][0].as<int64_t>(); }

  // `servers` stores opened on this database without migrating, then migrated all at once, as
  // replicas starting together do. Returns the first store and how many migrations were applied
  // in all; every migrate() must succeed.
  struct ConcurrentMigration {
    std::vector<std::unique_ptr<CacheStore>> stores;
    int applied = 0;
  };
  ConcurrentMigration migrateConcurrently(int servers) {
    ConcurrentMigration result;
    for (int i = 0; i < servers; ++i) {
      StoreOptions opts = options();
      opts.migrateOnOpen = false;
      result.stores.push_back(std::make_unique<CacheStore>(opts));
    }
    std::atomic<int> ready{0};
    std::atomic<int> applied{0};
    std::vector<std::string> errors(static_cast<std::size_t>(servers));
    std::vector<std::thread> threads;
    for (int i = 0; i < servers; ++i) {
      threads.emplace_back([&, i] {
        ready.fetch_add(1);
        while (ready.load() < servers) std::this_thread::yield();
        try {
          applied.fetch_add(result.stores[static_cast<std::size_t>(i)]->migrate());
        } catch (const std::exception& error) {
          errors[static_cast<std::size_t>(i)] = error.what();
        }
      });
    }
    for (auto& thread : threads) thread.join();
    for (const auto& error : errors) EXPECT_EQ(error, "");
    result.applied = applied.load();
    return result;
  }

  std::string dsn_;
  std::unique_ptr<CacheStore> store_;
};

}  // namespace kcache::store::testing
