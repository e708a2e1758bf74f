// Package names spells the names that the control plane and the proxy agree on:
// service hostnames as Kubernetes resolves them, and the names of xDS resources.
//
// It is a leaf package: it imports nothing of Trellis, so both sides may use it.
package names
