#pragma once
// Reads the JSON-lines vector files under tests/data (keys.jsonl, namespaced-keys.jsonl,
// staleness.jsonl: the reference keys and durations kcache must reproduce).
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kcache::testing {

inline std::vector<nlohmann::json> readJsonLines(const std::string& name) {
  const std::string path = std::string(KCACHE_TEST_DATA_DIR) + "/" + name;
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open test vectors " + path);
  std::vector<nlohmann::json> records;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    records.push_back(nlohmann::json::parse(line));
  }
  if (records.empty()) throw std::runtime_error("no records in " + path);
  return records;
}

inline std::string fromHex(const std::string& hex) {
  std::string bytes;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    bytes.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return bytes;
}

}  // namespace kcache::testing
