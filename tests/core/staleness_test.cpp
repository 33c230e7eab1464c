#include <gtest/gtest.h>

#include "core/staleness.h"
#include "vector_file.h"

namespace kcache::core {
namespace {

TEST(StalenessVectors, EveryLineMatches) {
  const auto records = kcache::testing::readJsonLines("staleness.jsonl");
  for (const auto& record : records) {
    const std::string input = record.at("input");
    const int64_t expected = record.at("seconds");
    const auto parsed = parseStalenessSeconds(input);
    if (expected == -1) {
      EXPECT_FALSE(parsed.has_value()) << "\"" << input << "\" parsed as " << parsed.value_or(0);
    } else {
      ASSERT_TRUE(parsed.has_value()) << "\"" << input << "\" rejected";
      EXPECT_EQ(*parsed, expected) << "\"" << input << "\"";
    }
  }
  EXPECT_EQ(records.size(), 68u);
}

TEST(Staleness, NegativeDurationsAreValidValues) {
  EXPECT_EQ(parseStalenessSeconds("-PT1S"), -1);
  EXPECT_EQ(parseStalenessSeconds("-P300Y"), -kMaxDurationSeconds);
  EXPECT_EQ(parseStalenessSeconds("PT5.S"), 5);
}

TEST(Staleness, MalformedStringsAreInvalid) {
  for (const char* bad : {"", "T", "PT", "P1DT", "PTT1S", "P1DT1ST", "PT1S1M", "P1W1Y", "PT1.2.3S",
                          "P1DTT1H", "P1H", "PT1D", "--P1D", "P1D-", "P 1D", "PT-1S", "P1e3D"}) {
    EXPECT_FALSE(parseStalenessSeconds(bad).has_value()) << bad;
  }
  EXPECT_FALSE(parseStalenessSeconds(std::string_view("P1D\0", 4)).has_value());
  EXPECT_EQ(parseStalenessSeconds(std::string(400, '9').insert(0, "P") + "D"), kMaxDurationSeconds);
}

// docs/admission.md, "Staleness", as pod staleness + entry freshness.
struct Scenario {
  std::optional<std::string_view> annotation, defaultValue, maximum;
  int64_t entryStaleness;
  int64_t ageSeconds;
  bool hit;
};

constexpr int64_t kDay = 86400;

TEST(StalenessPolicy, KubeflowScenarioTable) {
  const std::optional<std::string_view> none;
  const Scenario scenarios[] = {
      {none, none, none, -1, 400 * kDay, true},
      {"P30D", none, none, -1, 10 * kDay, true},
      {"P30D", none, none, -1, 31 * kDay, false},
      {none, "P7D", none, -1, 8 * kDay, false},
      {"P30D", "P7D", none, -1, 8 * kDay, true},
      {"P30D", none, "P7D", -1, 6 * kDay, true},
      {"P30D", none, "P7D", -1, 8 * kDay, false},
      {none, none, "P7D", -1, 8 * kDay, false},
      {"P0D", "P7D", "P30D", -1, 0, false},
      {none, "P0D", none, -1, 0, false},
      {"30d", "P7D", none, -1, 3 * kDay, true},
      {"-P1D", none, none, -1, 400 * kDay, true},
      {none, none, none, 0, 1, false},
      {"P1D", none, none, kDay, 2 * kDay, false},
      {"P300Y", none, none, -1, 400 * kDay, true},  // kcache saturates; Kubeflow disabled reuse
  };
  for (const auto& s : scenarios) {
    const StalenessPolicy policy(s.defaultValue, s.maximum);
    const PodStaleness pod = policy.forPod(s.annotation);
    EXPECT_EQ(StalenessPolicy::isFresh(s.ageSeconds, pod.seconds, s.entryStaleness), s.hit)
        << "annotation=" << s.annotation.value_or("-")
        << " default=" << s.defaultValue.value_or("-") << " max=" << s.maximum.value_or("-")
        << " age=" << s.ageSeconds;
  }
}

TEST(StalenessPolicy, SourcesAndCaps) {
  const StalenessPolicy policy("P7D", "P30D");
  EXPECT_EQ(policy.forPod("P1D").source, StalenessSource::kAnnotation);
  EXPECT_EQ(policy.forPod("P1D").seconds, kDay);
  EXPECT_EQ(policy.forPod(std::nullopt).source, StalenessSource::kDefault);
  EXPECT_EQ(policy.forPod("garbage").seconds, 7 * kDay);
  EXPECT_EQ(policy.forPod("P90D").source, StalenessSource::kMaximum);
  EXPECT_EQ(policy.forPod("P90D").seconds, 30 * kDay);
  EXPECT_EQ(policy.forPod("P0D").seconds, 0);

  const StalenessPolicy maxOnly(std::nullopt, "P30D");
  EXPECT_EQ(maxOnly.forPod(std::nullopt).seconds, 30 * kDay);
  EXPECT_EQ(maxOnly.forPod(std::nullopt).source, StalenessSource::kMaximum);

  const StalenessPolicy empty("", "");  // the default manifests set both to ""
  EXPECT_EQ(empty.forPod(std::nullopt).seconds, kUnlimitedStaleness);
  EXPECT_EQ(empty.forPod(std::nullopt).source, StalenessSource::kNone);
  EXPECT_FALSE(empty.defaultSeconds().has_value());
}

TEST(StalenessPolicy, RecordingIgnoresTheDefaultAndCapsByTheMaximum) {
  const StalenessPolicy policy("P0D", "P30D");
  EXPECT_EQ(policy.forRecording(std::nullopt), kUnlimitedStaleness);
  EXPECT_EQ(policy.forRecording("P1D"), kDay);
  EXPECT_EQ(policy.forRecording("P90D"), 30 * kDay);
  EXPECT_EQ(policy.forRecording("-P1D"), kUnlimitedStaleness);
  EXPECT_EQ(policy.forRecording("nonsense"), kUnlimitedStaleness);
}

TEST(StalenessPolicy, FreshnessBoundaryIsInclusive) {
  EXPECT_TRUE(StalenessPolicy::isFresh(100, 100, -1));
  EXPECT_FALSE(StalenessPolicy::isFresh(101, 100, -1));
  EXPECT_TRUE(StalenessPolicy::isFresh(100, -1, 100));
  EXPECT_FALSE(StalenessPolicy::isFresh(101, -1, 100));
  EXPECT_FALSE(StalenessPolicy::isFresh(0, 0, -1));
}

}  // namespace
}  // namespace kcache::core
