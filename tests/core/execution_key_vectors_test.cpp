// Every line of tests/data/keys.jsonl: the key (and the exact bytes hashed) must match what
// Kubeflow's Go code produced, and every error case must come back as an error value.
#include <gtest/gtest.h>

#include <map>

#include "core/execution_key.h"
#include "vector_file.h"

namespace kcache::core {
namespace {

struct KeyVector {
  nlohmann::json record;
  std::string name;
};

std::vector<KeyVector> loadKeyVectors() {
  std::vector<KeyVector> vectors;
  for (auto& record : kcache::testing::readJsonLines("keys.jsonl")) {
    std::string name = record.at("name").get<std::string>();
    vectors.push_back({std::move(record), std::move(name)});
  }
  return vectors;
}

const std::vector<KeyVector>& keyVectors() {
  static const std::vector<KeyVector> vectors = loadKeyVectors();
  return vectors;
}

std::string templateBytes(const nlohmann::json& record) {
  if (record.at("template").is_null()) return kcache::testing::fromHex(record.at("template_hex"));
  return record.at("template").get<std::string>();
}

class KeyVectorTest : public ::testing::TestWithParam<KeyVector> {};

TEST_P(KeyVectorTest, MatchesKubeflow) {
  const auto& record = GetParam().record;
  const std::string argoTemplate = templateBytes(record);
  const auto key = computeExecutionKey(argoTemplate);
  if (record.value("error", false)) {
    ASSERT_FALSE(key.has_value()) << "expected an error (" << record.at("error_kind") << ": "
                                  << record.at("reason") << "), got key " << key->hex();
    const std::string expectedKind = record.at("error_kind");
    const KeyErrorKind kind = key.error().kind;
    if (expectedKind == "panic") {
      EXPECT_EQ(kind, KeyErrorKind::kTemplateShape) << key.error().message;
    } else {
      EXPECT_EQ(toString(kind), expectedKind) << key.error().message;
    }
    EXPECT_FALSE(key.error().message.empty());
    return;
  }
  ASSERT_TRUE(key.has_value()) << toString(key.error().kind) << ": " << key.error().message;
  const auto canonical = canonicalTemplate(argoTemplate);
  ASSERT_TRUE(canonical.has_value());
  EXPECT_EQ(*canonical, record.at("canonical").get<std::string>());
  EXPECT_EQ(key->hex(), record.at("key").get<std::string>());
}

INSTANTIATE_TEST_SUITE_P(Vectors, KeyVectorTest, ::testing::ValuesIn(keyVectors()),
                         [](const auto& info) { return info.param.name; });

TEST(KeyVectorRelations, SameAndDifferentKeysHold) {
  std::map<std::string, std::string> keyByName;
  for (const auto& vector : keyVectors()) {
    if (vector.record.value("error", false)) continue;
    const auto key = computeExecutionKey(templateBytes(vector.record));
    ASSERT_TRUE(key.has_value()) << vector.name;
    keyByName[vector.name] = key->hex();
  }
  // The shared file is a subset of the generator's cases; relations may name cases left out.
  size_t relationsChecked = 0;
  size_t relationsToAbsentCases = 0;
  for (const auto& vector : keyVectors()) {
    const auto& record = vector.record;
    auto names = [](const nlohmann::json& field) {
      std::vector<std::string> out;
      if (field.is_string()) out.push_back(field.get<std::string>());
      if (field.is_array()) {
        for (const auto& name : field) out.push_back(name.get<std::string>());
      }
      return out;
    };
    if (record.contains("expect_same_key_as")) {
      for (const auto& other : names(record["expect_same_key_as"])) {
        if (!keyByName.count(other)) {
          ++relationsToAbsentCases;
          continue;
        }
        EXPECT_EQ(keyByName[vector.name], keyByName[other]) << vector.name << " vs " << other;
        ++relationsChecked;
      }
    }
    if (record.contains("expect_different_key_from")) {
      for (const auto& other : names(record["expect_different_key_from"])) {
        if (!keyByName.count(other)) {
          ++relationsToAbsentCases;
          continue;
        }
        EXPECT_NE(keyByName[vector.name], keyByName[other]) << vector.name << " vs " << other;
        ++relationsChecked;
      }
    }
  }
  EXPECT_EQ(relationsChecked, 17u);
  EXPECT_LE(relationsToAbsentCases, 4u) << "more relations than expected point outside the file";
}

}  // namespace
}  // namespace kcache::core
