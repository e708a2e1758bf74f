package inject

import (
	"bytes"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// templatePaths is where each workload kind keeps its pod template.
var templatePaths = map[string][]string{
	"Deployment":            {"spec", "template"},
	"StatefulSet":           {"spec", "template"},
	"DaemonSet":             {"spec", "template"},
	"ReplicaSet":            {"spec", "template"},
	"ReplicationController": {"spec", "template"},
	"Job":                   {"spec", "template"},
	"CronJob":               {"spec", "jobTemplate", "spec", "template"},
}

// Manifest injects every Pod and every workload's pod template (Deployment,
// StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job, CronJob) in a
// multi-document YAML manifest, as the webhook would, and returns the manifest.
// Other documents pass through unchanged; an injected document is printed again with
// its keys sorted.
func Manifest(data []byte, cfg Config) ([]byte, error) {
	var out bytes.Buffer
	for i, doc := range splitYAML(data) {
		res, err := injectDocument(doc, cfg)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		if i > 0 {
			out.WriteString("---\n")
		}
		out.Write(res)
	}
	return out.Bytes(), nil
}

// splitYAML cuts a stream at lines that are exactly "---", dropping empty documents.
func splitYAML(data []byte) [][]byte {
	var docs [][]byte
	var cur bytes.Buffer
	flush := func() {
		if len(bytes.TrimSpace(cur.Bytes())) > 0 {
			docs = append(docs, bytes.Clone(cur.Bytes()))
		}
		cur.Reset()
	}
	for line := range bytes.Lines(data) {
		if t := strings.TrimRight(string(line), " \t\r\n"); t == "---" || strings.HasPrefix(t, "--- #") {
			flush()
			continue
		}
		cur.Write(line)
	}
	flush()
	return docs
}

func injectDocument(doc []byte, cfg Config) ([]byte, error) {
	var obj map[string]any
	if err := yaml.Unmarshal(doc, &obj); err != nil {
		return nil, fmt.Errorf("parsing YAML: %w", err)
	}
	kind, _ := obj["kind"].(string)
	name, _ := nestedString(obj, "metadata", "name")
	if kind == "Pod" {
		var pod corev1.Pod
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj, &pod); err != nil {
			return nil, fmt.Errorf("decoding Pod %s: %w", name, err)
		}
		injected, err := Pod(&pod, cfg)
		if err != nil {
			return nil, err
		}
		if injected == &pod {
			return doc, nil
		}
		return marshal(injected)
	}
	path, ok := templatePaths[kind]
	if !ok {
		return doc, nil
	}
	parent := obj
	for _, k := range path[:len(path)-1] {
		next, ok := parent[k].(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s %s has no %s", kind, name, strings.Join(path, "."))
		}
		parent = next
	}
	raw, ok := parent[path[len(path)-1]].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s %s has no %s", kind, name, strings.Join(path, "."))
	}
	var tmpl corev1.PodTemplateSpec
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &tmpl); err != nil {
		return nil, fmt.Errorf("decoding the pod template of %s %s: %w", kind, name, err)
	}
	if Skip(&tmpl.ObjectMeta, &tmpl.Spec) != "" {
		return doc, nil
	}
	if err := Template(&tmpl, cfg); err != nil {
		return nil, fmt.Errorf("%s %s: %w", kind, name, err)
	}
	m, err := toMap(&tmpl)
	if err != nil {
		return nil, err
	}
	parent[path[len(path)-1]] = m
	return yaml.Marshal(obj)
}

func nestedString(obj map[string]any, keys ...string) (string, bool) {
	var cur any = obj
	for _, k := range keys {
		m, ok := cur.(map[string]any)
		if !ok {
			return "", false
		}
		cur = m[k]
	}
	s, ok := cur.(string)
	return s, ok
}

func marshal(o any) ([]byte, error) {
	m, err := toMap(o)
	if err != nil {
		return nil, err
	}
	delete(m, "status")
	return yaml.Marshal(m)
}

// toMap converts a typed object to a map without the zero values Go's types print
// (creationTimestamp: null).
func toMap(o any) (map[string]any, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
	if err != nil {
		return nil, fmt.Errorf("converting %T: %w", o, err)
	}
	prune(m)
	return m, nil
}

// prune removes nil values at any depth. Empty maps stay: emptyDir: {} means something.
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
