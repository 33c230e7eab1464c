// Cases the shared vectors do not cover: depth limits, stack safety, numbers, ExecutionKey.
#include <gtest/gtest.h>

#include "core/execution_key.h"
#include "core/go_json.h"

namespace kcache::core {
namespace {

std::string canonicalOrError(std::string_view argoTemplate) {
  const auto canonical = canonicalTemplate(argoTemplate);
  return canonical ? *canonical : "error:" + std::string(toString(canonical.error().kind));
}

std::string nested(size_t depth, std::string_view inner) {
  return std::string(depth, '[') + std::string(inner) + std::string(depth, ']');
}

TEST(ExecutionKey, EmptyObjectHashesAsKubeflowDocuments) {
  const auto key = computeExecutionKey("{}");
  ASSERT_TRUE(key.has_value());
  EXPECT_EQ(key->hex(), "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
  EXPECT_EQ(key->shortForm(), "44136fa355b3…");
}

TEST(ExecutionKey, TopLevelNullIsAnEmptyMap) {
  EXPECT_EQ(canonicalOrError(" null "), "{}");
}

TEST(ExecutionKey, DepthTenThousandIsAcceptedAndOneMoreIsNot) {
  // The object counts as one level: 9999 arrays inside it reach Go's limit exactly.
  EXPECT_EQ(canonicalOrError("{\"inputs\":" + nested(9999, "1") + "}"),
            "{\"inputs\":" + nested(9999, "1") + "}");
  EXPECT_EQ(canonicalOrError("{\"inputs\":" + nested(10000, "1") + "}"), "error:json_syntax");
  // Also where the field is dropped: Go validates the whole document.
  EXPECT_EQ(canonicalOrError("{\"name\":" + nested(10000, "") + "}"), "error:json_syntax");
}

TEST(ExecutionKey, DeepDocumentsDoNotExhaustTheStack) {
  // Far beyond the limit: must fail cleanly, not recurse.
  EXPECT_EQ(canonicalOrError(std::string(1'000'000, '[')), "error:json_syntax");
  std::string deepObjects;
  for (int i = 0; i < 9000; ++i) deepObjects += "{\"a\":";
  deepObjects += "1" + std::string(9000, '}');
  const std::string wrapped = "{\"outputs\":" + deepObjects + "}";
  EXPECT_EQ(canonicalOrError(wrapped), wrapped);
}

TEST(ExecutionKey, SyntaxErrorsAnywhereWinOverTypeErrors) {
  EXPECT_EQ(canonicalOrError("{\"name\":1e999}"), "error:json_type");
  EXPECT_EQ(canonicalOrError("{\"name\":1e999,}"), "error:json_syntax");
  EXPECT_EQ(canonicalOrError("[1e999"), "error:json_syntax");
  EXPECT_EQ(canonicalOrError("[1]"), "error:json_type");
  EXPECT_EQ(canonicalOrError("\"x\""), "error:json_type");
  EXPECT_EQ(canonicalOrError("true"), "error:json_type");
  EXPECT_EQ(canonicalOrError("12"), "error:json_type");
}

TEST(ExecutionKey, MalformedInputsAreErrors) {
  for (const char* bad : {"",
                          " ",
                          "{",
                          "}",
                          "{\"a\"}",
                          "{\"a\":}",
                          "{\"a\":1,}",
                          "{,}",
                          "[1,]",
                          "{\"a\":01}",
                          "{\"a\":-}",
                          "{\"a\":1.}",
                          "{\"a\":.5}",
                          "{\"a\":+1}",
                          "{\"a\":1e}",
                          "{\"a\":tru}",
                          "{\"a\":nul}",
                          "{\"a\":\"\\x\"}",
                          "{\"a\":\"\\u12\"}",
                          "{\"a\":\"\t\"}",
                          "{'a':1}",
                          "{\"a\":1}x",
                          "{\"a\":NaN}",
                          "{\"a\":Infinity}",
                          "\xEF\xBB\xBF{}",
                          "{\"a\":1}//"}) {
    EXPECT_EQ(canonicalOrError(bad), "error:json_syntax") << bad;
  }
}

TEST(ExecutionKey, ContainerThatIsNotAnObjectIsRefused) {
  for (const char* shape : {"null", "1", "\"x\"", "[]", "true"}) {
    const auto key = computeExecutionKey(std::string("{\"container\":") + shape + "}");
    ASSERT_FALSE(key.has_value()) << shape;
    EXPECT_EQ(key.error().kind, KeyErrorKind::kTemplateShape);
  }
  // A later object replaces an earlier non-object.
  EXPECT_EQ(canonicalOrError("{\"container\":1,\"container\":{\"image\":\"a\"}}"),
            "{\"container\":{\"image\":\"a\"}}");
}

TEST(ExecutionKey, NumbersFollowGoFormatting) {
  EXPECT_EQ(
      canonicalOrError("{\"inputs\":[1e21,1e20,1e-6,1e-7,123e-9,-2.5e-8,1.5e300,5e-324]}"),
      "{\"inputs\":[1e+21,100000000000000000000,0.000001,1e-7,1.23e-7,-2.5e-8,1.5e+300,5e-324]}");
  EXPECT_EQ(canonicalOrError("{\"inputs\":[1E2,1e+2,0.5,-0.0,100e-2]}"),
            "{\"inputs\":[100,100,0.5,-0,1]}");
  EXPECT_EQ(canonicalOrError("{\"inputs\":[1e99999999999999999999999]}"), "error:json_type");
  EXPECT_EQ(canonicalOrError("{\"inputs\":[1e-99999999999999999999999]}"), "{\"inputs\":[0]}");
}

TEST(ExecutionKey, DroppedFieldsAreStillValidated) {
  EXPECT_EQ(canonicalOrError("{\"name\":\"\\q\",\"inputs\":{}}"), "error:json_syntax");
  EXPECT_EQ(canonicalOrError("{\"container\":{\"workingDir\":[1e400]}}"), "error:json_type");
  EXPECT_EQ(canonicalOrError("{\"metadata\":{\"a\":\"\xff\"},\"inputs\":1}"), "{\"inputs\":1}");
}

TEST(ExecutionKey, KeysAreMatchedAfterDecoding) {
  EXPECT_EQ(canonicalOrError("{\"inputs\":1,\"\\u0069nputs\":2}"), "{\"inputs\":2}");
  EXPECT_EQ(canonicalOrError("{\"Inputs\":1}"), "{}");
}

TEST(ExecutionKey, FromHexAcceptsOnlyTheAnnotationForm) {
  EXPECT_TRUE(ExecutionKey::fromHex(std::string(64, 'a')).has_value());
  EXPECT_FALSE(ExecutionKey::fromHex(std::string(64, 'A')).has_value());
  EXPECT_FALSE(ExecutionKey::fromHex(std::string(63, 'a')).has_value());
  EXPECT_FALSE(ExecutionKey::fromHex("").has_value());
}

TEST(GoJson, QuotingEscapesLikeGo) {
  std::string out;
  gojson::appendQuoted(
      out, std::string("a\"\\\b\f\n\r\t\x01\x7f<>&/\xe2\x80\xa8\xe2\x80\xa9\xc3\xa9", 22));
  EXPECT_EQ(out,
            "\"a\\\"\\\\\\b\\f\\n\\r\\t\\u0001\x7f\\u003c\\u003e\\u0026/\\u2028\\u2029\xc3\xa9\"");
  out.clear();
  gojson::appendQuoted(out, "\xff");
  EXPECT_EQ(out, "\"\\ufffd\"");
}

}  // namespace
}  // namespace kcache::core

namespace kcache::core {
namespace {

// Stand-ins for the relations whose cases are not in the shared subset.
TEST(ExecutionKey, EquivalentSpellingsGiveTheSameKey) {
  auto keyOf = [](std::string_view t) { return computeExecutionKey(t)->hex(); };
  EXPECT_EQ(keyOf(R"({"container":{"image":"gcr.io\/proj\/img:1"}})"),
            keyOf(R"({"container":{"image":"gcr.io/proj/img:1"}})"));
  EXPECT_EQ(keyOf("{\"container\":{\"args\":[\"a\xe2\x80\xa8"
                  "b\"]}}"),
            keyOf(R"({"container":{"args":["a\u2028b"]}})"));
  EXPECT_EQ(keyOf("{\"container\":{\"args\":[\"a\xff"
                  "b\"]}}"),
            keyOf("{\"container\":{\"args\":[\"a\xef\xbf\xbd"
                  "b\"]}}"));
  EXPECT_EQ(keyOf(R"({"inputs":[1.0,10e-1,0.1e1,100E-2]})"), keyOf(R"({"inputs":[1,1,1,1]})"));
}

}  // namespace
}  // namespace kcache::core
