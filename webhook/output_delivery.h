#pragma once
// What the webhook asks of Argo's side of the cluster during the blocking phase of admission:
// a second way of handing cached outputs to Argo next to the pod annotation that the patch always
// restores (Argo >= 3.4 reads WorkflowTaskResult objects instead, webhook/task_result.h), and the
// template Argo >= 3.6 offloads to a ConfigMap. Both plug in here without touching the decision
// or the patch.
#include <stdexcept>
#include <string>

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

  // The ARGO_TEMPLATE value of the ConfigMap named after the pod (Argo >= 3.6 offloads templates
  // over 128 KiB there), used only when that ConfigMap is owned by the Workflow `workflowUid`
  // that owns the pod. Called off the I/O threads before the store lookup, and only under
  // --read-offloaded-templates. Throws, with context, when it cannot be read or is not owned by
  // that Workflow; the pod is then let through untouched.
  virtual std::string readOffloadedTemplate(const std::string& namespaceName,
                                            const std::string& podName,
                                            const std::string& workflowUid) {
    (void)workflowUid;
    throw std::runtime_error("the template of pod " + namespaceName + "/" + podName +
                             " is offloaded to a ConfigMap and no Kubernetes API client is "
                             "configured to read it");
  }
};

}  // namespace kcache::webhook
