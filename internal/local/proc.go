package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// procSpec describes one child process that up supervises.
type procSpec struct {
	// Name prefixes the child's output lines ("[name] ...") and its log records.
	Name string
	Argv []string
	Env  []string // nil: up's own environment
	// StopSignal asks the child to stop; zero: SIGTERM.
	StopSignal syscall.Signal
	// Grace is how long the child has to exit after StopSignal before SIGKILL.
	Grace time.Duration
}

// procOptions are the parts of a proc shared by all children.
type procOptions struct {
	Logger *slog.Logger
	Stdout io.Writer // shared and locked by the caller, see lockedWriter
	Stderr io.Writer
	// OnChange is called after the child (re)started or exited; it must not block.
	OnChange func()
}

// proc keeps one child process running: it starts it in its own process group,
// restarts it with backoff when it exits, and stops it (and its process group) on
// Stop. Its goroutine is owned by the proc and ends in Stop.
type proc struct {
	spec   procSpec
	opts   procOptions
	cancel context.CancelFunc
	done   chan struct{}

	mu  sync.Mutex
	pid int
}

// Backoff bounds for restarting a child that exited.
const (
	minBackoff = 250 * time.Millisecond
	maxBackoff = 10 * time.Second
	// stableRun is how long a child must have run for its backoff to reset.
	stableRun = 10 * time.Second
)

func startProc(spec procSpec, opts procOptions) *proc {
	ctx, cancel := context.WithCancel(context.Background())
	p := &proc{spec: spec, opts: opts, cancel: cancel, done: make(chan struct{})}
	go p.run(ctx)
	return p
}

// PID is the process id of the running child, 0 when none is running.
func (p *proc) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pid
}

// Stop terminates the child and its process group and waits until it is gone.
func (p *proc) Stop() {
	p.cancel()
	<-p.done
}

func (p *proc) setPID(pid int) {
	p.mu.Lock()
	p.pid = pid
	p.mu.Unlock()
	if p.opts.OnChange != nil {
		p.opts.OnChange()
	}
}

func (p *proc) run(ctx context.Context) {
	defer close(p.done)
	log := p.opts.Logger.With("process", p.spec.Name)
	backoff := minBackoff
	for {
		started := time.Now()
		err := p.runOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(started) > stableRun {
			backoff = minBackoff
		}
		log.Warn("process exited; restarting", "error", err, "after", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// runOnce starts the child and waits until it exits or ctx is done, in which case it
// stops it. It returns why the child ended.
func (p *proc) runOnce(ctx context.Context) error {
	stdout := newPrefixWriter(p.opts.Stdout, p.spec.Name)
	stderr := newPrefixWriter(p.opts.Stderr, p.spec.Name)
	defer stdout.Flush()
	defer stderr.Flush()

	cmd := exec.Command(p.spec.Argv[0], p.spec.Argv[1:]...)
	cmd.Env = p.spec.Env
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	// A process group per child, so that stopping it stops what it started too; and
	// the kernel kills the child if up itself dies without stopping it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// Wait returns this long after the child exits even when a grandchild still holds
	// its output open.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", p.spec.Argv[0], err)
	}
	pid := cmd.Process.Pid
	p.setPID(pid)
	defer p.setPID(0)

	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err := <-waited:
		// Whatever the child left behind in its group goes with it.
		killGroup(pid, syscall.SIGKILL)
		if err == nil {
			err = errors.New("exited with status 0")
		}
		return err
	case <-ctx.Done():
	}
	sig := p.spec.StopSignal
	if sig == 0 {
		sig = syscall.SIGTERM
	}
	killGroup(pid, sig)
	grace := time.NewTimer(p.spec.Grace)
	defer grace.Stop()
	var err error
	select {
	case err = <-waited:
	case <-grace.C:
		p.opts.Logger.Warn("process did not stop in time; killing it", "process", p.spec.Name, "grace", p.spec.Grace)
		killGroup(pid, syscall.SIGKILL)
		err = <-waited
	}
	killGroup(pid, syscall.SIGKILL)
	return err
}

// killGroup signals every process in the group led by pid.
func killGroup(pid int, sig syscall.Signal) {
	// ESRCH (the group is already gone) is the expected outcome of most calls.
	_ = syscall.Kill(-pid, sig)
}

// lockedWriter serialises writes of whole lines from many children to one stream.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// prefixWriter writes each complete line it is given as "[prefix] line" to out.
// A partial line is held until its newline arrives or Flush is called.
type prefixWriter struct {
	out    io.Writer
	prefix []byte
	buf    []byte
}

func newPrefixWriter(out io.Writer, name string) *prefixWriter {
	return &prefixWriter{out: out, prefix: []byte("[" + name + "] ")}
}

func (w *prefixWriter) Write(b []byte) (int, error) {
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		if err := w.emit(w.buf[:i+1]); err != nil {
			return len(b), err
		}
		w.buf = w.buf[i+1:]
	}
	// A child that never writes a newline still gets its output shown.
	if len(w.buf) > 64<<10 {
		return len(b), w.Flush()
	}
	return len(b), nil
}

// Flush writes a held partial line, ending it with a newline.
func (w *prefixWriter) Flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	line := append(w.buf, '\n')
	w.buf = nil
	return w.emit(line)
}

func (w *prefixWriter) emit(line []byte) error {
	msg := make([]byte, 0, len(w.prefix)+len(line))
	msg = append(append(msg, w.prefix...), line...)
	_, err := w.out.Write(msg)
	return err
}
