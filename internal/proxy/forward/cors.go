package forward

import (
	"net/http"

	"trellis.dev/trellis/internal/proxy/runtime"
)

// preflight answers a CORS preflight request (OPTIONS with Origin and
// Access-Control-Request-Method) whose origin the route allows, as Envoy's CORS filter
// does, and reports whether it did. Other requests go on to the upstream.
func preflight(x *exchange, c *runtime.CORS) bool {
	r := x.req
	if r.Method != http.MethodOptions || r.Header.Get("Access-Control-Request-Method") == "" {
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" || !c.AllowOrigin(origin) {
		return false
	}
	h := x.rw.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	if c.AllowCredentials {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	if c.AllowMethods != "" {
		h.Set("Access-Control-Allow-Methods", c.AllowMethods)
	}
	if c.AllowHeaders != "" {
		h.Set("Access-Control-Allow-Headers", c.AllowHeaders)
	}
	if c.MaxAge != "" {
		h.Set("Access-Control-Max-Age", c.MaxAge)
	}
	x.rw.WriteHeader(http.StatusOK)
	return true
}

// corsHeaders adds the CORS headers to the response of a request whose origin the
// route allows.
func corsHeaders(x *exchange, h http.Header) {
	c := x.route.CORS
	origin := x.req.Header.Get("Origin")
	if origin == "" || !c.AllowOrigin(origin) {
		return
	}
	h.Set("Access-Control-Allow-Origin", origin)
	if c.AllowCredentials {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	if c.ExposeHeaders != "" {
		h.Set("Access-Control-Expose-Headers", c.ExposeHeaders)
	}
}
