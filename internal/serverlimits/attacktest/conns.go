package attacktest

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

// Flood opens n connections to addr that send nothing, and returns how many the
// server closed within wait (those beyond its limit are closed at once) and a
// function that closes the rest.
func Flood(addr string, n int, wait time.Duration) (closed int, release func(), err error) {
	conns := make([]net.Conn, 0, n)
	release = func() {
		for _, c := range conns {
			c.Close()
		}
	}
	for range n {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			release()
			return 0, func() {}, fmt.Errorf("flood connection %d: %w", len(conns), err)
		}
		conns = append(conns, c)
	}
	deadline := time.Now().Add(wait)
	for _, c := range conns {
		// Past the common deadline, still give each connection a moment: a read
		// with a deadline in the past fails without looking.
		d := deadline
		if soon := time.Now().Add(5 * time.Millisecond); soon.After(d) {
			d = soon
		}
		c.SetReadDeadline(d)
		if _, err := c.Read(make([]byte, 1)); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			closed++
		}
	}
	return closed, release, nil
}

// KeepAlive is a well-behaved client on one keep-alive connection.
type KeepAlive struct {
	c    net.Conn
	br   *bufio.Reader
	host string
}

// Dial opens the client's connection (over TLS when cfg is set).
func Dial(addr string, cfg *tls.Config, host string) (*KeepAlive, error) {
	c, err := dial(addr, cfg, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return &KeepAlive{c: c, br: bufio.NewReader(c), host: host}, nil
}

// Get sends a GET for path on the connection and returns the status.
func (k *KeepAlive) Get(path string) (int, error) {
	k.c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(k.c, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, k.host); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(k.br, nil)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// WaitClosed waits up to timeout for the server to close the connection.
func (k *KeepAlive) WaitClosed(timeout time.Duration) error {
	k.c.SetReadDeadline(time.Now().Add(timeout))
	_, err := k.br.ReadByte()
	switch {
	case err == nil:
		return errors.New("the server sent bytes nobody asked for")
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("still open after %v", timeout)
	}
	return nil
}

// Close closes the connection.
func (k *KeepAlive) Close() error { return k.c.Close() }

// Slowloris opens n connections that each send the start of a request head and
// then a byte every interval, until the server closes them or within passes. It
// returns how many the server closed and the bytes sent in all.
func Slowloris(addr string, n int, interval, within time.Duration) (closed, sent int, err error) {
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return 0, 0, err
		}
		conns = append(conns, c)
		k, _ := io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ")
		sent += k
	}
	open := make([]bool, n)
	for i := range open {
		open[i] = true
	}
	deadline := time.Now().Add(within)
	for closed < n && time.Now().Before(deadline) {
		for i, c := range conns {
			if !open[i] {
				continue
			}
			if _, err := c.Write([]byte("s")); err != nil {
				open[i] = false
				closed++
				continue
			}
			sent++
			// A closed connection shows at the next read.
			c.SetReadDeadline(time.Now().Add(time.Millisecond))
			if _, err := c.Read(make([]byte, 1)); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
				open[i] = false
				closed++
			}
		}
		time.Sleep(interval) // the attack's pace, not a wait for a condition
	}
	return closed, sent, nil
}
