package listener

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// soOriginalDst is Linux's SO_ORIGINAL_DST (netfilter_ipv4.h): the destination a
// connection had before a nat REDIRECT sent it to this socket.
const soOriginalDst = 80

// OriginalDst returns the destination an accepted TCP connection was addressed to
// before `trellis iptables` redirected it (SO_ORIGINAL_DST, IPv4). For a connection
// that was not redirected it is the local address.
func OriginalDst(conn net.Conn) (netip.AddrPort, error) {
	tc, ok := conn.(syscall.Conn) // a *net.TCPConn, or the listener's rawtcp.Conn
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("original destination: %T is not a TCP connection", conn)
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("original destination: %w", err)
	}
	var (
		mreq   *syscall.IPv6Mreq // 16 bytes: exactly a struct sockaddr_in
		sysErr error
	)
	if err := raw.Control(func(fd uintptr) {
		mreq, sysErr = syscall.GetsockoptIPv6Mreq(int(fd), syscall.SOL_IP, soOriginalDst)
	}); err != nil {
		return netip.AddrPort{}, fmt.Errorf("original destination: %w", err)
	}
	if sysErr != nil {
		return netip.AddrPort{}, fmt.Errorf("original destination: getsockopt SO_ORIGINAL_DST: %w", sysErr)
	}
	b := mreq.Multiaddr
	if family := binary.LittleEndian.Uint16(b[0:2]); family != syscall.AF_INET {
		return netip.AddrPort{}, errors.New("original destination: not an IPv4 address")
	}
	port := binary.BigEndian.Uint16(b[2:4])
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), port), nil
}
