package xdsload

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// serviceName is the name of service i of the mesh.
func serviceName(i int) string { return fmt.Sprintf("svc-%04d", i) }

// changeName is the name of the Service that change n adds.
func changeName(n int) string { return fmt.Sprintf("bench-change-%d", n) }

// meshFile is the mesh: services Services (svc-0000...), each a v1/Service selecting
// app=<name> with one HTTP port 8080, plus the Services that the changes so far
// added.
func meshFile(services int, changes []string) []byte {
	var b strings.Builder
	b.WriteString("# Written by the Trellis control-plane load program (bench/xdsload).\n")
	write := func(name string) {
		fmt.Fprintf(&b, `---
apiVersion: v1
kind: Service
metadata:
  name: %[1]s
  namespace: default
spec:
  selector: {app: %[1]s}
  ports:
  - {name: http, port: 8080}
`, name)
	}
	for i := range services {
		write(serviceName(i))
	}
	for _, c := range changes {
		write(c)
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
