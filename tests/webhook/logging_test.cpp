// core/logging: the JSON format writes one valid JSON object per line whatever the message holds,
// the text format one line per event, and the level filters.
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <sstream>

#include "core/logging.h"
#include "tests/webhook/webhook_test_support.h"

namespace kcache::core {
namespace {

using webhook::testing::captureStderr;
constexpr auto lines = webhook::testing::splitLines;

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

TEST(LoggingTest, LogValueEscapesAndCutsWhatAClientChose) {
  EXPECT_EQ(logValue("team-a/pod-1"), "team-a/pod-1");
  EXPECT_EQ(logValue("a\nb\r\tc"), "a\\nb\\r\\tc");
  EXPECT_EQ(logValue("say \"hi\" \\"), "say \\\"hi\\\" \\\\");
  EXPECT_EQ(logValue("\x1b[31mred"), "\\x1b[31mred");
  EXPECT_EQ(logValue("\x7f\x01"), "\\x7f\\x01");
  EXPECT_EQ(logValue("csi\xc2\x9b bidi\xe2\x80\xae"), "csi\\u009b bidi\\u202e");
  EXPECT_EQ(logValue("caf\xc3\xa9 \xff"), "caf\xc3\xa9 \\xff");  // UTF-8 kept, junk shown
  const auto cut = logValue(std::string(300, 'x') + "\n", 256);
  EXPECT_EQ(cut, std::string(256, 'x') + "…(+45 bytes)");
  // Never inside a character.
  EXPECT_EQ(logValue("ab\xc3\xa9", 3), "ab…(+2 bytes)");
}

TEST(LoggingTest, TextLinesEscapeControlsAndLongMessagesAreCut) {
  const auto output = captureStderr([] {
    configureLogging(LogFormat::kText, "info");
    spdlog::info("pod={} end", "a\nforged line\x1b[2J\xc2\x9b");
    spdlog::info("{}", std::string(kMaxLogMessageBytes + 100, 'z'));
  });
  const auto logged = lines(output);
  ASSERT_EQ(logged.size(), 2u) << output;
  EXPECT_NE(logged[0].find("pod=a\\nforged line\\x1b[2J\\u009b end"), std::string::npos)
      << logged[0];
  EXPECT_NE(logged[1].find(std::string(kMaxLogMessageBytes, 'z') + "…(+100 bytes)"),
            std::string::npos);
  EXPECT_EQ(logged[1].find(std::string(kMaxLogMessageBytes + 1, 'z')), std::string::npos);
}

TEST(LoggingTest, RateLimiterLetsABurstThroughPerWindowAndCountsTheRest) {
  auto now = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
  LogRateLimiter limiter(2, std::chrono::seconds(10), [&now] { return now; });
  EXPECT_EQ(limiter.admit(), std::optional<std::uint64_t>(0));
  EXPECT_EQ(limiter.admit(), std::optional<std::uint64_t>(0));
  EXPECT_EQ(limiter.admit(), std::nullopt);
  EXPECT_EQ(limiter.admit(), std::nullopt);
  now += std::chrono::seconds(5);
  EXPECT_EQ(limiter.admit(), std::nullopt);
  now += std::chrono::seconds(6);
  EXPECT_EQ(limiter.admit(), std::optional<std::uint64_t>(3));
  EXPECT_EQ(LogRateLimiter::suppressedNote(3), " (3 similar messages suppressed)");
  EXPECT_EQ(LogRateLimiter::suppressedNote(0), "");
}

}  // namespace
}  // namespace kcache::core
