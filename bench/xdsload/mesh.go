package xdsload

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The scopings of a run.
const (
	// ScopingSidecar gives every namespace a Sidecar whose egress hosts are the
	// namespace itself and the shared namespace: each proxy sees its namespace's
	// services and the shared ones.
	ScopingSidecar = "sidecar"
	// ScopingNone has no Sidecar: every proxy sees every service (the worst case).
	ScopingNone = "none"
)

// serviceName is the name of service i of the mesh.
func serviceName(i int) string { return fmt.Sprintf("svc-%04d", i) }

// namespaceOf is the namespace of service i: services are dealt to the namespaces
// in turn.
func namespaceOf(i, namespaces int) string { return namespaceName(i % namespaces) }

func namespaceName(n int) string { return fmt.Sprintf("ns-%02d", n) }

// sharedNamespace holds the services every namespace sees under ScopingSidecar,
// and those the changes add.
var sharedNamespace = namespaceName(0)

// changeName is the name of the Service that change n adds.
func changeName(n int) string { return fmt.Sprintf("bench-change-%d", n) }

// meshSpec is what the mesh file holds.
type meshSpec struct {
	services   int
	namespaces int
	scoping    string
	// changes are the Services the changes so far added, in the shared namespace.
	changes []string
}

// file is the mesh: services (svc-0000...), each a v1/Service selecting
// app=<name> with one HTTP port 8080, dealt over the namespaces; under
// ScopingSidecar a Sidecar per namespace; and the Services the changes added.
func (m meshSpec) file() []byte {
	var b strings.Builder
	b.WriteString("# Written by the Trellis control-plane load program (bench/xdsload).\n")
	write := func(name, ns string) {
		fmt.Fprintf(&b, `---
apiVersion: v1
kind: Service
metadata:
  name: %[1]s
  namespace: %[2]s
spec:
  selector: {app: %[1]s}
  ports:
  - {name: http, port: 8080}
`, name, ns)
	}
	for i := range m.services {
		write(serviceName(i), namespaceOf(i, m.namespaces))
	}
	for _, c := range m.changes {
		write(c, sharedNamespace)
	}
	if m.scoping == ScopingSidecar {
		for n := range m.namespaces {
			fmt.Fprintf(&b, `---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata:
  name: default
  namespace: %s
spec:
  egress:
  - hosts: ["./*", "%s/*"]
`, namespaceName(n), sharedNamespace)
		}
	}
	return []byte(b.String())
}

// writeMesh replaces the mesh file atomically (write, then rename), as an editor
// does, so the control plane never reads half a file.
func writeMesh(path string, data []byte) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("writing the mesh file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing the mesh file: %w", err)
	}
	return nil
}
