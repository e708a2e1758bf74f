// Command trellis is the Trellis service mesh: control plane, sidecar proxy and CLI in
// one binary.
package main

import (
	"os"

	"trellis.dev/trellis/internal/cli"
)

func main() {
	os.Exit(cli.Execute())
}
