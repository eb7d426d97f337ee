#pragma once
// Defaulting and mutating admission as the real API server applies them on create
// (SetDefaults_* of k8s.io/kubernetes/pkg/apis/core/v1, ServiceAccount, DefaultTolerationSeconds,
// Priority, TaintNodesByCondition admission, NamespaceLifecycle labels).
#include <string>

#include "tests/apiserver/json.h"

namespace apiserver {

// Go-level defaults of a pod spec (also applied on update).
void DefaultPodSpec(Json& spec);
// Create-time admission of a pod: service account token volume, tolerations, priority, status.
// `automount_sa` is the ServiceAccount's automountServiceAccountToken (true when unset).
void AdmitNewPod(Json& pod, bool automount_sa);
std::string PodQosClass(const Json& pod);

void DefaultService(Json& svc);
void DefaultNamespace(Json& ns);
void AdmitNewNode(Json& node);
void DefaultSecret(Json& secret);
void DefaultEndpointSlice(Json& slice);

}  // namespace apiserver
