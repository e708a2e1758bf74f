package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"trellis.dev/trellis/internal/dashboard"
)

func newTapCmd() *cobra.Command {
	var (
		dash   dashboardFlags
		query  dashboard.TapQuery
		output string
	)
	cmd := &cobra.Command{
		Use:   "tap",
		Short: "Print the mesh's requests as they happen",
		Long: `tap streams the requests the sidecars carry, through the control plane's
dashboard: one line per request per reporting sidecar (out: the caller's sidecar;
in: the callee's), with method, authority, path, status, duration and response
flags. --service and --workload filter. The dashboard reads the sidecars' admin
addresses, so tap works in local mode (trellis up) only for now.`,
		Example: `  trellis tap
  trellis tap --service reviews
  trellis tap --workload frontend -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := dash.client()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			err = c.Tap(cmd.Context(), query, func(ev dashboard.TapEvent) error {
				if output == "json" {
					return json.NewEncoder(out).Encode(ev)
				}
				_, err := io.WriteString(out, tapLine(&ev)+"\n")
				return err
			})
			if cmd.Context().Err() != nil {
				return nil
			}
			return err
		},
	}
	dash.register(cmd.Flags())
	f := cmd.Flags()
	f.StringVar(&query.Service, "service", "", "only requests to this service (name, name.namespace or FQDN)")
	f.StringVar(&query.Workload, "workload", "", "only requests from or to this workload (name or namespace/name)")
	f.BoolVar(&query.Backlog, "backlog", false, "start with the recent requests the dashboard keeps")
	f.StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}

// tapLine is one request in a line:
// 12:00:01.234 out client → reviews-v1 GET reviews:8080/path 200 2.1ms -
func tapLine(ev *dashboard.TapEvent) string {
	at := ev.Time
	if t, err := time.Parse(time.RFC3339Nano, ev.Time); err == nil {
		at = t.Local().Format("15:04:05.000")
	}
	dir := "in "
	if ev.Reporter == "source" {
		dir = "out"
	}
	dst := ev.Destination.Workload
	if dst == "" {
		dst = ev.Service
	}
	src := ev.Source.Workload
	if src == "" {
		src = "unknown"
	}
	method := ev.Method
	if method == "" {
		method = ev.Protocol // a TCP connection
	}
	line := fmt.Sprintf("%s %s %s → %s %s %s%s %d %s %s", at, dir, src, dst, method, ev.Authority,
		ev.Path, ev.ResponseCode, fmtDuration(ev.DurationMS), ev.ResponseFlags)
	return strings.TrimSpace(line)
}

func fmtDuration(msec float64) string {
	v := msec
	return ms(&v)
}
