package install

import (
	"bytes"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// Objects are the objects cfg installs, in apply order: CRDs, namespace, RBAC,
// Service, Deployment and PodDisruptionBudget (unless cfg.ControlPlaneURL is set),
// the rate-limit service's Service and Deployment (with cfg.RateLimit), webhook
// configurations. They carry no status or creationTimestamp, so they
// print and apply cleanly.
func Objects(cfg Config) ([]*unstructured.Unstructured, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("install config: %w", err)
	}
	var out []*unstructured.Unstructured
	for _, o := range typedObjects(cfg) {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
		if err != nil {
			return nil, fmt.Errorf("converting %T: %w", o, err)
		}
		prune(m)
		delete(m, "status")
		if spec, ok := m["spec"].(map[string]any); ok && len(spec) == 0 {
			delete(m, "spec") // a Namespace's
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
	return out, nil
}

// prune removes nil values (such as a zero creationTimestamp) at any depth.
func prune(m map[string]any) {
	for k, v := range m {
		switch v := v.(type) {
		case nil:
			delete(m, k)
		case map[string]any:
			prune(v)
		case []any:
			for _, e := range v {
				if em, ok := e.(map[string]any); ok {
					prune(em)
				}
			}
		}
	}
}

// YAML prints objects as one multi-document YAML stream, as `trellis install
// --dry-run` does.
func YAML(objs []*unstructured.Unstructured) ([]byte, error) {
	var b bytes.Buffer
	for i, o := range objs {
		data, err := yaml.Marshal(o.Object)
		if err != nil {
			return nil, fmt.Errorf("printing %s %s: %w", o.GetKind(), o.GetName(), err)
		}
		if i > 0 {
			b.WriteString("---\n")
		}
		b.Write(data)
	}
	return b.Bytes(), nil
}
