package forward

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"trellis.dev/trellis/internal/lb"
	"trellis.dev/trellis/internal/proxy/cluster"
	"trellis.dev/trellis/internal/proxy/reqinfo"
	"trellis.dev/trellis/internal/proxy/runtime"
	"trellis.dev/trellis/internal/proxy/stats"
)

var (
	errRouteTimeout  = errors.New("route timeout")
	errPerTryTimeout = errors.New("per-try timeout")
)

// localError is a failure the sidecar answers itself: its status, message and flag.
type localError struct {
	status int
	msg    string
	flag   reqinfo.Flag
	err    error
}

func (e *localError) Error() string { return e.msg }
func (e *localError) Unwrap() error { return e.err }

var (
	errNoHealthy = &localError{status: http.StatusServiceUnavailable, msg: "no healthy upstream", flag: reqinfo.NoHealthyUpstream}
	errOverflow  = &localError{status: http.StatusServiceUnavailable, msg: "upstream overflow", flag: reqinfo.UpstreamOverflow}
	errTimeout   = &localError{status: http.StatusGatewayTimeout, msg: "upstream request timeout", flag: reqinfo.UpstreamRequestTimeout}
)

// attempts is the transport of one cluster's reverse proxy: it sends a request to an
// endpoint picked for it, under the cluster's circuit breakers, and retries as the
// route's policy says, each attempt on another endpoint when there is one. The
// response it returns holds the request's breaker slots until its body is closed.
type attempts struct {
	base  http.RoundTripper
	state *cluster.State
	http2 bool
	// maxPerConn closes an HTTP/1.1 connection after this many requests (0: never).
	maxPerConn uint32
	stats      *stats.Counters
	// retired is set when the pool is no longer in the table (its settings changed,
	// its TLS for instance): connections are closed as requests end, not reused.
	retired   atomic.Bool
	closeIdle func()
}

func (t *attempts) RoundTrip(req *http.Request) (*http.Response, error) {
	x := exchangeFrom(req.Context())
	br := t.state.Breakers()
	if !br.StartRequest() {
		x.info.Flags.Set(reqinfo.UpstreamOverflow)
		return nil, errOverflow
	}
	var policy *runtime.RetryPolicy
	if x.route != nil && x.route.Action != nil {
		policy = x.route.Action.Retry
	}
	done := &x.done
	*done = attemptDone{breakers: br, request: true, pool: t}
	tried := x.triedBuf[:0]
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			done.releaseRetry()
			if !br.StartRetry() {
				t.stats.RetryOverflow.Add(1)
				return done.fail(x, done.lastResp, done.lastErr)
			}
			done.retry = true
			t.stats.Retries.Add(1)
			if err := sleepCtx(x.ctx(), policy.Backoff(attempt, rand.Float64())); err != nil {
				done.closeLast()
				return done.fail(x, nil, t.ctxError(x, err))
			}
			done.closeLast()
		}
		ep := t.state.Pick(lb.Request{Hash: x.hash, HasHash: x.hasHash, Tried: tried})
		if ep == nil {
			x.info.Flags.Set(reqinfo.NoHealthyUpstream)
			return done.fail(x, nil, errNoHealthy)
		}
		x.info.Host, x.info.Attempts = ep.Addr, attempt+1
		resp, err, failure := t.try(x, req, attempt, ep, done)
		retriable := false
		switch {
		case err != nil:
			retriable = policy != nil && failure != 0 && policy.RetriableFailure(failure)
		default:
			retriable = policy != nil && policy.RetriableStatus(resp.StatusCode, grpcStatus(resp.Header))
		}
		if !retriable {
			return done.finish(x, resp, err)
		}
		if attempt >= int(policy.NumRetries) || !x.replayable || x.ctx().Err() != nil {
			if attempt > 0 {
				x.info.Flags.Set(reqinfo.UpstreamRetryLimitExceeded)
			}
			return done.finish(x, resp, err)
		}
		done.lastResp, done.lastErr = resp, err
		tried = append(tried, ep)
	}
}

// try makes one attempt on ep. It returns the response, or an error and the kind of
// failure for the retry policy (0 when the failure is not the upstream's: the route
// timeout or the client going away).
func (t *attempts) try(x *exchange, req *http.Request, attempt int, ep *lb.Endpoint, done *attemptDone) (*http.Response, error, runtime.Failure) {
	if !t.http2 {
		if err := done.breakers.AcquireConn(x.ctx()); err != nil {
			if errors.Is(err, cluster.ErrOverflow) {
				x.info.Flags.Set(reqinfo.UpstreamOverflow)
				return nil, errOverflow, 0
			}
			return nil, t.ctxError(x, err), 0
		}
		done.conn = true
	}
	ep.Begin()
	done.endpoint = ep
	// Without a per-try timeout an attempt runs in the request's context; with one, in
	// a child context that the timer cancels until the response headers arrive.
	tryCtx := x.ctx()
	var timer *time.Timer
	if p := x.route.Action.Retry; p != nil && p.PerTryTimeout > 0 {
		var cancel context.CancelCauseFunc
		tryCtx, cancel = context.WithCancelCause(x.ctx())
		done.cancelTry = cancel
		timer = time.AfterFunc(p.PerTryTimeout, func() { cancel(errPerTryTimeout) })
	}
	areq := req
	switch {
	case attempt > 0:
		areq = req.Clone(tryCtx)
		if x.replay != nil {
			areq.Body = io.NopCloser(bytes.NewReader(x.replay))
		}
	case tryCtx != req.Context():
		areq = req.WithContext(tryCtx)
	}
	areq.URL.Host = ep.Addr
	if t.maxPerConn > 0 {
		trace := &httptrace.ClientTrace{}
		areq = areq.WithContext(httptrace.WithClientTrace(tryCtx, trace))
		trace.GotConn = closeAfter(areq, t.maxPerConn)
	}
	resp, err := t.base.RoundTrip(areq)
	if timer != nil && !timer.Stop() && err == nil {
		// The per-try timeout fired as the headers arrived: it stands.
		resp.Body.Close()
		resp, err = nil, errPerTryTimeout
	}
	if err == nil {
		t.state.Report(ep, lb.Result{Status: resp.StatusCode})
		return resp, nil, 0
	}
	done.releaseAttempt()
	switch cause := context.Cause(tryCtx); {
	case x.down.Err() != nil:
		return nil, err, 0
	case errors.Is(cause, errRouteTimeout):
		t.state.Report(ep, lb.Result{LocalFailure: true})
		x.info.Flags.Set(reqinfo.UpstreamRequestTimeout)
		return nil, errTimeout, 0
	case errors.Is(cause, errPerTryTimeout) || errors.Is(err, errPerTryTimeout):
		t.state.Report(ep, lb.Result{LocalFailure: true})
		return nil, errTimeout, runtime.PerTryTimeout
	}
	t.state.Report(ep, lb.Result{LocalFailure: true})
	uerr, failure := upstreamError(err)
	return nil, uerr, failure
}

// upstreamError classifies a transport error: connect failure, refused stream or
// reset.
func upstreamError(err error) (error, runtime.Failure) {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return &localError{status: http.StatusServiceUnavailable, msg: "upstream connect error", flag: reqinfo.UpstreamConnectFailure, err: err}, runtime.ConnectFailure
	}
	failure := runtime.Reset
	if strings.Contains(err.Error(), "REFUSED_STREAM") {
		failure = runtime.RefusedStream
	}
	return &localError{status: http.StatusServiceUnavailable, msg: "upstream reset before response", flag: reqinfo.UpstreamConnectionTermination, err: err}, failure
}

// ctxError is the error for a wait cut short by ctx: the route's timeout, or the
// client going away.
func (t *attempts) ctxError(x *exchange, err error) error {
	if x.down.Err() == nil && errors.Is(context.Cause(x.ctx()), errRouteTimeout) {
		x.info.Flags.Set(reqinfo.UpstreamRequestTimeout)
		return errTimeout
	}
	return err
}

func grpcStatus(h http.Header) int {
	v, ok := h["Grpc-Status"]
	if !ok || len(v) == 0 {
		return -1
	}
	n, err := strconv.Atoi(v[0])
	if err != nil {
		return -1
	}
	return n
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// closeAfter counts the requests on each upstream connection and asks for the
// connection to be closed after the request that reaches max: req, the request the
// transport is given, says "Connection: close" and the transport does not reuse it.
func closeAfter(req *http.Request, max uint32) func(httptrace.GotConnInfo) {
	return func(info httptrace.GotConnInfo) {
		if c, ok := info.Conn.(*countedConn); ok && c.uses.Add(1) >= max {
			req.Close = true
		}
	}
}

// attemptDone holds what the attempt in progress must give back: its endpoint's
// request count, its connection slot, its per-try context, its retry slot, and at
// the end the request's slot. It lives in the exchange; the attempts of one request
// run one after another.
type attemptDone struct {
	breakers  *cluster.Breakers
	endpoint  *lb.Endpoint
	conn      bool
	retry     bool
	request   bool
	cancelTry context.CancelCauseFunc
	pool      *attempts

	lastResp *http.Response
	lastErr  error
}

func (d *attemptDone) releaseAttempt() {
	if d.endpoint != nil {
		d.endpoint.End()
		d.endpoint = nil
	}
	if d.conn {
		d.breakers.ReleaseConn()
		d.conn = false
	}
	if d.cancelTry != nil {
		d.cancelTry(nil)
		d.cancelTry = nil
	}
}

func (d *attemptDone) releaseRetry() {
	if d.retry {
		d.breakers.EndRetry()
		d.retry = false
	}
}

// closeLast discards the response of the previous attempt before the next.
func (d *attemptDone) closeLast() {
	if d.lastResp != nil {
		io.Copy(io.Discard, io.LimitReader(d.lastResp.Body, 64<<10))
		d.lastResp.Body.Close()
		d.lastResp = nil
	}
	d.releaseAttempt()
}

func (d *attemptDone) releaseAll() {
	d.releaseAttempt()
	d.releaseRetry()
	if d.request {
		d.breakers.EndRequest()
		d.request = false
	}
	if d.pool != nil && d.pool.retired.Load() {
		d.pool.closeIdle() // the connection just went idle in a pool nobody uses
	}
}

// fail ends the exchange with the previous attempt's result when there is one
// (a refused retry returns what the last attempt got), else with err.
func (d *attemptDone) fail(x *exchange, resp *http.Response, err error) (*http.Response, error) {
	if resp != nil {
		return d.finish(x, resp, nil)
	}
	if d.lastErr != nil && !errors.Is(err, errTimeout) && err != errNoHealthy {
		err = d.lastErr
	}
	return d.finish(x, nil, err)
}

// finish returns the final result: a response whose body releases everything when
// closed, or an error with its flag recorded.
func (d *attemptDone) finish(x *exchange, resp *http.Response, err error) (*http.Response, error) {
	if err != nil {
		d.releaseAll()
		var le *localError
		if errors.As(err, &le) {
			x.info.Flags.Set(le.flag)
		}
		return nil, err
	}
	x.respBody = releasingBody{ReadCloser: resp.Body, done: d}
	resp.Body = &x.respBody
	if rw, ok := x.respBody.ReadCloser.(io.ReadWriteCloser); ok && resp.StatusCode == http.StatusSwitchingProtocols {
		// The body of a 101 is the upgraded connection, which the reverse proxy
		// writes to as well.
		resp.Body = &upgradedBody{releasingBody: &x.respBody, w: rw}
	}
	return resp, nil
}

// upgradedBody is the releasing body of a 101 response: the upgraded connection.
type upgradedBody struct {
	*releasingBody
	w io.Writer
}

func (b *upgradedBody) Write(p []byte) (int, error) { return b.w.Write(p) }

// releasingBody gives back an exchange's slots when the response body is closed.
type releasingBody struct {
	io.ReadCloser
	once sync.Once
	done *attemptDone
}

func (b *releasingBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.done.releaseAll)
	return err
}
