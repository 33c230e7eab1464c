// The server's bounds as plain objects: the connection cap (who is pushed out, who is refused),
// the large-body gate (slots, waiting, cancelling), and answering a review from its first bytes.
#include <gtest/gtest.h>

#include <array>

#include <nlohmann/json.hpp>

#include "tests/webhook/webhook_test_support.h"
#include "webhook/review_prefix.h"
#include "webhook/transport_limits.h"

namespace kcache::webhook {
namespace {

TEST(ConnectionLimitTest, AtTheCapTheLongestWaitingIdleConnectionIsPushedOut) {
  ConnectionLimit limit(3);
  std::vector<int> evicted;
  auto admit = [&](int id) { return limit.admit([&evicted, id] { evicted.push_back(id); }); };
  auto first = admit(1);
  auto second = admit(2);
  auto third = admit(3);
  EXPECT_EQ(first.outcome, ConnectionLimit::Outcome::kAdmitted);
  EXPECT_EQ(limit.open(), 3u);

  // 1 answers a request (not evictable), then 2 answers and finishes (now the newest idle).
  ASSERT_TRUE(first.ticket.startAnswering());
  ASSERT_TRUE(second.ticket.startAnswering());
  second.ticket.finishAnswering();
  auto fourth = admit(4);
  EXPECT_EQ(fourth.outcome, ConnectionLimit::Outcome::kAdmittedAfterEviction);
  EXPECT_EQ(evicted, std::vector<int>{3});  // idle the longest; 1 was passed over
  EXPECT_EQ(limit.open(), 3u);
  EXPECT_FALSE(third.ticket.startAnswering()) << "an evicted connection must close";

  auto fifth = admit(5);
  EXPECT_EQ(evicted, (std::vector<int>{3, 2}));
  ASSERT_TRUE(fourth.ticket.startAnswering());
  ASSERT_TRUE(fifth.ticket.startAnswering());
  // Everyone is answering: refused, nobody evicted.
  auto sixth = admit(6);
  EXPECT_EQ(sixth.outcome, ConnectionLimit::Outcome::kRefused);
  EXPECT_EQ(evicted.size(), 2u);

  // A closed connection frees its place.
  first = {};
  EXPECT_EQ(limit.open(), 2u);
  EXPECT_EQ(admit(7).outcome, ConnectionLimit::Outcome::kAdmitted);
  // Evicted tickets release nothing twice.
  third = {};
  second = {};
  EXPECT_EQ(limit.open(), 2u);
}

TEST(LargeBodyGateTest, SlotsAreHandedToWaitersInOrderAndCancelledWaitersAreSkipped) {
  LargeBodyGate gate(1);
  auto held = gate.tryAcquire();
  ASSERT_TRUE(held);
  EXPECT_FALSE(gate.tryAcquire());

  std::vector<int> granted;
  std::array<LargeBodyGate::Slot, 4> slots;  // by waiter
  auto grant = [&](int id) {
    return [&, id](LargeBodyGate::Slot slot) {
      granted.push_back(id);
      slots[id] = std::move(slot);
    };
  };
  auto first = gate.wait(grant(1));
  auto second = gate.wait(grant(2));
  auto third = gate.wait(grant(3));
  EXPECT_TRUE(gate.cancel(first));
  EXPECT_FALSE(gate.cancel(first)) << "cancelled once";

  held.reset();
  EXPECT_EQ(granted, std::vector<int>{2});
  EXPECT_FALSE(gate.cancel(second)) << "granted: too late to cancel";
  slots[2].reset();  // 2 is done: its slot goes to 3
  EXPECT_EQ(granted, (std::vector<int>{2, 3}));
  EXPECT_EQ(gate.available(), 0u);
  slots[3].reset();
  EXPECT_EQ(gate.available(), 1u);
}

TEST(ReviewPrefixTest, FindsApiVersionAndUidInACutBody) {
  const std::string body =
      R"({"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1beta1","request":{"uid":"u-\u0031","kind":{"group":"","version":"v1","kind":"Pod"},"object":{"metadata":{"name":"p"},"spec":{"containers":[{"name":"main","env":[{"value":"x\"y"}]}]}}}})";
  const auto identity = scanReviewIdentity(body);
  EXPECT_EQ(identity.apiVersion, "admission.k8s.io/v1beta1");
  EXPECT_EQ(identity.uid, "u-1");
  // Cut anywhere after the uid: still found. Cut before it: empty, never a crash.
  for (std::size_t cut = 0; cut <= body.size(); ++cut) {
    const auto partial = scanReviewIdentity(std::string_view(body).substr(0, cut));
    if (cut > body.find("\"kind\":{")) {
      EXPECT_EQ(partial.uid, "u-1") << cut;
    } else if (cut < body.find("u-\\u0031") + 9) {  // before the uid's closing quote
      EXPECT_EQ(partial.uid, "") << cut;
    }
  }
  // Members in another order, and a uid after a large object.
  const std::string reordered =
      R"({"request":{"object":{"a":[1,2,{"b":"}"}]},"uid":"late"},"apiVersion":"admission.k8s.io/v1"})";
  EXPECT_EQ(scanReviewIdentity(reordered).uid, "late");
  EXPECT_EQ(scanReviewIdentity(reordered).apiVersion, "admission.k8s.io/v1");
  for (const std::string& junk :
       std::vector<std::string>{"", "[", "{\"request\":7}", "{\"apiVersion\":12,\"request\":{}}",
                                std::string(10000, '{'), "\"\\", "{\"a\":\"\\u12"}) {
    EXPECT_EQ(scanReviewIdentity(junk).uid, "");
  }
}

TEST(ReviewPrefixTest, AllowedAnswerEchoesTheIdentityWithoutAPatch) {
  const auto answer = nlohmann::json::parse(allowedAnswerFor(
      R"({"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":"abc","object":{"metadata":)"));
  EXPECT_EQ(answer["apiVersion"], "admission.k8s.io/v1");
  EXPECT_EQ(answer["kind"], "AdmissionReview");
  EXPECT_EQ(answer["response"]["uid"], "abc");
  EXPECT_EQ(answer["response"]["allowed"], true);
  EXPECT_FALSE(answer["response"].contains("patch"));
  // A body that names no known version still gets a well-formed answer.
  EXPECT_EQ(nlohmann::json::parse(allowedAnswerFor("garbage"))["apiVersion"],
            "admission.k8s.io/v1");
}

}  // namespace
}  // namespace kcache::webhook
