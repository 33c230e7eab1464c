// libFuzzer target over review decoding, the decision and the patch: any body must decode or be
// refused without crashing, and every patch kcache would send must apply to the pod it was made
// for (checked with nlohmann's json::patch), on the miss and on the hit path.
// Built by tests/fuzz with -DKCACHE_FUZZ=ON (see the lead's tests/fuzz/CMakeLists.txt).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "webhook/admission_review.h"
#include "webhook/decision.h"
#include "webhook/patch.h"

namespace {

using namespace kcache::webhook;

void checkPatchApplies(const nlohmann::json& pod, const AdmissionDecision& decision,
                       const AdmissionConfig& config) {
  const auto patch = buildPatch(pod, decision, config);
  if (!patch) return;
  try {
    (void)pod.patch(*patch);
  } catch (const nlohmann::json::exception&) {
    std::abort();  // kcache would have sent a patch the apiserver cannot apply
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  auto decoded = decodeAdmissionReview(body);
  if (!decoded) return 0;
  const auto& request = decoded.value();
  (void)encodeAdmissionResponse(request, {});
  for (const bool keepNodeRestrictions : {false, true}) {
    AdmissionConfig config;
    config.keepNodeRestrictions = keepNodeRestrictions;
    const auto plan = planLookup(request, config);
    const auto* lookup = std::get_if<LookupPlan>(&plan);
    if (lookup == nullptr) continue;
    AdmissionDecision miss;
    miss.key = lookup->key;
    miss.outcome = Miss{};
    checkPatchApplies(request.object, miss, config);
    AdmissionDecision hit;
    hit.key = lookup->key;
    hit.outcome = Hit{17, {std::string(body.substr(0, 64)), "42"}, 60};
    checkPatchApplies(request.object, hit, config);
    AdmissionResponse response;
    response.patch = buildPatch(request.object, hit, config);
    (void)encodeAdmissionResponse(request, response);
  }
  return 0;
}
