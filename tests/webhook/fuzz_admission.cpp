// libFuzzer target over review decoding, the decision and the patch: any body must decode or be
// refused without crashing; the decoder's pod view must give the same plan and the same patches
// as the whole pod read by a JSON library; and every patch kcache would send must apply to the
// whole pod (checked with nlohmann's json::patch), on the miss and on the hit path.
// Built by tests/fuzz with -DKCACHE_FUZZ=ON (see the lead's tests/fuzz/CMakeLists.txt).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string_view>

#include "webhook/admission_review.h"
#include "webhook/decision.h"
#include "webhook/patch.h"

namespace {

using namespace kcache::webhook;

// request.object as a JSON library reads the whole body; nullopt when it refuses the body.
std::optional<nlohmann::json> wholePod(std::string_view body) {
  auto review = nlohmann::json::parse(body.begin(), body.end(), nullptr, false);
  if (review.is_discarded()) return std::nullopt;
  const auto& request = review["request"];
  return request.contains("object") ? request["object"] : nlohmann::json();
}

void expectSamePlan(const Plan& fromView, const Plan& fromWhole) {
  if (fromView.index() != fromWhole.index()) std::abort();
  if (const auto* lookup = std::get_if<LookupPlan>(&fromView)) {
    const auto& whole = std::get<LookupPlan>(fromWhole);
    if (lookup->key != whole.key || lookup->namespaceName != whole.namespaceName ||
        lookup->podName != whole.podName || lookup->staleness.seconds != whole.staleness.seconds) {
      std::abort();
    }
  }
}

// The patch from the view must be the one from the whole pod, and apply to the whole pod.
void checkPatch(const nlohmann::json& view, const nlohmann::json& whole,
                const AdmissionDecision& decision, const AdmissionConfig& config) {
  const auto patch = buildPatch(view, decision, config);
  if (patch != buildPatch(whole, decision, config)) std::abort();
  if (!patch) return;
  try {
    (void)whole.patch(*patch);
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
  const auto pod = wholePod(body);
  if (!pod) return 0;  // the two parsers disagree on validity (e.g. lone surrogates): not compared
  AdmissionRequest whole = request;
  whole.object = *pod;
  for (const bool keepNodeRestrictions : {false, true}) {
    AdmissionConfig config;
    config.keepNodeRestrictions = keepNodeRestrictions;
    const auto plan = planLookup(request, config);
    expectSamePlan(plan, planLookup(whole, config));
    const auto* lookup = std::get_if<LookupPlan>(&plan);
    if (lookup == nullptr) continue;
    AdmissionDecision miss;
    miss.key = lookup->key;
    miss.outcome = Miss{};
    checkPatch(request.object, whole.object, miss, config);
    AdmissionDecision hit;
    hit.key = lookup->key;
    hit.outcome = Hit{17, {std::string(body.substr(0, 64)), "42"}, 60};
    checkPatch(request.object, whole.object, hit, config);
    AdmissionResponse response;
    response.patch = buildPatch(request.object, hit, config);
    (void)encodeAdmissionResponse(request, response);
  }
  return 0;
}
