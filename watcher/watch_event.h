#pragma once
// One line of a watch stream, parsed. Pure: the informer decides what to do with it.
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/expected.h"

namespace kcache::watcher {

enum class WatchEventType { kAdded, kModified, kDeleted, kBookmark, kError };
std::string_view toString(WatchEventType type);

struct WatchEvent {
  WatchEventType type;
  nlohmann::json object;  // the object, a bookmark's partial object, or a Status for ERROR
  // metadata.resourceVersion of the object ("" for ERROR).
  std::string resourceVersion;
};

// Rejects (with a reason for the log) lines that are not JSON, event types this watcher does not
// know, and ADDED/MODIFIED/DELETED/BOOKMARK objects whose kind (when given) is not `expectedKind`.
core::Expected<WatchEvent, std::string> parseWatchEvent(std::string_view line,
                                                        std::string_view expectedKind = "Pod");

// For ERROR events: the Status code (410 for an expired resource version), 0 when absent.
int statusCode(const nlohmann::json& status);

}  // namespace kcache::watcher
