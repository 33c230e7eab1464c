// Fuzzes the two parsers that read pipeline-author input on the admission path: the execution
// key (ARGO_TEMPLATE) and the staleness duration. Besides crashes and sanitizer findings it
// checks properties that must hold for every input.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/execution_key.h"
#include "core/staleness.h"

namespace {

[[noreturn]] void violated(const char* property) {
  std::fprintf(stderr, "property violated: %s\n", property);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  const auto canonical = kcache::core::canonicalTemplate(input);
  const auto key = kcache::core::computeExecutionKey(input);
  if (canonical.has_value() != key.has_value()) violated("key and canonical form disagree");
  if (canonical) {
    // The canonical form is valid UTF-8 JSON, and canonicalizing it again changes nothing.
    if (!nlohmann::json::accept(*canonical)) violated("canonical form is not valid JSON");
    const auto again = kcache::core::canonicalTemplate(*canonical);
    if (!again || *again != *canonical) violated("canonical form is not a fixed point");
    if (key->hex().size() != 64) violated("key is not 64 hex characters");
  } else if (canonical.error().message.empty()) {
    violated("error without a message");
  }

  const auto seconds = kcache::core::parseStalenessSeconds(input);
  if (seconds && (*seconds > kcache::core::kMaxDurationSeconds ||
                  *seconds < -kcache::core::kMaxDurationSeconds)) {
    violated("duration outside the saturation bounds");
  }
  return 0;
}
