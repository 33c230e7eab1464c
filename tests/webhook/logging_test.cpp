// core/logging: the JSON format writes one valid JSON object per line whatever the message holds,
// the text format one line per event, and the level filters.
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "core/logging.h"
#include "tests/webhook/webhook_test_support.h"

namespace kcache::core {
namespace {

// Runs `body` with stderr redirected into a file and returns what was written.
template <typename Body>
std::string captureStderr(Body body) {
  webhook::testing::TempDir dir;
  const auto path = dir.path() / "stderr.log";
  std::fflush(stderr);
  const int saved = ::dup(STDERR_FILENO);
  FILE* file = std::fopen(path.c_str(), "w");
  ::dup2(::fileno(file), STDERR_FILENO);
  body();
  spdlog::default_logger()->flush();
  std::fflush(stderr);
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  std::fclose(file);
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream stream(text);
  for (std::string line; std::getline(stream, line);) out.push_back(line);
  return out;
}

TEST(LoggingTest, JsonLinesStayValidJson) {
  const auto output = captureStderr([] {
    configureLogging(LogFormat::kJson, "info");
    spdlog::debug("filtered out");
    spdlog::info("admission hit pod={} note=\"{}\"", "team-a/p", "line\nbreak\ttab\x01");
    spdlog::warn("second");
  });
  const auto logged = lines(output);
  ASSERT_EQ(logged.size(), 2u) << output;
  const auto first = nlohmann::json::parse(logged[0]);
  EXPECT_EQ(first["level"], "info");
  EXPECT_EQ(first["msg"], "admission hit pod=team-a/p note=\"line\nbreak\ttab\x01\"");
  EXPECT_EQ(first["ts"].get<std::string>().size(), 24u);  // 2026-01-02T03:04:05.678Z
  EXPECT_EQ(nlohmann::json::parse(logged[1])["level"], "warning");
}

TEST(LoggingTest, TextLinesAndLevels) {
  const auto output = captureStderr([] {
    configureLogging(LogFormat::kText, "warn");
    spdlog::info("filtered out");
    spdlog::error("store lookup failed");
  });
  const auto logged = lines(output);
  ASSERT_EQ(logged.size(), 1u) << output;
  EXPECT_NE(logged[0].find(" error store lookup failed"), std::string::npos) << logged[0];
}

TEST(LoggingTest, RejectsUnknownNames) {
  EXPECT_THROW(configureLogging(LogFormat::kText, "verbose"), std::invalid_argument);
  EXPECT_THROW(parseLogFormat("xml"), std::invalid_argument);
  EXPECT_EQ(parseLogFormat("JSON"), LogFormat::kJson);
}

}  // namespace
}  // namespace kcache::core
