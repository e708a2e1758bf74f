package lb

// Picker chooses an endpoint address (host:port) for one request or connection. It is
// safe for concurrent use. ok is false when the set has no endpoint.
type Picker interface {
	Pick() (addr string, ok bool)
}
