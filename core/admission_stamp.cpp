#include "core/admission_stamp.h"

#include <array>
#include <stdexcept>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

namespace kcache::core {
namespace {

constexpr std::string_view kStampVersion = "v1:";
// Domain separation: the MAC input says what it is, so the secret can never be made to sign
// anything else by accident.
constexpr std::string_view kMacContext = "kcache admission stamp v1";
constexpr std::size_t kMacBytes = 32;

void appendUint64(std::string& out, uint64_t value) {
  for (int shift = 56; shift >= 0; shift -= 8) {
    out.push_back(static_cast<char>((value >> shift) & 0xff));
  }
}

void appendField(std::string& out, std::string_view field) {
  appendUint64(out, field.size());
  out.append(field);
}

std::array<unsigned char, kMacBytes> mac(std::string_view secret, const StampSubject& subject) {
  const std::string message = encodeStampSubject(subject);
  std::array<unsigned char, kMacBytes> out{};
  unsigned int length = 0;
  if (HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
           reinterpret_cast<const unsigned char*>(message.data()), message.size(), out.data(),
           &length) == nullptr ||
      length != kMacBytes) {
    throw std::runtime_error("HMAC-SHA-256 of an admission stamp failed");
  }
  return out;
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// The MAC bytes of a "v1:<64 hex>" stamp; nullopt for anything else.
std::optional<std::array<unsigned char, kMacBytes>> parseStamp(std::string_view stamp) {
  if (stamp.size() != kStampVersion.size() + 2 * kMacBytes ||
      stamp.substr(0, kStampVersion.size()) != kStampVersion) {
    return std::nullopt;
  }
  const std::string_view hex = stamp.substr(kStampVersion.size());
  std::array<unsigned char, kMacBytes> out{};
  for (std::size_t i = 0; i < kMacBytes; ++i) {
    const int high = hexValue(hex[2 * i]);
    const int low = hexValue(hex[2 * i + 1]);
    if (high < 0 || low < 0) return std::nullopt;
    out[i] = static_cast<unsigned char>(high * 16 + low);
  }
  return out;
}

bool macMatches(const std::array<unsigned char, kMacBytes>& expected,
                const std::array<unsigned char, kMacBytes>& given) {
  return CRYPTO_memcmp(expected.data(), given.data(), kMacBytes) == 0;
}

}  // namespace

std::string encodeStampSubject(const StampSubject& subject) {
  std::string out;
  out.reserve(kMacContext.size() + subject.namespaceName.size() + subject.podName.size() +
              subject.executionKey.size() + 64);
  appendField(out, kMacContext);
  appendField(out, subject.namespaceName);
  appendField(out, subject.nameIsPrefix ? "generateName" : "name");
  appendField(out, subject.podName);
  appendField(out, subject.executionKey);
  appendUint64(out, static_cast<uint64_t>(subject.recordedStaleness));
  return out;
}

std::string randomStampSecret(std::size_t count) {
  std::string secret(count, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(secret.data()), static_cast<int>(count)) != 1) {
    throw std::runtime_error("OpenSSL could not generate random bytes for the admission secret");
  }
  return secret;
}

Expected<StampKeyRing, std::string> StampKeyRing::fromSecrets(std::string current,
                                                              std::string previous) {
  auto tooShort = [](std::string_view which, std::size_t size) {
    return "the " + std::string(which) + " admission stamp secret has " + std::to_string(size) +
           " bytes; at least " + std::to_string(kMinStampSecretBytes) + " are required";
  };
  if (current.size() < kMinStampSecretBytes) {
    return Unexpected{tooShort("current", current.size())};
  }
  if (!previous.empty() && previous.size() < kMinStampSecretBytes) {
    return Unexpected{tooShort("previous", previous.size())};
  }
  return StampKeyRing(std::move(current), std::move(previous));
}

std::string StampKeyRing::sign(const StampSubject& subject) const {
  static constexpr char kDigits[] = "0123456789abcdef";
  const auto bytes = mac(current_, subject);
  std::string out(kStampVersion);
  for (const unsigned char byte : bytes) {
    out.push_back(kDigits[byte >> 4]);
    out.push_back(kDigits[byte & 0x0f]);
  }
  return out;
}

bool StampKeyRing::verifies(std::string_view stamp, const StampSubject& subject) const {
  const auto given = parseStamp(stamp);
  if (!given) return false;
  // Both secrets are always tried during a rotation, so the time taken does not say which one
  // signed.
  bool matches = macMatches(mac(current_, subject), *given);
  if (!previous_.empty()) matches = macMatches(mac(previous_, subject), *given) || matches;
  return matches;
}

void SharedStampKeys::install(StampKeyRing keys) {
  auto installed = std::make_shared<const StampKeyRing>(std::move(keys));
  std::lock_guard lock(mutex_);
  keys_ = std::move(installed);
}

std::shared_ptr<const StampKeyRing> SharedStampKeys::get() const {
  std::lock_guard lock(mutex_);
  return keys_;
}

}  // namespace kcache::core
