package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"trellis.dev/trellis/internal/control"
	"trellis.dev/trellis/internal/dashboard"
	"trellis.dev/trellis/internal/local"
)

// dashboardFlags find the dashboard that stat, top and tap ask: --dashboard, else
// the state file of `trellis up --state`, else the default address.
type dashboardFlags struct {
	url   string
	state string
}

func (d *dashboardFlags) register(f *pflag.FlagSet) {
	f.StringVar(&d.url, "dashboard", "", "the dashboard's URL (default: controlPlane.dashboard of --state, else http://"+control.DefaultDashboardAddr+")")
	f.StringVar(&d.state, "state", "", "the state file of `trellis up --state`, to find the dashboard in")
}

func (d *dashboardFlags) client() (*dashboard.Client, error) {
	if d.url != "" {
		return dashboard.NewClient(d.url), nil
	}
	if d.state != "" {
		data, err := os.ReadFile(d.state)
		if err != nil {
			return nil, fmt.Errorf("reading the state file: %w", err)
		}
		var st local.State
		if err := json.Unmarshal(data, &st); err != nil {
			return nil, fmt.Errorf("decoding the state file %s: %w", d.state, err)
		}
		if st.ControlPlane.Dashboard == "" {
			return nil, fmt.Errorf("the state file %s names no dashboard", d.state)
		}
		return dashboard.NewClient(st.ControlPlane.Dashboard), nil
	}
	return dashboard.NewClient(control.DefaultDashboardAddr), nil
}

func newStatCmd() *cobra.Command {
	var (
		dash   dashboardFlags
		window string
		output string
	)
	cmd := &cobra.Command{
		Use:   "stat [svc|deploy [NAME]]",
		Short: "Show the golden signals of services or workloads: RPS, success rate, latency percentiles",
		Long: `stat asks the control plane's dashboard for the traffic of every service (svc, the
default) or workload (deploy) over the window: requests per second, the share not
answered with a 5xx, and the 50th, 90th and 99th latency percentiles. For a
workload these are of the traffic it received; OUT RPS is what it sent. NAME keeps
one (name or namespace/name).`,
		Example: `  trellis stat
  trellis stat deploy
  trellis stat svc reviews --window 5m
  trellis stat --state state.json`,
		Args: cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, name := "svc", ""
			if len(args) > 0 {
				kind = args[0]
			}
			if len(args) > 1 {
				name = args[1]
			}
			c, err := dash.client()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch kind {
			case "svc", "service", "services":
				resp, err := c.Services(cmd.Context(), window)
				if err != nil {
					return err
				}
				if output == "json" {
					return writeJSONTo(out, resp)
				}
				return printServices(out, resp.Services, name)
			case "deploy", "deployment", "deployments", "workload", "workloads", "wl":
				resp, err := c.Workloads(cmd.Context(), window)
				if err != nil {
					return err
				}
				if output == "json" {
					return writeJSONTo(out, resp)
				}
				return printWorkloads(out, resp.Workloads, name)
			default:
				return fmt.Errorf("unknown kind %q: svc or deploy", kind)
			}
		},
	}
	dash.register(cmd.Flags())
	cmd.Flags().StringVar(&window, "window", "1m", "how far back to look (at most the dashboard's retention, 15m)")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	return cmd
}

func matches(name, namespace, want string) bool {
	return want == "" || name == want || namespace+"/"+name == want || name+"."+namespace == want
}

func printServices(w io.Writer, services []dashboard.ServiceStats, name string) error {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tNAMESPACE\tRPS\tSUCCESS\tP50\tP90\tP99\tWORKLOADS")
	n := 0
	for _, s := range services {
		if !matches(s.Name, s.Namespace, name) && s.FQDN != name {
			continue
		}
		n++
		ns := s.Namespace
		if ns == "" {
			ns = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Name, ns, statColumns(s.Stats)+"\t"+strings.Join(s.Workloads, ","))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if n == 0 && name != "" {
		return fmt.Errorf("no service %q", name)
	}
	return nil
}

func printWorkloads(w io.Writer, workloads []dashboard.WorkloadStats, name string) error {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tNAMESPACE\tMESHED\tRPS\tSUCCESS\tP50\tP90\tP99\tOUT RPS\tOUT SUCCESS")
	n := 0
	for _, wl := range workloads {
		if !matches(wl.Name, wl.Namespace, name) {
			continue
		}
		n++
		meshed := "yes"
		if !wl.Sidecar {
			meshed = "no"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", wl.Name, wl.Namespace, meshed, statColumns(wl.Inbound),
			rps(wl.Outbound), success(wl.Outbound))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if n == 0 && name != "" {
		return fmt.Errorf("no workload %q", name)
	}
	return nil
}

// statColumns are RPS, SUCCESS, P50, P90, P99, tab-separated.
func statColumns(s dashboard.Stats) string {
	return strings.Join([]string{rps(s), success(s), ms(s.P50), ms(s.P90), ms(s.P99)}, "\t")
}

func rps(s dashboard.Stats) string { return fmt.Sprintf("%.1f", s.RPS) }

func success(s dashboard.Stats) string {
	if s.SuccessRate == nil {
		return "-"
	}
	return fmt.Sprintf("%.2f%%", *s.SuccessRate*100)
}

func ms(v *float64) string {
	switch {
	case v == nil:
		return "-"
	case *v < 10:
		return fmt.Sprintf("%.1fms", *v)
	case *v < 10000:
		return fmt.Sprintf("%.0fms", *v)
	default:
		return fmt.Sprintf("%.1fs", *v/1000)
	}
}

func writeJSONTo(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
