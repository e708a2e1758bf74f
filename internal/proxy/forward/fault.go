package forward

import (
	"net/http"
	"strconv"
	"time"

	"trellis.dev/trellis/internal/proxy/reqinfo"
	"trellis.dev/trellis/internal/proxy/runtime"
)

// fault injects the route's fault: first a delay (flag DI) for a sample of the
// requests, then an abort (flag FI) for a sample. It returns false when the request
// was answered (aborted, or the client left during the delay).
func (h *HTTP) fault(x *exchange, f *runtime.Fault) bool {
	if f.Delay > 0 && f.DelayFraction.Sample() {
		x.info.Flags.Set(reqinfo.DelayInjected)
		t := time.NewTimer(f.Delay)
		select {
		case <-t.C:
		case <-x.down.Done():
			t.Stop()
			return false
		}
	}
	if !f.HasAbort() || !f.AbortFraction.Sample() {
		return true
	}
	x.info.Flags.Set(reqinfo.FaultInjected)
	if f.HasGRPCAbort {
		// A gRPC status in a trailers-only response: HTTP 200 with grpc-status.
		hd := x.rw.Header()
		hd.Set("Content-Type", "application/grpc")
		hd.Set("Grpc-Status", strconv.Itoa(f.AbortGRPC))
		hd.Set("Grpc-Message", "fault filter abort")
		x.rw.WriteHeader(http.StatusOK)
		return false
	}
	http.Error(&x.rw, "fault filter abort", f.AbortStatus)
	return false
}
