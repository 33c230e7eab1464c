// Every line of tests/data/keys.jsonl: the key (and the exact bytes hashed) must match what
// Kubeflow's Go code produced, and every error case must come back as an error value.
#include <gtest/gtest.h>

#include <cctype>
#include <map>
#include <set>

#include "core/execution_key.h"
#include "vector_file.h"

namespace kcache::core {
namespace {

struct KeyVector {
  nlohmann::json record;
  std::string name;
};

// gtest prints a parameter in each test's name; without this, a hex dump of its bytes.
void PrintTo(const KeyVector& vector, std::ostream* out) {
  *out << vector.name;
}

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
  // Bytes that are not valid UTF-8 come as hex: `template` is null (keys.jsonl) or absent.
  if (!record.contains("template") || record.at("template").is_null()) {
    return kcache::testing::fromHex(record.at("template_hex"));
  }
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

// Every line of tests/data/namespaced-keys.jsonl: Kubeflow 2.18's namespace-bound key of each
// keyed case of keys.jsonl in three namespaces, with the template-only key beside it.
struct NamespacedKeyVector {
  nlohmann::json record;
  std::string name;
};
void PrintTo(const NamespacedKeyVector& vector, std::ostream* out) {
  *out << vector.name;
}

std::vector<NamespacedKeyVector> loadNamespacedKeyVectors() {
  std::vector<NamespacedKeyVector> vectors;
  for (auto& record : kcache::testing::readJsonLines("namespaced-keys.jsonl")) {
    std::string name = record.at("name").get<std::string>();
    // GoogleTest names allow only letters, digits and underscores.
    for (char& c : name) {
      if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
    }
    vectors.push_back({std::move(record), std::move(name)});
  }
  return vectors;
}

const std::vector<NamespacedKeyVector>& namespacedKeyVectors() {
  static const std::vector<NamespacedKeyVector> vectors = loadNamespacedKeyVectors();
  return vectors;
}

class NamespacedKeyVectorTest : public ::testing::TestWithParam<NamespacedKeyVector> {};

TEST_P(NamespacedKeyVectorTest, MatchesKubeflow218) {
  const auto& record = GetParam().record;
  const std::string argoTemplate = templateBytes(record);
  const std::string namespaceName = record.at("namespace");
  const auto canonical = CanonicalTemplate::of(argoTemplate);
  ASSERT_TRUE(canonical.has_value()) << canonical.error().message;
  EXPECT_EQ(canonical->namespaceBoundBytes(namespaceName),
            record.at("canonical").get<std::string>());
  EXPECT_EQ(canonical->namespaceBoundKey(namespaceName).hex(), record.at("key").get<std::string>());
  EXPECT_EQ(canonical->templateOnlyKey().hex(), record.at("legacy_key").get<std::string>());
  // The one-call forms agree with the two keys of one canonicalisation.
  const auto bound = computeExecutionKey(argoTemplate, KeyBinding::kNamespaceBound, namespaceName);
  ASSERT_TRUE(bound.has_value());
  EXPECT_EQ(bound->hex(), record.at("key").get<std::string>());
  const auto templateOnly =
      computeExecutionKey(argoTemplate, KeyBinding::kTemplateOnly, namespaceName);
  ASSERT_TRUE(templateOnly.has_value());
  EXPECT_EQ(templateOnly->hex(), record.at("legacy_key").get<std::string>());
}

INSTANTIATE_TEST_SUITE_P(Vectors, NamespacedKeyVectorTest,
                         ::testing::ValuesIn(namespacedKeyVectors()),
                         [](const auto& info) { return info.param.name; });

TEST(NamespacedKeyVectorRelations, BoundKeysDifferByNamespaceAndFromTheLegacyKey) {
  std::map<std::string, std::map<std::string, std::string>> boundByLegacyAndNamespace;
  size_t lines = 0;
  for (const auto& vector : namespacedKeyVectors()) {
    const std::string key = vector.record.at("key");
    const std::string legacyKey = vector.record.at("legacy_key");
    EXPECT_NE(key, legacyKey) << vector.name;
    boundByLegacyAndNamespace[legacyKey][vector.record.at("namespace")] = key;
    ++lines;
  }
  EXPECT_EQ(lines, 234u);
  for (const auto& [legacyKey, byNamespace] : boundByLegacyAndNamespace) {
    EXPECT_EQ(byNamespace.size(), 3u) << legacyKey;
    std::set<std::string> distinct;
    for (const auto& entry : byNamespace) distinct.insert(entry.second);
    EXPECT_EQ(distinct.size(), byNamespace.size()) << "two namespaces share a key: " << legacyKey;
  }
  // Every keyed case of keys.jsonl appears, and no error case does.
  size_t keyedCases = 0;
  for (const auto& vector : keyVectors()) {
    if (vector.record.value("error", false)) continue;
    ++keyedCases;
    EXPECT_EQ(boundByLegacyAndNamespace.count(vector.record.at("key").get<std::string>()), 1u)
        << vector.name;
  }
  EXPECT_EQ(keyedCases * 3, lines);
}

TEST(NamespacedKey, NamespaceIsQuotedAsGoQuotesIt) {
  const auto canonical = CanonicalTemplate::of(R"({"container":{"image":"x"}})");
  ASSERT_TRUE(canonical.has_value());
  // Go's encoder escapes <, > and & as unicode escapes; a namespace never holds them, but the
  // bytes must still be Go's.
  EXPECT_EQ(
      canonical->namespaceBoundBytes("a<b&\"c"),
      std::string(R"({"namespace":"a\u003cb\u0026\"c","template":{"container":{"image":"x"}}})"));
  EXPECT_NE(canonical->namespaceBoundKey("").hex(), canonical->templateOnlyKey().hex());
}

}  // namespace
}  // namespace kcache::core
