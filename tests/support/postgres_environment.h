#pragma once
// Starts the shared PostgreSQL server before the first test of a binary, so that a failure to
// start it is reported once, up front, as a failed environment (every test then fails).
#include <gtest/gtest.h>

#include "tests/support/postgres_server.h"

namespace kcache::test_support {

class PostgresEnvironment : public ::testing::Environment {
 public:
  void SetUp() override { PostgresServer::shared(); }
};

}  // namespace kcache::test_support
