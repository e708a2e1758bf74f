// Package child runs the processes a benchmark needs for its length (the fortio
// server, HAProxy, `trellis up`, `trellis control`), each in its own process group
// with its output in a log file, and finds free loopback ports for them.
//
// A Child owns one goroutine, which waits for the process; Stop ends the process and
// that goroutine.
package child

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Child is a process that runs for the length of a benchmark.
type Child struct {
	Name string
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
	err  error // the process's exit status, valid once done is closed
}

// Start starts argv (with env, nil for this process's environment) in its own
// process group, its output appended to logPath. The process is killed if this one
// dies.
func Start(name, logPath string, argv []string, env []string) (*Child, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s (%s): %w", name, argv[0], err)
	}
	c := &Child{Name: name, cmd: cmd, log: f, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// PID is the process's id.
func (c *Child) PID() int { return c.cmd.Process.Pid }

// Exited returns an error when the process has already ended.
func (c *Child) Exited() error {
	select {
	case <-c.done:
		return fmt.Errorf("%s exited early: %v (see %s): %s", c.Name, c.err, c.log.Name(), tail(c.log.Name(), 5))
	default:
		return nil
	}
}

// Stop sends SIGTERM to the process and waits up to grace for it to exit, then kills
// its process group. It may be called more than once.
func (c *Child) Stop(grace time.Duration) {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		_ = syscall.Kill(-c.PID(), syscall.SIGKILL)
		<-c.done
	}
	c.log.Close()
}

// FreePorts returns n distinct free TCP ports on 127.0.0.1. They are free when
// checked; another process could take one before it is used, which on a quiet
// loopback is rare enough for a benchmark.
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var open []net.Listener
	defer func() {
		for _, l := range open {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		open = append(open, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Loopback is 127.0.0.1:port.
func Loopback(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// WaitDial polls addr until it accepts a TCP connection, c exits, or ctx ends.
func WaitDial(ctx context.Context, c *Child, addr string) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		if err := c.Exited(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s to listen on %s: %w", c.Name, addr, errors.Join(ctx.Err(), err))
		case <-tick.C:
		}
	}
}

// tail returns the last n lines of the file at path, joined with " / ".
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], " / ")
}

// HasFlag reports whether `bin verb --help` lists flag (such as "--secure-xds-addr"):
// for passing a flag that only newer binaries have.
func HasFlag(bin, verb, flag string) bool {
	out, _ := exec.Command(bin, verb, "--help").CombinedOutput()
	return strings.Contains(string(out), flag+" ")
}
