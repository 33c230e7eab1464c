#include "cmd/cachectl/input_files.h"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

namespace kcache::cachectl {
namespace {

using nlohmann::json;

// YAML 1.2 core schema for plain scalars; quoted ones are always strings.
json scalarToJson(const YAML::Node& node) {
  const std::string& text = node.Scalar();
  if (node.Tag() == "!") return text;
  if (text == "null" || text == "~" || text.empty()) return nullptr;
  if (text == "true" || text == "True" || text == "TRUE") return true;
  if (text == "false" || text == "False" || text == "FALSE") return false;
  const json number = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (number.is_number()) return number;
  return text;
}

json yamlToJson(const YAML::Node& node, int depth) {
  if (depth > 512) throw UsageError("YAML nested deeper than 512 levels");
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nullptr;
    case YAML::NodeType::Scalar:
      return scalarToJson(node);
    case YAML::NodeType::Sequence: {
      json array = json::array();
      for (const auto& item : node) array.push_back(yamlToJson(item, depth + 1));
      return array;
    }
    case YAML::NodeType::Map: {
      json object = json::object();
      for (const auto& item : node)
        object[item.first.as<std::string>()] = yamlToJson(item.second, depth + 1);
      return object;
    }
  }
  return nullptr;
}

}  // namespace

std::string readInput(const std::string& path) {
  if (path == "-") {
    std::ostringstream buffer;
    buffer << std::cin.rdbuf();
    return buffer.str();
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError("cannot read " + path + ": " + std::strerror(errno));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

json readDocument(const std::string& path) {
  const std::string text = readInput(path);
  json document = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded()) {
    try {
      document = yamlToJson(YAML::Load(text), 0);
    } catch (const YAML::Exception& error) {
      throw UsageError(path + " is neither JSON nor YAML: " + error.what());
    }
  }
  return document;
}

json readPod(const std::string& path) {
  json document = readDocument(path);
  if (!document.is_object()) throw UsageError(path + " does not hold a pod object");
  if (document.value("kind", "") == "AdmissionReview") {
    const auto request = document.find("request");
    if (request == document.end() || !request->is_object() || !request->contains("object")) {
      throw UsageError(path + " is an AdmissionReview without request.object");
    }
    document = (*request)["object"];
  }
  if (!document.is_object() || !document.contains("spec")) {
    throw UsageError(path + " does not look like a pod: no spec");
  }
  return document;
}

}  // namespace kcache::cachectl
