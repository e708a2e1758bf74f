// Package xdstest gives the sidecar's tests a real xDS management server
// (go-control-plane's ADS server over a SnapshotCache, on loopback) and builders for the
// resources of docs/xds.md, written by hand so the tests do not depend on the control
// plane's generator.
package xdstest
