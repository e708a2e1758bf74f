package runtime

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// DNSMetadataKey is the filter_metadata key under which a capture listener carries
// the sidecar's DNS table (docs/xds.md "DNS table"): host -> list of IP strings.
const DNSMetadataKey = "trellis.dns"

// maxDNSHosts bounds the DNS table, so that a control plane cannot make the sidecar
// hold an unbounded map.
const maxDNSHosts = 100000

// parseDNSTable reads a listener's DNS table: only on a capture listener
// (use_original_dst), only under DNSMetadataKey, each host a DNS name and each value a
// list of IP addresses.
func parseDNSTable(l *listenerv3.Listener) (map[string][]netip.Addr, error) {
	md := l.GetMetadata()
	if md == nil {
		return nil, nil
	}
	if !l.GetUseOriginalDst().GetValue() {
		return nil, fieldErrorf("metadata", "is only accepted on a capture listener (use_original_dst), where it holds the DNS table")
	}
	return dnsTableFrom(md)
}

func dnsTableFrom(md *corev3.Metadata) (map[string][]netip.Addr, error) {
	out := map[string][]netip.Addr{}
	for key, s := range md.GetFilterMetadata() {
		if key != DNSMetadataKey {
			return nil, fieldErrorf("metadata.filter_metadata["+key+"]", "is not supported (only %q, the DNS table)", DNSMetadataKey)
		}
		fields := s.GetFields()
		if len(fields) > maxDNSHosts {
			return nil, fieldErrorf("metadata.filter_metadata["+key+"]", "holds %d hosts, more than %d", len(fields), maxDNSHosts)
		}
		for host, v := range fields {
			at := "metadata.filter_metadata[" + key + "][" + host + "]"
			if !validDNSName(host) {
				return nil, fieldErrorf(at, "%q is not a DNS name", host)
			}
			ips, err := dnsAddrs(v)
			if err != nil {
				return nil, fieldErrorf(at, "%v", err)
			}
			out[strings.ToLower(host)] = ips
		}
	}
	return out, nil
}

func dnsAddrs(v *structpb.Value) ([]netip.Addr, error) {
	list, ok := v.GetKind().(*structpb.Value_ListValue)
	if !ok || len(list.ListValue.GetValues()) == 0 {
		return nil, errors.New("want a non-empty list of IP addresses")
	}
	var ips []netip.Addr
	for _, item := range list.ListValue.GetValues() {
		ip, err := netip.ParseAddr(item.GetStringValue())
		if err != nil {
			return nil, fmt.Errorf("%q is not an IP address", item.GetStringValue())
		}
		ips = append(ips, ip.Unmap())
	}
	return ips, nil
}

// validDNSName accepts host names as Kubernetes and ServiceEntries write them:
// dot-separated labels of letters, digits, '-' and '_', at most 253 characters.
func validDNSName(host string) bool {
	if host == "" || len(host) > 253 {
		return false
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// mergeDNS adds a listener's DNS table to the table's.
func (t *Table) mergeDNS(hosts map[string][]netip.Addr) {
	if len(hosts) == 0 {
		return
	}
	if t.DNS == nil {
		t.DNS = make(map[string][]netip.Addr, len(hosts))
	}
	maps.Copy(t.DNS, hosts)
}
