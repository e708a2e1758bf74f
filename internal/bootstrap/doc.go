// Package bootstrap defines what a sidecar starts with and what it tells the control
// plane about itself.
//
// A Bootstrap is the proxy's start-up file (`trellis proxy --bootstrap FILE`): its xDS
// node, where the control plane is, and its admin address. The node's Metadata is the
// registration contract: the control plane reads it from the first xDS request of a
// stream, makes the workload an endpoint of its services while the stream lives, and
// places the sidecar's listeners at the addresses it names.
//
// It is a leaf package shared by the proxy, the control plane and `trellis up`.
package bootstrap
