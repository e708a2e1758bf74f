package serverlimits

import (
	"net"

	"google.golang.org/grpc"
)

// GRPCOptions are the limits of a gRPC server (the control plane's xDS and CA
// listeners): streams per connection, header list size and the time a new
// connection has to complete its handshake (TLS and HTTP/2 settings). grpc-go's own
// bounds stay in force: 4 MiB messages, and its keepalive enforcement (a client
// pinging more often than every 5 minutes without a stream is disconnected).
func (l Limits) GRPCOptions() []grpc.ServerOption {
	l = l.WithDefaults()
	return []grpc.ServerOption{
		grpc.MaxConcurrentStreams(uint32(l.H2MaxConcurrentStreams)),
		grpc.MaxHeaderListSize(uint32(l.MaxHeaderBytes)),
		grpc.ConnectionTimeout(l.HandshakeTimeout),
	}
}

// ConnListener caps the open connections of ln at MaxConnections, as Listener does,
// without the HTTP/1.x guard: for servers of other protocols (gRPC).
func (l Limits) ConnListener(ln net.Listener) net.Listener {
	l = l.WithDefaults()
	return &listener{Listener: ln, lim: l, counter: NewConnCounter(l.MaxConnections), raw: true}
}
