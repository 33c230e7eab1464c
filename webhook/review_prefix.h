#pragma once
// Answering a review without decoding it: when a large review cannot get a decoding slot in
// time, the server still owes kube-apiserver an answer for that very request. The answer must
// echo the review's apiVersion and request.uid, which kube-apiserver writes first (an
// AdmissionReview is encoded as kind, apiVersion, then request with uid as its first member), so
// the first bytes of the body are enough.
#include <cstddef>
#include <string>
#include <string_view>

namespace kcache::webhook {

// How much of a body is kept to find them.
inline constexpr std::size_t kReviewPrefixBytes = 16 * 1024;

struct ReviewIdentity {
  std::string apiVersion;  // as found, possibly empty
  std::string uid;         // request.uid, possibly empty
};

// Reads the top-level "apiVersion" and "request"."uid" strings from the start of a JSON body that
// may be cut anywhere. Never throws; gives up (leaving fields empty) on anything unexpected.
ReviewIdentity scanReviewIdentity(std::string_view prefix);

// The AdmissionReview answer "allowed, no patch" for the review whose body starts with `prefix`
// (apiVersion admission.k8s.io/v1 unless the body says v1beta1).
std::string allowedAnswerFor(std::string_view prefix);

}  // namespace kcache::webhook
