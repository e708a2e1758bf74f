package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// trellisBin is the trellis binary the smoke tests run, built once by TestMain.
var trellisBin string

// binaryEnv, when set, names a trellis binary to use instead of building one.
const binaryEnv = "TRELLIS_BENCH_BINARY"

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "trellis-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if trellisBin = os.Getenv(binaryEnv); trellisBin == "" {
		trellisBin = filepath.Join(dir, "trellis")
		build := exec.Command("go", "build", "-o", trellisBin, "./cmd/trellis")
		build.Dir = ".."
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "bench: building trellis:", err)
			return 1
		}
	}
	return m.Run()
}
