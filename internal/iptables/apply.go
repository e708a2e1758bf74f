package iptables

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// Runner runs a command with stdin and returns its combined output. Tests use it to
// run the iptables tools inside a network namespace (`ip netns exec NAME ...`).
type Runner func(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error)

// Exec runs commands directly.
func Exec(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	return cmd.CombinedOutput()
}

// Apply installs the rules for cfg with iptables-restore --noflush: Trellis's chains
// are (re)created and filled in one transaction, other chains keep their rules, and
// the jumps from PREROUTING and OUTPUT are added only when missing, so applying twice
// is applying once. run is Exec unless a test says otherwise.
func Apply(ctx context.Context, cfg Config, run Runner) (string, error) {
	if run == nil {
		run = Exec
	}
	present := map[jump]bool{}
	for _, j := range jumps(cfg) {
		// -C fails when the rule (or, the first time, the target chain) is absent.
		args := append([]string{"-t", j.table, "-C", j.chain}, strings.Fields(j.rule)...)
		if _, err := run(ctx, nil, "iptables", args...); err == nil {
			present[j] = true
		}
	}
	s, err := script(cfg, func(j jump) bool { return !present[j] })
	if err != nil {
		return "", err
	}
	if out, err := run(ctx, []byte(s), "iptables-restore", "--noflush"); err != nil {
		return s, fmt.Errorf("applying the rules with iptables-restore: %w: %s", err, bytes.TrimSpace(out))
	}
	return s, nil
}
