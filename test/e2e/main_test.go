// Package e2e runs Trellis end to end: the trellis binary built from this tree,
// `trellis up` on mesh files with real apps (fortio servers, the demo app) on
// loopback, and real clients (net/http, x/net/http2, grpc-go) calling through the
// sidecars.
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var (
	// trellisBin is the trellis binary under test, built once by TestMain.
	trellisBin string
	// fortioBin is fortio, the apps of most tests.
	fortioBin string
)

// binaryEnv, when set, names a trellis binary to test instead of building one.
const binaryEnv = "TRELLIS_E2E_BINARY"

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if code, ok := helperMode(); ok { // a process a test started (transparent_test.go)
		return code
	}
	if code, ok := grpcAppMode(); ok { // a proxyless gRPC app (grpcapp_test.go)
		return code
	}
	dir, err := os.MkdirTemp("", "trellis-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if trellisBin = os.Getenv(binaryEnv); trellisBin == "" {
		trellisBin = filepath.Join(dir, "trellis")
		build := exec.Command("go", "build", "-o", trellisBin, "./cmd/trellis")
		build.Dir = filepath.Join("..", "..")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: building trellis:", err)
			return 1
		}
	}
	if fortioBin, err = findFortio(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	return m.Run()
}

// findFortio looks for fortio in PATH, then in $(go env GOPATH)/bin.
func findFortio() (string, error) {
	if p, err := exec.LookPath("fortio"); err == nil {
		return p, nil
	}
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err == nil {
		for _, dir := range filepath.SplitList(strings.TrimSpace(string(out))) {
			p := filepath.Join(dir, "bin", "fortio")
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("fortio not found in PATH or $(go env GOPATH)/bin: install it with `go install fortio.org/fortio@v1.66.5` (make test does)")
}
