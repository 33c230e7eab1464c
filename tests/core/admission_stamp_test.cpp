#include "core/admission_stamp.h"

#include <set>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

namespace kcache::core {
namespace {

const std::string kKey(64, 'a');
const std::string kSecret(32, 's');
const std::string kOtherSecret(32, 'o');

StampSubject subject() {
  return StampSubject{"team-a", "wf-1-123", false, kKey, 86400};
}

StampKeyRing ring(std::string current, std::string previous = {}) {
  auto keys = StampKeyRing::fromSecrets(std::move(current), std::move(previous));
  EXPECT_TRUE(keys) << (keys ? "" : keys.error());
  return std::move(keys).value();
}

TEST(AdmissionStampTest, SignsAsVersionedHexOfTheHmacOverTheEncoding) {
  const std::string stamp = ring(kSecret).sign(subject());
  ASSERT_EQ(stamp.size(), 3u + 64u);
  EXPECT_EQ(stamp.substr(0, 3), "v1:");
  // The MAC is OpenSSL's HMAC-SHA-256 of the documented encoding, nothing hand-made.
  const std::string message = encodeStampSubject(subject());
  unsigned char expected[32];
  unsigned int length = 0;
  HMAC(EVP_sha256(), kSecret.data(), static_cast<int>(kSecret.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), expected, &length);
  std::string hex;
  for (unsigned i = 0; i < length; ++i) {
    static constexpr char kDigits[] = "0123456789abcdef";
    hex += kDigits[expected[i] >> 4];
    hex += kDigits[expected[i] & 0xf];
  }
  EXPECT_EQ(stamp.substr(3), hex);
}

TEST(AdmissionStampTest, VerifiesOnlyTheSubjectItWasSignedFor) {
  const StampKeyRing keys = ring(kSecret);
  const std::string stamp = keys.sign(subject());
  EXPECT_TRUE(keys.verifies(stamp, subject()));

  StampSubject other = subject();
  other.namespaceName = "team-b";
  EXPECT_FALSE(keys.verifies(stamp, other));
  other = subject();
  other.podName = "wf-1-124";
  EXPECT_FALSE(keys.verifies(stamp, other));
  other = subject();
  other.nameIsPrefix = true;
  EXPECT_FALSE(keys.verifies(stamp, other));
  other = subject();
  const std::string otherKey(64, 'b');
  other.executionKey = otherKey;
  EXPECT_FALSE(keys.verifies(stamp, other));
  other = subject();
  other.recordedStaleness = -1;
  EXPECT_FALSE(keys.verifies(stamp, other));
}

TEST(AdmissionStampTest, EncodingIsUnambiguous) {
  // Moving bytes from one field to its neighbour gives another encoding.
  const std::string a = encodeStampSubject({"ab", "c", false, kKey, 1});
  const std::string b = encodeStampSubject({"a", "bc", false, kKey, 1});
  const std::string c = encodeStampSubject({"a", "b", false, "c" + kKey, 1});
  EXPECT_NE(a, b);
  EXPECT_NE(b, c);
  EXPECT_NE(encodeStampSubject({"ns", "p", false, kKey, 1}),
            encodeStampSubject({"ns", "p", true, kKey, 1}));
  EXPECT_NE(encodeStampSubject({"ns", "p", false, kKey, -1}),
            encodeStampSubject({"ns", "p", false, kKey, 1}));
}

TEST(AdmissionStampTest, RefusesMalformedStampsWithoutThrowing) {
  const StampKeyRing keys = ring(kSecret);
  const std::string good = keys.sign(subject());
  std::string upper = good;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  std::string notHex = good;
  notHex[10] = 'g';
  for (const std::string& bad :
       {std::string(), std::string("v1:"), good.substr(0, good.size() - 1), good + "0",
        "v2:" + good.substr(3), upper, notHex, std::string(good.size(), '\0')}) {
    EXPECT_FALSE(keys.verifies(bad, subject())) << bad;
  }
}

TEST(AdmissionStampTest, AnotherSecretDoesNotVerify) {
  EXPECT_FALSE(ring(kOtherSecret).verifies(ring(kSecret).sign(subject()), subject()));
}

TEST(AdmissionStampTest, RotationVerifiesBothSecretsAndSignsWithTheCurrentOne) {
  const StampKeyRing before = ring(kOtherSecret);
  const StampKeyRing during = ring(kSecret, kOtherSecret);
  const StampKeyRing after = ring(kSecret);
  EXPECT_TRUE(during.rotating());
  const std::string old = before.sign(subject());
  EXPECT_TRUE(during.verifies(old, subject()));
  EXPECT_FALSE(after.verifies(old, subject()));
  const std::string fresh = during.sign(subject());
  EXPECT_EQ(fresh, after.sign(subject()));
  EXPECT_TRUE(after.verifies(fresh, subject()));
}

TEST(AdmissionStampTest, RefusesShortSecrets) {
  EXPECT_FALSE(StampKeyRing::fromSecrets(std::string(31, 'x')));
  EXPECT_FALSE(StampKeyRing::fromSecrets(kSecret, std::string(8, 'x')));
  const auto refused = StampKeyRing::fromSecrets("");
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().find("at least 32"), std::string::npos) << refused.error();
}

TEST(AdmissionStampTest, RandomSecretsAreLongAndDistinct) {
  std::set<std::string> seen;
  for (int i = 0; i < 16; ++i) {
    const std::string secret = randomStampSecret();
    EXPECT_EQ(secret.size(), kMinStampSecretBytes);
    seen.insert(secret);
  }
  EXPECT_EQ(seen.size(), 16u);
}

TEST(AdmissionStampTest, SharedKeysAreEmptyUntilInstalled) {
  SharedStampKeys shared;
  EXPECT_EQ(shared.get(), nullptr);
  std::thread reader([&] {
    for (int i = 0; i < 1000; ++i) {
      if (auto keys = shared.get()) {
        EXPECT_TRUE(keys->verifies(keys->sign(subject()), subject()));
      }
    }
  });
  shared.install(ring(kSecret));
  reader.join();
  ASSERT_NE(shared.get(), nullptr);
  EXPECT_TRUE(shared.get()->verifies(ring(kSecret).sign(subject()), subject()));
}

}  // namespace
}  // namespace kcache::core
