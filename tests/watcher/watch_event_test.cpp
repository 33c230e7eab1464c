#include <gtest/gtest.h>

#include "watcher/watch_event.h"

namespace kcache::watcher {
namespace {

TEST(WatchEvent, ParsesPodEventsWithTheirVersion) {
  const auto event = parseWatchEvent(
      R"({"type":"MODIFIED","object":{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p","namespace":"n","resourceVersion":"42"}}})");
  ASSERT_TRUE(event);
  EXPECT_EQ(event->type, WatchEventType::kModified);
  EXPECT_EQ(event->resourceVersion, "42");
  EXPECT_EQ(event->object["metadata"]["name"], "p");
}

TEST(WatchEvent, ParsesBookmarksAndErrors) {
  const auto bookmark = parseWatchEvent(
      R"({"type":"BOOKMARK","object":{"kind":"Pod","metadata":{"resourceVersion":"99"}}})");
  ASSERT_TRUE(bookmark);
  EXPECT_EQ(bookmark->type, WatchEventType::kBookmark);
  EXPECT_EQ(bookmark->resourceVersion, "99");

  const auto error = parseWatchEvent(
      R"({"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired"}})");
  ASSERT_TRUE(error);
  EXPECT_EQ(error->type, WatchEventType::kError);
  EXPECT_EQ(statusCode(error->object), 410);
  EXPECT_EQ(statusCode(nlohmann::json::object()), 0);
}

TEST(WatchEvent, RejectsMalformedLinesWithAReason) {
  const char* bad[] = {
      "not json",
      "[1,2]",
      R"({"object":{}})",
      R"({"type":"SURPRISE","object":{"kind":"Pod","metadata":{"name":"p"}}})",
      R"({"type":"ADDED"})",
      R"({"type":"ADDED","object":"pod"})",
      R"({"type":"ADDED","object":{"kind":"ConfigMap","metadata":{"name":"c"}}})",
      R"({"type":"ADDED","object":{"kind":"Pod"}})",
      R"({"type":"ADDED","object":{"kind":"Pod","metadata":{"namespace":"n"}}})",
      R"({"type":"BOOKMARK","object":{"kind":"Pod","metadata":{}}})",
      R"({"type":"ADDED","object":{"kind":7,"metadata":{"name":"p"}}})",
  };
  for (const char* line : bad) {
    const auto event = parseWatchEvent(line);
    EXPECT_FALSE(event) << line;
    if (!event) {
      EXPECT_FALSE(event.error().empty());
    }
  }
}

}  // namespace
}  // namespace kcache::watcher
