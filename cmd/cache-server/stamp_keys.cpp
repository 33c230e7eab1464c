#include "cmd/cache-server/stamp_keys.h"

#include <fstream>
#include <sstream>
#include <stdexcept>

namespace kcache::cache_server {

core::Expected<std::string, std::string> readStampSecretFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return core::Unexpected("cannot read the admission stamp secret file " + path);
  std::ostringstream content;
  content << file.rdbuf();
  std::string secret = std::move(content).str();
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
  if (secret.size() < core::kMinStampSecretBytes) {
    return core::Unexpected("the admission stamp secret file " + path + " holds " +
                            std::to_string(secret.size()) + " bytes; at least " +
                            std::to_string(core::kMinStampSecretBytes) + " are required");
  }
  return secret;
}

std::optional<core::StampKeyRing> stampKeysFromFiles(const std::string& currentFile,
                                                     const std::string& previousFile) {
  if (currentFile.empty()) return std::nullopt;  // validate() refuses a lone previous file
  auto current = readStampSecretFile(currentFile);
  if (!current) throw std::invalid_argument(current.error());
  std::string previous;
  if (!previousFile.empty()) {
    auto read = readStampSecretFile(previousFile);
    if (!read) throw std::invalid_argument(read.error());
    previous = std::move(read).value();
  }
  auto keys = core::StampKeyRing::fromSecrets(std::move(current).value(), std::move(previous));
  if (!keys) throw std::invalid_argument(keys.error());
  return std::move(keys).value();
}

core::StampKeyRing stampKeysFromDatabase(store::CacheStore& cacheStore) {
  // Hex text: 64 characters carrying the 256 random bits, stored as plain text.
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string candidate;
  for (const unsigned char byte : core::randomStampSecret()) {
    candidate.push_back(kDigits[byte >> 4]);
    candidate.push_back(kDigits[byte & 0x0f]);
  }
  auto keys = core::StampKeyRing::fromSecrets(cacheStore.sharedAdmissionSecret(candidate));
  if (!keys)
    throw store::StoreError("the admission secret in the database is unusable: " + keys.error());
  return std::move(keys).value();
}

}  // namespace kcache::cache_server
