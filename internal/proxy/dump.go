package proxy

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"

	"google.golang.org/protobuf/encoding/protojson"

	"trellis.dev/trellis/internal/proxy/runtime"
)

// dumpTypes are the sections of /config_dump, in order.
var dumpTypes = []struct{ key, typeURL, short string }{
	{"listeners", runtime.ListenerType, "lds"},
	{"routes", runtime.RouteType, "rds"},
	{"clusters", runtime.ClusterType, "cds"},
	{"endpoints", runtime.EndpointType, "eds"},
	{"secrets", runtime.SecretType, "sds"},
}

type dumpSection struct {
	Version   string         `json:"version"`
	Resources []dumpResource `json:"resources"`
}

type dumpResource struct {
	Name     string          `json:"name"`
	Version  string          `json:"version"`
	Resource json.RawMessage `json:"resource"`
}

// WriteConfigDump writes the accepted resources of every type as JSON.
func (p *Proxy) WriteConfigDump(w io.Writer) error {
	p.mu.Lock()
	accepted := p.accepted
	p.mu.Unlock()
	out := map[string]any{
		"node":      p.cfg.Bootstrap.Node.ID,
		"ready":     p.Ready(),
		"connected": p.client.Connected(),
	}
	for _, dt := range dumpTypes {
		u := accepted[dt.typeURL]
		sec := dumpSection{Version: u.Version, Resources: []dumpResource{}}
		for _, name := range sortedNames(u) {
			r := u.Resources[name]
			raw, err := protojson.Marshal(r.Message)
			if err != nil {
				return fmt.Errorf("encoding %s %q: %w", dt.key, name, err)
			}
			sec.Resources = append(sec.Resources, dumpResource{Name: name, Version: r.Version, Resource: raw})
		}
		out[dt.key] = sec
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// WriteStats writes the xDS counters and the traffic counters, one "name value" line
// each.
func (p *Proxy) WriteStats(w io.Writer) error {
	connected := 0
	if p.client.Connected() {
		connected = 1
	}
	ready := 0
	if p.Ready() {
		ready = 1
	}
	if _, err := fmt.Fprintf(w, "server.ready %d\nxds.connected %d\n", ready, connected); err != nil {
		return err
	}
	for _, dt := range dumpTypes {
		c := p.client.Counts(dt.typeURL)
		if _, err := fmt.Fprintf(w, "xds.%s.update_success %d\nxds.%s.update_rejected %d\n", dt.short, c.Accepted, dt.short, c.Rejected); err != nil {
			return err
		}
	}
	if err := p.writeMembership(w); err != nil {
		return err
	}
	return p.stats.WriteText(w)
}

// writeMembership writes each cluster's endpoints balanced over and, when outlier
// detection is on, how many of them are ejected (Envoy's names).
func (p *Proxy) writeMembership(w io.Writer) error {
	states := p.clusters.States()
	for _, name := range slices.Sorted(maps.Keys(states)) {
		s := states[name]
		if _, err := fmt.Fprintf(w, "cluster.%s.membership_total %d\ncluster.%s.outlier_detection.ejections_active %d\n",
			name, len(s.Endpoints()), name, s.Ejected()); err != nil {
			return err
		}
	}
	return nil
}
