// Package httpserve holds what the sidecar's small HTTP servers (admin, metrics)
// share: serving until a context ends, and the readiness handler. It starts one
// goroutine per Serve call, which Serve waits for before it returns.
package httpserve

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
)

// Serve serves srv on ln until ctx ends, then closes srv and waits for it to stop.
// It returns nil after a close caused by ctx, and the error of a server that stopped
// on its own.
func Serve(ctx context.Context, srv *http.Server, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		srv.Close()
		if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
}

// Ready answers 200 "ready" when ready() is true and 503 "not ready" otherwise, in
// plain text.
func Ready(ready func() bool) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "not ready\n")
			return
		}
		io.WriteString(w, "ready\n")
	}
}
