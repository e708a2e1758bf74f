// Package iptables builds and applies the nat rules that make a pod's traffic go
// through its sidecar: inbound TCP is redirected to the proxy's inbound port (15006),
// outbound TCP to its outbound port (15001), except the proxy's own traffic (by UID)
// and loopback, with include/exclude lists of ports and CIDRs.
//
// The rules live in Trellis's own chains (TRELLIS_INBOUND, TRELLIS_IN_REDIRECT,
// TRELLIS_OUTPUT, TRELLIS_REDIRECT) reached from PREROUTING and OUTPUT, and are
// applied as one iptables-restore transaction; applying twice is applying once.
package iptables
