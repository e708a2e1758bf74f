package e2e

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/websocket"
)

// The dashboard test drives a real headless Chromium (the Debian package
// `chromium`) over the Chrome DevTools Protocol: JSON messages on a websocket,
// with one page target attached in flat session mode.

// chromiumBin is where the Debian package installs the browser.
const chromiumBin = "/usr/bin/chromium"

// browser is a running headless Chromium with one page.
type browser struct {
	cmd     *exec.Cmd
	exited  chan struct{}
	conn    *websocket.Conn
	session string

	mu         sync.Mutex // guards nextID, pending
	nextID     int
	pending    map[int]chan cdpResponse
	readerDone chan struct{}
}

type cdpResponse struct {
	ID     int             `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// startBrowser launches Chromium and opens a blank page of the given size.
// Cleanup closes it.
func startBrowser(ctx context.Context, t *testing.T, width, height int) *browser {
	t.Helper()
	if _, err := os.Stat(chromiumBin); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("chromium is not installed (.ci/run installs the Debian package): %v", err)
		}
		t.Skipf("chromium is not installed (apt-get install chromium): %v", err)
	}
	cmd := exec.Command(chromiumBin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--user-data-dir="+t.TempDir(), "--remote-debugging-port=0",
		// x/net/websocket always sends an Origin header; let it through.
		"--remote-allow-origins=http://127.0.0.1",
		fmt.Sprintf("--window-size=%d,%d", width, height), "about:blank")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	b := &browser{cmd: cmd, exited: make(chan struct{}), pending: map[int]chan cdpResponse{}, readerDone: make(chan struct{})}
	wsURL := make(chan string, 1)
	var logTail syncBuffer
	go func() {
		// Chromium prints "DevTools listening on ws://..." on stderr; the rest is
		// kept for the failure message.
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			if u, ok := strings.CutPrefix(line, "DevTools listening on "); ok {
				wsURL <- u
			}
			fmt.Fprintln(&logTail, line)
		}
		cmd.Wait()
		close(b.exited)
	}()
	t.Cleanup(func() {
		if b.conn != nil {
			b.conn.Close()
			<-b.readerDone
		}
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-b.exited:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-b.exited
		}
		if t.Failed() {
			t.Logf("chromium stderr (end):\n%s", tail(logTail.String(), 30))
		}
	})
	var u string
	select {
	case u = <-wsURL:
	case <-b.exited:
		t.Fatalf("chromium exited before listening:\n%s", logTail.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("chromium did not print its DevTools address within 30s:\n%s", logTail.String())
	}
	if b.conn, err = websocket.Dial(u, "", "http://127.0.0.1"); err != nil {
		t.Fatalf("connecting to chromium's DevTools at %s: %v", u, err)
	}
	go b.read()

	var target struct {
		TargetID string `json:"targetId"`
	}
	if err := b.call(ctx, "", "Target.createTarget", map[string]any{"url": "about:blank"}, &target); err != nil {
		t.Fatal(err)
	}
	var attached struct {
		SessionID string `json:"sessionId"`
	}
	if err := b.call(ctx, "", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &attached); err != nil {
		t.Fatal(err)
	}
	b.session = attached.SessionID
	if err := b.call(ctx, b.session, "Emulation.setDeviceMetricsOverride",
		map[string]any{"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}, nil); err != nil {
		t.Fatal(err)
	}
	return b
}

// read dispatches responses to their callers until the connection closes; events
// are not used.
func (b *browser) read() {
	defer close(b.readerDone)
	for {
		var msg cdpResponse
		if err := websocket.JSON.Receive(b.conn, &msg); err != nil {
			if err == io.EOF || strings.Contains(err.Error(), "closed") {
				return
			}
			if _, ok := err.(*json.SyntaxError); ok {
				continue
			}
			return
		}
		if msg.ID == 0 {
			continue
		}
		b.mu.Lock()
		ch := b.pending[msg.ID]
		delete(b.pending, msg.ID)
		b.mu.Unlock()
		if ch != nil {
			ch <- msg
		}
	}
}

// call sends a DevTools command (to the page when session is set) and decodes its
// result into out.
func (b *browser) call(ctx context.Context, session, method string, params any, out any) error {
	ch := make(chan cdpResponse, 1)
	b.mu.Lock()
	b.nextID++
	id := b.nextID
	b.pending[id] = ch
	b.mu.Unlock()
	msg := map[string]any{"id": id, "method": method, "params": params}
	if session != "" {
		msg["sessionId"] = session
	}
	if err := websocket.JSON.Send(b.conn, msg); err != nil {
		return fmt.Errorf("devtools %s: %w", method, err)
	}
	select {
	case <-ctx.Done():
		return fmt.Errorf("devtools %s: %w", method, ctx.Err())
	case <-b.readerDone:
		return fmt.Errorf("devtools %s: connection closed", method)
	case resp := <-ch:
		if resp.Error != nil {
			return fmt.Errorf("devtools %s: %d %s", method, resp.Error.Code, resp.Error.Message)
		}
		if out != nil {
			return json.Unmarshal(resp.Result, out)
		}
		return nil
	}
}

// navigate opens url in the page.
func (b *browser) navigate(ctx context.Context, url string) error {
	var res struct {
		ErrorText string `json:"errorText"`
	}
	if err := b.call(ctx, b.session, "Page.navigate", map[string]any{"url": url}, &res); err != nil {
		return err
	}
	if res.ErrorText != "" {
		return fmt.Errorf("navigating to %s: %s", url, res.ErrorText)
	}
	return nil
}

// eval evaluates a JavaScript expression in the page and decodes its value (the
// expression should return something JSON can carry).
func (b *browser) eval(ctx context.Context, expr string, out any) error {
	var res struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	if err := b.call(ctx, b.session, "Runtime.evaluate",
		map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true}, &res); err != nil {
		return err
	}
	if e := res.ExceptionDetails; e != nil {
		return fmt.Errorf("evaluating %.80q: %s %s", expr, e.Text, e.Exception.Description)
	}
	return json.Unmarshal(res.Result.Value, out)
}

// screenshot captures the whole page as PNG.
func (b *browser) screenshot(ctx context.Context) ([]byte, error) {
	var res struct {
		Data string `json:"data"`
	}
	if err := b.call(ctx, b.session, "Page.captureScreenshot",
		map[string]any{"format": "png", "captureBeyondViewport": true}, &res); err != nil {
		return nil, err
	}
	return base64.StdEncoding.DecodeString(res.Data)
}
