#include "watcher/watch_event.h"

#include <optional>

namespace kcache::watcher {
namespace {

std::optional<WatchEventType> typeFromName(const std::string& name) {
  if (name == "ADDED") return WatchEventType::kAdded;
  if (name == "MODIFIED") return WatchEventType::kModified;
  if (name == "DELETED") return WatchEventType::kDeleted;
  if (name == "BOOKMARK") return WatchEventType::kBookmark;
  if (name == "ERROR") return WatchEventType::kError;
  return std::nullopt;
}

}  // namespace

std::string_view toString(WatchEventType type) {
  switch (type) {
    case WatchEventType::kAdded:
      return "ADDED";
    case WatchEventType::kModified:
      return "MODIFIED";
    case WatchEventType::kDeleted:
      return "DELETED";
    case WatchEventType::kBookmark:
      return "BOOKMARK";
    case WatchEventType::kError:
      return "ERROR";
  }
  return "UNKNOWN";
}

core::Expected<WatchEvent, std::string> parseWatchEvent(std::string_view line,
                                                        std::string_view expectedKind) {
  nlohmann::json parsed = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return core::Unexpected(std::string("not JSON"));
  if (!parsed.is_object()) return core::Unexpected(std::string("not a JSON object"));
  const auto typeIt = parsed.find("type");
  if (typeIt == parsed.end() || !typeIt->is_string()) {
    return core::Unexpected(std::string("no event type"));
  }
  const auto type = typeFromName(typeIt->get<std::string>());
  if (!type) return core::Unexpected("unknown event type " + typeIt->get<std::string>());
  auto objectIt = parsed.find("object");
  if (objectIt == parsed.end() || !objectIt->is_object()) {
    return core::Unexpected(std::string("event has no object"));
  }
  WatchEvent event{*type, std::move(*objectIt), ""};
  if (event.type == WatchEventType::kError) return event;

  const auto kind = event.object.find("kind");
  if (kind != event.object.end() && (!kind->is_string() || *kind != expectedKind)) {
    return core::Unexpected("object is not a " + std::string(expectedKind) + " (kind " +
                            kind->dump() + ")");
  }
  const auto metadata = event.object.find("metadata");
  if (metadata == event.object.end() || !metadata->is_object()) {
    return core::Unexpected(std::string("object has no metadata"));
  }
  const auto version = metadata->find("resourceVersion");
  if (version != metadata->end() && version->is_string()) event.resourceVersion = *version;
  if (event.type != WatchEventType::kBookmark) {
    const auto name = metadata->find("name");
    if (name == metadata->end() || !name->is_string()) {
      return core::Unexpected(std::string("object has no name"));
    }
  } else if (event.resourceVersion.empty()) {
    return core::Unexpected(std::string("bookmark without resourceVersion"));
  }
  return event;
}

int statusCode(const nlohmann::json& status) {
  const auto code = status.find("code");
  if (code == status.end() || !code->is_number_integer()) return 0;
  return code->get<int>();
}

}  // namespace kcache::watcher
