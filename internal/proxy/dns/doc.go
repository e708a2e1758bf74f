// Package dns is the sidecar's DNS server: in a pod, `trellis iptables
// --redirect-dns` sends the app's port-53 queries (UDP and TCP) to it, so that the
// app resolves the mesh's Services by name even where no cluster DNS knows them.
//
// It answers A and AAAA queries for the hosts of its table (host -> virtual IPs, the
// "DNS table" the control plane sends on the capture listener, docs/xds.md) itself,
// authoritatively, with a short TTL; a host of the table asked for another type gets
// an empty answer. Every other query is forwarded, as it came, to the resolvers of
// /etc/resolv.conf in turn (the sidecar's own traffic is not redirected, by its UID);
// when none answers, the client gets SERVFAIL. Packets are parsed and written by
// github.com/miekg/dns.
//
// Concurrency: the table is swapped atomically (SetTable) while queries are served;
// each query runs on its own goroutine (miekg/dns's server).
package dns
