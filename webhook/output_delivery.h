#pragma once
// A second way of handing cached outputs to Argo, next to the pod annotation that the patch
// always restores. Argo >= 3.4 reads outputs from WorkflowTaskResult objects instead; an
// implementation for that (a later issue) plugs in here without touching the decision or patch.
#include "webhook/admission_review.h"
#include "webhook/decision.h"

namespace kcache::webhook {

class OutputDelivery {
 public:
  virtual ~OutputDelivery() = default;
  // Called on a hit, off the I/O threads, before the admission answer is sent (so whatever it
  // creates exists before the pod does). Throws on failure; the pod is then admitted as a miss,
  // so it runs instead of waiting for outputs that never come.
  virtual void deliver(const AdmissionRequest& request, const LookupPlan& plan, const Hit& hit) = 0;
};

}  // namespace kcache::webhook
