package deploy_test

// Schema validation of deploy/kubernetes/ against the real Kubernetes API
// types: every document is decoded strictly (sigs.k8s.io/yaml, as kubectl
// does with --validate=strict) into the k8s.io/api struct of its
// apiVersion and kind, so an unknown or misspelt field, a field at the
// wrong level, a duplicate key or a value of the wrong type is an error.
//
// Why this and not kubeconform or kubeval: those validate against JSON
// schemas they download from the internet at run time, which CI cannot
// reach; the Go types are the source those schemas are generated from, come
// through the Go module proxy like any dependency, and are versioned in
// go.mod (k8s.io/api v0.37 = Kubernetes 1.37 types; the manifests use only
// stable GA APIs). What strict decoding does not check — the API server's
// semantic validation, such as names being DNS labels or selectors
// matching — is checked by hand below and in TestKubernetesManifests.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	k8syaml "sigs.k8s.io/yaml"
)

// kustomization is the kustomize.config.k8s.io/v1beta1 Kustomization
// subset the manifests use; decoding is strict against it too.
type kustomization struct {
	APIVersion   string            `json:"apiVersion"`
	Kind         string            `json:"kind"`
	Namespace    string            `json:"namespace,omitempty"`
	Resources    []string          `json:"resources"`
	CommonLabels map[string]string `json:"commonLabels,omitempty"`
	Labels       []struct {
		Pairs            map[string]string `json:"pairs"`
		IncludeSelectors bool              `json:"includeSelectors,omitempty"`
		IncludeTemplates bool              `json:"includeTemplates,omitempty"`
	} `json:"labels,omitempty"`
	Images []struct {
		Name    string `json:"name"`
		NewName string `json:"newName,omitempty"`
		NewTag  string `json:"newTag,omitempty"`
		Digest  string `json:"digest,omitempty"`
	} `json:"images,omitempty"`
}

// typed returns a new value of the API type for apiVersion and kind.
func typed(apiVersion, kind string) (any, bool) {
	switch apiVersion + " " + kind {
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}, true
	case "v1 Service":
		return &corev1.Service{}, true
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}, true
	case "v1 Secret":
		return &corev1.Secret{}, true
	case "policy/v1 PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, true
	case "kustomize.config.k8s.io/v1beta1 Kustomization":
		return &kustomization{}, true
	}
	return nil, false
}

// splitDocs returns the YAML documents of a multi-document file, each
// re-encoded on its own so sigs.k8s.io/yaml sees one document.
func splitDocs(data []byte) ([][]byte, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs [][]byte
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		out, err := yaml.Marshal(&n)
		if err != nil {
			return nil, err
		}
		docs = append(docs, out)
	}
}

// strictDecode decodes one manifest document into its API type.
func strictDecode(doc []byte) (any, error) {
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := k8syaml.Unmarshal(doc, &head); err != nil {
		return nil, err
	}
	obj, ok := typed(head.APIVersion, head.Kind)
	if !ok {
		return nil, fmt.Errorf("apiVersion %q kind %q: not a type this test knows (add it to typed)", head.APIVersion, head.Kind)
	}
	if err := k8syaml.UnmarshalStrict(doc, obj); err != nil {
		return nil, fmt.Errorf("%s %s: %w", head.APIVersion, head.Kind, err)
	}
	return obj, nil
}

func TestKubernetesSchemaRejectsBadManifests(t *testing.T) {
	for name, doc := range map[string]string{
		"unknown field":   "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  ports: [{port: 80}]\n  selectr: {app: x}\n",
		"wrong type":      "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replicas: one\n",
		"wrong level":     "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  template:\n    spec:\n      containers: [{name: c, image: i}]\n      readinessProbe: {httpGet: {path: /readyz, port: 9470}}\n",
		"duplicate key":   "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: '1'}\ndata: {b: '2'}\n",
		"bad quantity":    "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  template:\n    spec:\n      containers: [{name: c, image: i, resources: {limits: {memory: lots}}}]\n",
		"unknown kind":    "apiVersion: v1\nkind: Servise\nmetadata: {name: x}\n",
		"old apiVersion":  "apiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata: {name: x}\n",
		"int as a string": "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  ports: [{port: '80'}]\n",
	} {
		_, err := strictDecode([]byte(doc))
		if err == nil {
			t.Errorf("%s: accepted:\n%s", name, doc)
		}
		t.Logf("%s: %v", name, err)
	}
	if _, err := strictDecode([]byte("apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  ports: [{port: 80, targetPort: http}]\n")); err != nil {
		t.Errorf("a valid Service was refused: %v", err)
	}
}

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

func TestKubernetesSchema(t *testing.T) {
	files, err := filepath.Glob("kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatal("no manifests", err)
	}
	var (
		dep  *appsv1.Deployment
		svc  *corev1.Service
		pdb  *policyv1.PodDisruptionBudget
		cm   *corev1.ConfigMap
		sec  *corev1.Secret
		kust *kustomization
	)
	for _, f := range files {
		docs, err := splitDocs(read(t, f))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for i, doc := range docs {
			obj, err := strictDecode(doc)
			if err != nil {
				t.Errorf("%s (document %d): %v", f, i+1, err)
				continue
			}
			var meta *metav1.ObjectMeta
			switch o := obj.(type) {
			case *appsv1.Deployment:
				dep, meta = o, &o.ObjectMeta
			case *corev1.Service:
				svc, meta = o, &o.ObjectMeta
			case *policyv1.PodDisruptionBudget:
				pdb, meta = o, &o.ObjectMeta
			case *corev1.ConfigMap:
				cm, meta = o, &o.ObjectMeta
			case *corev1.Secret:
				sec, meta = o, &o.ObjectMeta
			case *kustomization:
				kust = o
			}
			if meta != nil && !dnsLabel.MatchString(meta.Name) {
				t.Errorf("%s: metadata.name %q is not a DNS label", f, meta.Name)
			}
		}
	}
	if dep == nil || svc == nil || pdb == nil || cm == nil || sec == nil || kust == nil {
		t.Fatalf("missing kinds: Deployment %v Service %v PDB %v ConfigMap %v Secret %v Kustomization %v",
			dep != nil, svc != nil, pdb != nil, cm != nil, sec != nil, kust != nil)
	}

	// What the API server would refuse, and what the types alone do not
	// say.
	pod := dep.Spec.Template.Spec
	if dep.Spec.Selector == nil || len(dep.Spec.Selector.MatchLabels) == 0 {
		t.Error("Deployment: spec.selector is required")
	}
	for k, v := range dep.Spec.Selector.MatchLabels {
		if dep.Spec.Template.Labels[k] != v {
			t.Errorf("Deployment: selector %s=%s does not select its own pods", k, v)
		}
	}
	if len(pod.Containers) == 0 {
		t.Fatal("Deployment: no containers")
	}
	ports := map[string]int32{}
	volumes := map[string]bool{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = true
		if v.ConfigMap != nil && v.ConfigMap.Name != cm.Name {
			t.Errorf("volume %s mounts ConfigMap %q, not %q", v.Name, v.ConfigMap.Name, cm.Name)
		}
		if v.Secret != nil && v.Secret.SecretName != sec.Name {
			t.Errorf("volume %s mounts Secret %q, not %q", v.Name, v.Secret.SecretName, sec.Name)
		}
	}
	for _, c := range pod.Containers {
		if !dnsLabel.MatchString(c.Name) || c.Image == "" {
			t.Errorf("container %q: name must be a DNS label and image set", c.Name)
		}
		for _, p := range c.Ports {
			if p.Name != "" {
				if len(p.Name) > 15 {
					t.Errorf("container port name %q is longer than 15 characters", p.Name)
				}
				ports[p.Name] = p.ContainerPort
			}
		}
		for _, m := range c.VolumeMounts {
			if !volumes[m.Name] {
				t.Errorf("container %s mounts volume %q that the pod does not define", c.Name, m.Name)
			}
		}
		for _, e := range c.Env {
			if r := e.ValueFrom; r != nil && r.SecretKeyRef != nil {
				if r.SecretKeyRef.Name != sec.Name {
					t.Errorf("env %s: Secret %q, not %q", e.Name, r.SecretKeyRef.Name, sec.Name)
				} else if _, ok := sec.StringData[r.SecretKeyRef.Key]; !ok {
					if _, ok := sec.Data[r.SecretKeyRef.Key]; !ok {
						t.Errorf("env %s: key %q not in the Secret", e.Name, r.SecretKeyRef.Key)
					}
				}
			}
		}
		for name, pr := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe, "startup": c.StartupProbe} {
			if pr == nil || pr.HTTPGet == nil {
				t.Errorf("container %s: no HTTP %s probe", c.Name, name)
				continue
			}
			if pr.HTTPGet.Port.Type == intstr.String {
				if _, ok := ports[pr.HTTPGet.Port.StrVal]; !ok {
					t.Errorf("%s probe port %q is not a named container port", name, pr.HTTPGet.Port.StrVal)
				}
			}
		}
	}
	for _, p := range svc.Spec.Ports {
		if p.TargetPort.Type == intstr.String {
			if _, ok := ports[p.TargetPort.StrVal]; !ok {
				t.Errorf("Service targetPort %q is not a named container port", p.TargetPort.StrVal)
			}
		}
	}
	if pdb.Spec.Selector == nil {
		t.Error("PodDisruptionBudget: no selector")
	} else {
		for k, v := range pdb.Spec.Selector.MatchLabels {
			if dep.Spec.Template.Labels[k] != v {
				t.Errorf("PodDisruptionBudget selector %s=%s does not select the pods", k, v)
			}
		}
	}
	if (pdb.Spec.MinAvailable == nil) == (pdb.Spec.MaxUnavailable == nil) {
		t.Error("PodDisruptionBudget: exactly one of minAvailable and maxUnavailable")
	}
	for _, r := range kust.Resources {
		if !strings.HasSuffix(r, ".yaml") {
			t.Errorf("kustomization resource %q", r)
		}
	}
}
