#pragma once
// The admission stamp secret of the tests: pods that stand for pods kcache's webhook admitted are
// stamped with it (core/admission_stamp.h), and the recorders under test verify with it. Tests
// that start cache-server write it into the file given to --stamp-secret-file.
#include <memory>
#include <string>

#include "core/admission_stamp.h"

namespace kcache::testing {

inline const std::string& testStampSecret() {
  static const std::string secret = "kcache-test-admission-stamp-secret-0123456789";
  return secret;
}

inline std::shared_ptr<const core::StampKeyRing> testStampKeys() {
  static const auto keys = std::make_shared<const core::StampKeyRing>(
      core::StampKeyRing::fromSecrets(testStampSecret()).value());
  return keys;
}

inline std::shared_ptr<const core::SharedStampKeys> sharedTestStampKeys() {
  auto shared = std::make_shared<core::SharedStampKeys>();
  shared->install(*testStampKeys());
  return shared;
}

// The stamp the webhook gives a pod named `name` in `namespaceName`, tagged with `key`, recorded
// with `recordedStaleness` seconds (-1: no limit, what a pod without the annotation records).
inline std::string testStampOf(const std::string& namespaceName, const std::string& name,
                               const std::string& key, int64_t recordedStaleness = -1) {
  return testStampKeys()->sign(
      core::StampSubject{namespaceName, name, false, key, recordedStaleness});
}

}  // namespace kcache::testing
