package h1server

import (
	"context"
	"sync"
	"time"
)

// watch notices a client that goes away while its request is served: it cancels the
// request's context when the connection ends. Reading the connection is the only
// way to notice, and it costs a goroutine and two wake-ups, so only a request still
// running after watchDelay is watched, and only once its body has been read to its
// end (until then the handler reads the connection, and its reads fail when the
// client goes away). A fast request pays a timer reset and stop.
type watch struct {
	c     *conn
	timer *time.Timer

	mu      sync.Mutex
	state   watchState
	bodyEOF bool
	cancel  context.CancelFunc // the request's
	done    chan struct{}      // closed when the reading goroutine returns
}

type watchState int

const (
	watchOff   watchState = iota // no request
	watchArmed                   // a request runs; the timer is set
	watchDue                     // the timer fired; the body is still being read
	watchOn                      // a goroutine reads the connection
)

func (w *watch) init(c *conn) { w.c = c }

// start arms the watch for a request; bodyEOF: it has no body to read.
func (w *watch) start(cancel context.CancelFunc, bodyEOF bool) {
	w.mu.Lock()
	w.state, w.cancel, w.bodyEOF = watchArmed, cancel, bodyEOF
	w.mu.Unlock()
	if w.timer == nil {
		w.timer = time.AfterFunc(watchDelay, w.fire)
	} else {
		w.timer.Reset(watchDelay)
	}
}

// fire runs on the timer's goroutine: the request is slow.
func (w *watch) fire() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state != watchArmed {
		return
	}
	if !w.bodyEOF {
		w.state = watchDue
		return
	}
	w.begin()
}

// bodyDone is called when the request body has been read to its end.
func (w *watch) bodyDone() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.bodyEOF = true
	if w.state == watchDue {
		w.begin()
	}
}

// begin starts the reading goroutine. w.mu is held.
func (w *watch) begin() {
	w.state = watchOn
	w.done = make(chan struct{})
	// The head's deadline must not end the watch; stop sets one in the past.
	_ = w.c.nc.SetReadDeadline(time.Time{})
	go w.run(w.done, w.cancel)
}

// run waits for the connection to have something to read: the next request (left
// buffered for the serving goroutine) or its end, which cancels the request.
func (w *watch) run(done chan struct{}, cancel context.CancelFunc) {
	defer close(done)
	_, err := w.c.br.Peek(1)
	w.mu.Lock()
	stopped := w.state != watchOn
	w.mu.Unlock()
	if err != nil && !stopped {
		cancel()
	}
}

// stop ends the watch when the request is over (or hijacked): it unblocks a
// reading goroutine with a read deadline in the past and waits for it.
func (w *watch) stop() {
	if w.timer != nil {
		w.timer.Stop()
	}
	w.mu.Lock()
	on, done := w.state == watchOn, w.done
	w.state, w.done, w.cancel = watchOff, nil, nil
	w.mu.Unlock()
	if on {
		_ = w.c.nc.SetReadDeadline(aLongTimeAgo)
		<-done
	}
}

// close releases the timer when the connection ends.
func (w *watch) close() {
	w.stop()
}
