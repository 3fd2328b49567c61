// Package kubernetes_test checks what the manifests in this directory must
// do about readiness. /readyz, the readiness probe, answers 503 while a
// component link is down and on a cluster standby. It must neither cut
// webhooks off nor make the PodDisruptionBudget block a drain.
// deploy/deploy_test.go and deploy/kubernetes_test.go check the rest.
package kubernetes_test

import (
	"os"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	k8syaml "sigs.k8s.io/yaml"
)

func load(t *testing.T, file string, into any) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := k8syaml.UnmarshalStrict(b, into); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

// The one Service carries the providers' webhooks and the media links.
// It must keep the pod while /readyz says 503: the sessions still take
// webhooks into the durable inbox, and an adapter that cannot answers 503
// itself so the provider retries.
func TestServiceKeepsNotReadyPod(t *testing.T) {
	var dep appsv1.Deployment
	load(t, "deployment.yaml", &dep)
	var svc corev1.Service
	load(t, "service.yaml", &svc)
	c := dep.Spec.Template.Spec.Containers[0]
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Fatalf("readiness probe %+v: this test assumes /readyz", c.ReadinessProbe)
	}
	if !svc.Spec.PublishNotReadyAddresses {
		t.Error("service.yaml: publishNotReadyAddresses is not true; /readyz answers 503 while a link is down, and the ingress would then refuse webhooks")
	}
}

// A standby is never ready, so the budget counts only the active pod as
// healthy. minAvailable would block evicting the active pod forever, and
// maxUnavailable must cover every replica.
func TestBudgetLetsTheActivePodGo(t *testing.T) {
	var dep appsv1.Deployment
	load(t, "deployment.yaml", &dep)
	var pdb policyv1.PodDisruptionBudget
	load(t, "pdb.yaml", &pdb)
	if pdb.Spec.MinAvailable != nil {
		t.Errorf("pdb.yaml: minAvailable %s blocks evicting the only ready pod", pdb.Spec.MinAvailable.String())
	}
	replicas := 1
	if dep.Spec.Replicas != nil {
		replicas = int(*dep.Spec.Replicas)
	}
	mu := pdb.Spec.MaxUnavailable
	if mu == nil {
		t.Fatal("pdb.yaml: no maxUnavailable")
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(mu, replicas, true)
	if err != nil || n < replicas {
		t.Errorf("pdb.yaml: maxUnavailable %s allows %d of %d replicas to be evicted (%v)", mu.String(), n, replicas, err)
	}
}
