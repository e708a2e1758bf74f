// Package rawtcp gives the sidecar's TCP connections reads and writes that skip the Go
// runtime's system-call bookkeeping.
//
// Why: a read or write on a net.TCPConn enters the kernel through the runtime's
// syscall path, which marks the goroutine's processor as "in a system call" and, when
// the runtime's monitor thread (sysmon) is asleep, wakes it so that it could take the
// processor back should the call block. The sidecar's sockets are non-blocking and its
// calls never block, but at 1000 requests a second each sidecar enters the kernel some
// ten times per request, and the monitor, woken that often, polls every 20 µs: about
// an eighth of a sidecar's CPU in the profile (docs/benchmarks.md, "Where the CPU
// goes"). Conn makes the same read(2) and write(2) calls as the net package, through
// the connection's syscall.RawConn with a raw system call: the runtime's poller still
// waits for readiness and applies the deadlines, the runtime's syscall accounting is
// left out. A call never blocks (the socket is non-blocking: EAGAIN waits in the
// poller), so nothing is lost by not handing the processor off during it.
//
// Everything else (deadlines, CloseWrite, SyscallConn, addresses, Close) is the
// embedded *net.TCPConn's.
package rawtcp

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Conn is a TCP connection whose Read and Write use raw system calls.
type Conn struct {
	*net.TCPConn
	raw syscall.RawConn
}

var _ net.Conn = (*Conn)(nil)

// Wrap returns c as a *Conn when it is a *net.TCPConn, else c itself.
func Wrap(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	return &Conn{TCPConn: tc, raw: raw}
}

// Read reads up to len(p) bytes, waiting in the runtime's poller until some arrive,
// the connection's read deadline passes or it is closed. It returns io.EOF once the
// peer has closed its side.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var errno syscall.Errno
	err := c.raw.Read(func(fd uintptr) bool {
		for {
			r, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
			switch e {
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				return false
			}
			n, errno = int(r), e
			return true
		}
	})
	switch {
	case err != nil:
		return 0, c.opError("read", err)
	case errno != 0:
		return 0, c.opError("read", os.NewSyscallError("read", errno))
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// Write writes all of p, waiting in the runtime's poller while the socket's send
// buffer is full, until the write deadline passes or the connection is closed.
func (c *Conn) Write(p []byte) (int, error) {
	written := 0
	var errno syscall.Errno
	err := c.raw.Write(func(fd uintptr) bool {
		for written < len(p) {
			rest := p[written:]
			r, _, e := unix.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(&rest[0])), uintptr(len(rest)))
			switch e {
			case 0:
				written += int(r)
			case unix.EINTR:
			case unix.EAGAIN:
				return false
			default:
				errno = e
				return true
			}
		}
		return true
	})
	switch {
	case err != nil:
		return written, c.opError("write", err)
	case errno != 0:
		return written, c.opError("write", os.NewSyscallError("write", errno))
	}
	return written, nil
}

// opError wraps err as the net package does for a TCP connection's reads and writes.
func (c *Conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
