#pragma once
// The admission stamp: proof that kcache's own webhook tagged a pod for recording, with the key
// and staleness it will be recorded under. Labels and annotations are writable by anyone who may
// edit pods in the namespace, so the watcher records a pod only when this stamp verifies
// (docs/security.md). It is an HMAC-SHA-256, under a secret the replicas share, over an
// unambiguous encoding of (namespace, pod name, execution key, recorded staleness).
//
// Pods created with generateName have no name yet when they are admitted. Their stamp binds the
// generateName prefix instead, marked as a prefix inside the MAC input so that it can never be
// taken for a full name; the watcher accepts it only for a pod whose name starts with its
// generateName. Such a stamp can be copied to another pod of the same prefix in the same
// namespace, but only with the same key (its own template must give it) and staleness. Argo
// names its pods itself, so its pods always get the name-bound form.
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "core/expected.h"

namespace kcache::core {

// What a stamp binds.
struct StampSubject {
  std::string_view namespaceName;
  std::string_view podName;  // the pod's name, or its generateName prefix when nameIsPrefix
  bool nameIsPrefix = false;
  std::string_view executionKey;  // the execution_cache_key annotation the webhook sets
  int64_t recordedStaleness = 0;  // the MaxCacheStaleness the watcher will record (seconds)
};

// The MAC input: a version tag, then each field as an 8-byte big-endian length and its bytes, the
// staleness as 8 big-endian bytes. No two subjects give the same bytes.
std::string encodeStampSubject(const StampSubject& subject);

// The shortest secret accepted: 256 bits, the HMAC-SHA-256 block's worth of strength.
inline constexpr std::size_t kMinStampSecretBytes = 32;

// `count` bytes from OpenSSL's CSPRNG; throws std::runtime_error if it has none.
std::string randomStampSecret(std::size_t count = kMinStampSecretBytes);

// The current secret signs; the previous one, during a rotation, still verifies stamps given out
// before every replica had the new secret.
class StampKeyRing {
 public:
  // An error message when a secret is shorter than kMinStampSecretBytes; `previous` may be empty
  // (no rotation in progress).
  static Expected<StampKeyRing, std::string> fromSecrets(std::string current,
                                                         std::string previous = {});

  // "v1:" followed by the MAC in 64 lower-case hex characters.
  std::string sign(const StampSubject& subject) const;
  // Whether `stamp` is a v1 stamp of `subject` under either secret (constant-time compare).
  bool verifies(std::string_view stamp, const StampSubject& subject) const;
  bool rotating() const { return !previous_.empty(); }

 private:
  StampKeyRing(std::string current, std::string previous)
      : current_(std::move(current)), previous_(std::move(previous)) {}
  std::string current_;
  std::string previous_;
};

// The key ring as the webhook sees it: the secret may live in the database, which may not be
// reachable when the webhook starts serving, so the ring is installed once it is known. Until
// then no pod is stamped (none is tagged for recording either: every lookup fails). Thread-safe.
class SharedStampKeys {
 public:
  void install(StampKeyRing keys);
  std::shared_ptr<const StampKeyRing> get() const;

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const StampKeyRing> keys_;
};

}  // namespace kcache::core
