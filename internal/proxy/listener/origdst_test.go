package listener

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestOriginalDst redirects, inside a network namespace of its own, connections to
// 10.0.0.1:80 (an address of that namespace only) to a local listener, and checks that
// the listener sees 10.0.0.1:80 as the original destination.
func TestOriginalDst(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace with a nat rule")
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Skip("iptables not installed (hack/test-deps.sh installs it)")
	}
	ns := fmt.Sprintf("trellis-odst-%d", os.Getpid())
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
	}
	run("ip", "netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	run("ip", "-n", ns, "link", "set", "lo", "up")
	run("ip", "-n", ns, "addr", "add", "10.0.0.1/32", "dev", "lo")
	run("ip", "netns", "exec", ns, "iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", "10.0.0.1", "--dport", "80", "-j", "REDIRECT", "--to-ports", "15001")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type result struct {
		got string
		err error
	}
	done := make(chan result, 1)
	go func() {
		// The thread enters the namespace and is never unlocked: it ends with the
		// goroutine, and the sockets stay in the namespace.
		runtime.LockOSThread()
		got, err := originalDstIn(ctx, "/run/netns/"+ns)
		done <- result{got, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		t.Fatal("timed out")
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.got != "10.0.0.1:80" {
		t.Errorf("OriginalDst = %s, want 10.0.0.1:80", r.got)
	}
}

func originalDstIn(ctx context.Context, nsPath string) (string, error) {
	f, err := os.Open(nsPath)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
		return "", fmt.Errorf("setns: %w", err)
	}
	ln, err := net.Listen("tcp4", "0.0.0.0:15001")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp4", "10.0.0.1:80")
	if err != nil {
		return "", err
	}
	defer c.Close()
	conn, err := ln.Accept()
	if err != nil {
		return "", err
	}
	defer conn.Close()
	dst, err := OriginalDst(conn)
	if err != nil {
		return "", err
	}
	return dst.String(), nil
}
