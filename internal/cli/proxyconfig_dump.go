package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"trellis.dev/trellis/internal/local"
)

// dumpSections are the /config_dump sections `proxy-config` shows as tables.
var dumpSections = []struct {
	name, short string
	write       func(io.Writer, []dumpResource) error
}{
	{"listeners", "listeners: name, address, direction, filter chains and where each sends traffic", writeListeners},
	{"routes", "routes: one row per route, with its virtual host, domains, match and destination", writeRoutes},
	{"clusters", "clusters: name, discovery type, connect timeout, TLS", writeClusters},
	{"endpoints", "endpoints: one row per endpoint of each cluster, with its workload", writeEndpoints},
}

// proxyTarget is how a proxy-config command finds the sidecar's admin address.
type proxyTarget struct {
	admin, state string
}

func (p *proxyTarget) flags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&p.admin, "admin", "", "the sidecar's admin address (host:port), e.g. 127.0.0.1:15000 after kubectl port-forward POD 15000")
	cmd.Flags().StringVar(&p.state, "state", "", "the state file of `trellis up --state`, in which to look up the workload TARGET's admin address")
}

// resolve returns the admin address of the sidecar args name (at most one).
func (p *proxyTarget) resolve(args []string) (string, error) {
	target := ""
	if len(args) > 0 {
		target = args[0]
	}
	switch {
	case p.admin != "" && target != "":
		return "", fmt.Errorf("give TARGET %q or --admin, not both", target)
	case p.admin != "":
		return p.admin, nil
	case target == "":
		return "", errors.New("name a TARGET (a workload of --state) or give --admin ADDR")
	case p.state == "":
		return "", fmt.Errorf("TARGET %q: a pod's sidecar admin is not reachable from here; run `kubectl port-forward %s 15000` and pass --admin 127.0.0.1:15000 (in local mode, pass --state FILE of `trellis up`)", target, target)
	}
	data, err := os.ReadFile(p.state)
	if err != nil {
		return "", fmt.Errorf("reading the state file: %w", err)
	}
	var st local.State
	if err := json.Unmarshal(data, &st); err != nil {
		return "", fmt.Errorf("decoding the state file %s: %w", p.state, err)
	}
	var names []string
	for _, w := range st.Workloads {
		if w.Name == target || w.Namespace+"/"+w.Name == target {
			return w.Admin, nil
		}
		names = append(names, w.Name)
	}
	return "", fmt.Errorf("TARGET %q is not a workload of %s (it has %s)", target, p.state, strings.Join(names, ", "))
}

func newProxyConfigDumpCmd(section string, short string, write func(io.Writer, []dumpResource) error) *cobra.Command {
	var (
		target proxyTarget
		output string
	)
	cmd := &cobra.Command{
		Use:   section + " (TARGET --state FILE | --admin ADDR)",
		Short: "Show a sidecar's " + short,
		Long: section + ` reads GET /config_dump from a sidecar's admin address and prints its accepted
` + section + ` as a table (-o json: the section as the sidecar reports it). TARGET is a workload
of trellis up's --state file; --admin is the address itself. A pod's sidecar is not
reachable directly: run kubectl port-forward POD 15000 and pass --admin 127.0.0.1:15000.`,
		Example: `  trellis proxy-config ` + section + ` web --state state.json
  trellis proxy-config ` + section + ` --admin 127.0.0.1:15000 -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			admin, err := target.resolve(args)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			dump, err := fetchConfigDump(ctx, admin)
			if err != nil {
				return err
			}
			sec := dump.section(section)
			switch output {
			case "json":
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(sec)
			case "table", "":
				return write(cmd.OutOrStdout(), sec.Resources)
			}
			return fmt.Errorf("--output: %q is not table or json", output)
		},
	}
	target.flags(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	return cmd
}

// configDump is the sidecar's GET /config_dump (internal/proxy: WriteConfigDump).
type configDump struct {
	Node      string      `json:"node"`
	Listeners dumpSection `json:"listeners"`
	Routes    dumpSection `json:"routes"`
	Clusters  dumpSection `json:"clusters"`
	Endpoints dumpSection `json:"endpoints"`
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

func (d *configDump) section(name string) dumpSection {
	switch name {
	case "listeners":
		return d.Listeners
	case "routes":
		return d.Routes
	case "clusters":
		return d.Clusters
	}
	return d.Endpoints
}

// fetchConfigDump reads and decodes GET /config_dump from a sidecar's admin address.
func fetchConfigDump(ctx context.Context, admin string) (*configDump, error) {
	url := "http://" + admin + "/config_dump"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("reading %s: %s: %s", url, resp.Status, strings.TrimSpace(string(raw)))
	}
	var d configDump
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", url, err)
	}
	return &d, nil
}

// The parts of the resources (protojson) the tables show.
type (
	socketAddr struct {
		SocketAddress struct {
			Address   string `json:"address"`
			PortValue int    `json:"portValue"`
		} `json:"socketAddress"`
	}
	typedFilter struct {
		Name        string `json:"name"`
		TypedConfig struct {
			Type        string                            `json:"@type"`
			Cluster     string                            `json:"cluster"`
			RDS         *struct{ RouteConfigName string } `json:"rds"`
			RouteConfig *routeConfig                      `json:"routeConfig"`
		} `json:"typedConfig"`
	}
	listener struct {
		Address          socketAddr `json:"address"`
		TrafficDirection string     `json:"trafficDirection"`
		FilterChains     []struct {
			Name             string        `json:"name"`
			Filters          []typedFilter `json:"filters"`
			FilterChainMatch *struct {
				TransportProtocol string `json:"transportProtocol"`
			} `json:"filterChainMatch"`
			TransportSocket *struct{ Name string } `json:"transportSocket"`
		} `json:"filterChains"`
	}
	routeConfig struct {
		Name         string `json:"name"`
		VirtualHosts []struct {
			Name    string   `json:"name"`
			Domains []string `json:"domains"`
			Routes  []struct {
				Match  map[string]json.RawMessage `json:"match"`
				Route  *routeAction               `json:"route"`
				Direct *struct {
					Status int `json:"status"`
				} `json:"directResponse"`
				Redirect json.RawMessage `json:"redirect"`
			} `json:"routes"`
		} `json:"virtualHosts"`
	}
	routeAction struct {
		Cluster          string `json:"cluster"`
		WeightedClusters *struct {
			Clusters []struct {
				Name   string `json:"name"`
				Weight int    `json:"weight"`
			} `json:"clusters"`
		} `json:"weightedClusters"`
		Timeout string `json:"timeout"`
	}
	cluster struct {
		Name             string `json:"name"`
		Type             string `json:"type"`
		ConnectTimeout   string `json:"connectTimeout"`
		LbPolicy         string `json:"lbPolicy"`
		EdsClusterConfig *struct {
			ServiceName string `json:"serviceName"`
		} `json:"edsClusterConfig"`
		LoadAssignment  *loadAssignment `json:"loadAssignment"`
		TransportSocket *struct {
			Name string `json:"name"`
		} `json:"transportSocket"`
	}
	loadAssignment struct {
		ClusterName string `json:"clusterName"`
		Endpoints   []struct {
			LbEndpoints []struct {
				Endpoint struct {
					Address socketAddr `json:"address"`
				} `json:"endpoint"`
				HealthStatus        string `json:"healthStatus"`
				LoadBalancingWeight *int   `json:"loadBalancingWeight"`
				Metadata            struct {
					FilterMetadata struct {
						Trellis map[string]string `json:"trellis"`
					} `json:"filterMetadata"`
				} `json:"metadata"`
			} `json:"lbEndpoints"`
		} `json:"endpoints"`
	}
)

func (a socketAddr) String() string {
	if a.SocketAddress.Address == "" {
		return "-"
	}
	return a.SocketAddress.Address + ":" + strconv.Itoa(a.SocketAddress.PortValue)
}

// decodeEach decodes every resource into a T and calls row with it.
func decodeEach[T any](rs []dumpResource, row func(name string, v *T)) error {
	for _, r := range rs {
		v := new(T)
		if err := json.Unmarshal(r.Resource, v); err != nil {
			return fmt.Errorf("decoding %s: %w", r.Name, err)
		}
		row(r.Name, v)
	}
	return nil
}

func writeListeners(w io.Writer, rs []dumpResource) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tADDRESS\tDIRECTION\tCHAIN\tFILTER\tDESTINATION")
	err := decodeEach(rs, func(name string, l *listener) {
		for _, fc := range l.FilterChains {
			chain := fc.Name
			if chain == "" && fc.FilterChainMatch != nil {
				chain = fc.FilterChainMatch.TransportProtocol
			}
			for _, f := range fc.Filters {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", name, l.Address, orDash(l.TrafficDirection), orDash(chain),
					strings.TrimPrefix(f.Name, "envoy.filters.network."), filterDestination(f))
			}
		}
		if len(l.FilterChains) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t%s\t-\t-\t-\n", name, l.Address, orDash(l.TrafficDirection))
		}
	})
	if err != nil {
		return err
	}
	return tw.Flush()
}

// filterDestination is where a network filter sends traffic: an RDS route
// configuration, an inline one, or a cluster.
func filterDestination(f typedFilter) string {
	c := f.TypedConfig
	switch {
	case c.RDS != nil:
		return "route: " + c.RDS.RouteConfigName
	case c.RouteConfig != nil:
		return "inline route: " + c.RouteConfig.Name
	case c.Cluster != "":
		return "cluster: " + c.Cluster
	}
	return "-"
}

func writeRoutes(w io.Writer, rs []dumpResource) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVIRTUAL HOST\tDOMAINS\tMATCH\tDESTINATION")
	err := decodeEach(rs, func(name string, rc *routeConfig) {
		for _, vh := range rc.VirtualHosts {
			for _, r := range vh.Routes {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", name, vh.Name, domains(vh.Domains), match(r.Match), routeDestination(r.Route, r.Direct != nil, r.Redirect != nil))
			}
		}
	})
	if err != nil {
		return err
	}
	return tw.Flush()
}

// domains shortens a virtual host's domains to the shortest one and a count.
func domains(ds []string) string {
	if len(ds) <= 2 {
		return orDash(strings.Join(ds, ","))
	}
	shortest := slices.MinFunc(ds, func(a, b string) int { return len(a) - len(b) })
	return fmt.Sprintf("%s +%d more", shortest, len(ds)-1)
}

// match prints a route's match as key=value pairs, path first.
func match(m map[string]json.RawMessage) string {
	var parts []string
	for _, k := range []string{"prefix", "path", "safeRegex", "pathSeparatedPrefix"} {
		if v, ok := m[k]; ok {
			parts = append(parts, k+"="+compact(v))
		}
	}
	var rest []string
	for k, v := range m {
		if !slices.Contains([]string{"prefix", "path", "safeRegex", "pathSeparatedPrefix"}, k) {
			rest = append(rest, k+"="+compact(v))
		}
	}
	slices.Sort(rest)
	return orDash(strings.Join(append(parts, rest...), " "))
}

func compact(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	return string(v)
}

func routeDestination(a *routeAction, direct, redirect bool) string {
	switch {
	case direct:
		return "direct response"
	case redirect:
		return "redirect"
	case a == nil:
		return "-"
	case a.WeightedClusters != nil:
		var parts []string
		for _, c := range a.WeightedClusters.Clusters {
			parts = append(parts, fmt.Sprintf("%s (%d)", c.Name, c.Weight))
		}
		return strings.Join(parts, ", ")
	}
	return orDash(a.Cluster)
}

func writeClusters(w io.Writer, rs []dumpResource) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTYPE\tLB\tCONNECT TIMEOUT\tTLS\tENDPOINTS")
	err := decodeEach(rs, func(name string, c *cluster) {
		typ := c.Type
		if typ == "" {
			typ = "STATIC" // protojson leaves out the zero value
		}
		lb := c.LbPolicy
		if lb == "" {
			lb = "ROUND_ROBIN"
		}
		tls := "-"
		if c.TransportSocket != nil {
			tls = strings.TrimPrefix(c.TransportSocket.Name, "envoy.transport_sockets.")
		}
		eps := "-"
		switch {
		case c.EdsClusterConfig != nil:
			eps = "EDS " + orDash(c.EdsClusterConfig.ServiceName)
		case c.LoadAssignment != nil:
			var addrs []string
			for _, l := range c.LoadAssignment.Endpoints {
				for _, e := range l.LbEndpoints {
					addrs = append(addrs, e.Endpoint.Address.String())
				}
			}
			eps = orDash(strings.Join(addrs, ","))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", name, typ, lb, orDash(c.ConnectTimeout), tls, eps)
	})
	if err != nil {
		return err
	}
	return tw.Flush()
}

func writeEndpoints(w io.Writer, rs []dumpResource) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CLUSTER\tENDPOINT\tHEALTH\tWEIGHT\tWORKLOAD\tIDENTITY")
	err := decodeEach(rs, func(name string, la *loadAssignment) {
		n := 0
		for _, l := range la.Endpoints {
			for _, e := range l.LbEndpoints {
				n++
				weight := "-"
				if e.LoadBalancingWeight != nil {
					weight = strconv.Itoa(*e.LoadBalancingWeight)
				}
				md := e.Metadata.FilterMetadata.Trellis
				workload := "-"
				if md["workload"] != "" {
					workload = md["namespace"] + "/" + md["workload"]
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", name, e.Endpoint.Address, orText(e.HealthStatus, "HEALTHY"), weight, workload, orDash(md["principal"]))
			}
		}
		if n == 0 {
			fmt.Fprintf(tw, "%s\t(none)\t-\t-\t-\t-\n", name)
		}
	})
	if err != nil {
		return err
	}
	return tw.Flush()
}

func orText(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}
