package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"trellis.dev/trellis/internal/dashboard"
)

// topRefresh is how often `trellis top` redraws.
const topRefresh = 2 * time.Second

func newTopCmd() *cobra.Command {
	var (
		dash       dashboardFlags
		window     string
		service    string
		rows       int
		iterations int
	)
	cmd := &cobra.Command{
		Use:   "top",
		Short: "Watch the busiest paths of the mesh, live",
		Long: `top redraws every 2 seconds: the busiest edges of the service graph (caller →
service) over the window, with RPS, success rate and latency percentiles, then the
busiest request paths seen by the live tap since top started (count, success,
best, worst and last latency). The tap part needs the dashboard's tap (local mode).
Ctrl-C stops it.`,
		Example: `  trellis top
  trellis top --service reviews --state state.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := dash.client()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			paths := &pathTable{byKey: map[pathKey]*pathStats{}}
			var wg sync.WaitGroup
			wg.Go(func() {
				err := c.Tap(ctx, dashboard.TapQuery{Service: service}, func(ev dashboard.TapEvent) error {
					paths.add(&ev)
					return nil
				})
				if err != nil && ctx.Err() == nil {
					paths.setErr(err)
				}
			})
			defer wg.Wait()
			defer cancel()
			out := cmd.OutOrStdout()
			tick := time.NewTicker(topRefresh)
			defer tick.Stop()
			for i := 0; iterations <= 0 || i < iterations; i++ {
				if i > 0 {
					select {
					case <-ctx.Done():
						return nil
					case <-tick.C:
					}
				}
				g, err := c.Graph(ctx, window)
				if err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return err
				}
				var b strings.Builder
				b.WriteString("\x1b[H\x1b[2J") // home, clear screen
				drawTop(&b, g, paths, service, rows)
				if _, err := io.WriteString(out, b.String()); err != nil {
					return err
				}
			}
			return nil
		},
	}
	dash.register(cmd.Flags())
	f := cmd.Flags()
	f.StringVar(&window, "window", "1m", "window of the edges' statistics")
	f.StringVar(&service, "service", "", "only traffic to this service")
	f.IntVar(&rows, "rows", 15, "rows per table")
	f.IntVar(&iterations, "iterations", 0, "stop after this many screens (0: until interrupted)")
	return cmd
}

type pathKey struct{ source, service, method, path string }

type pathStats struct {
	count, failures   int
	best, worst, last float64
}

// pathTable aggregates tapped requests by caller, service, method and path. Only
// the caller's sidecar's report (reporter source) counts, else each request would
// count twice; requests from callers without a sidecar count from the callee's.
type pathTable struct {
	mu    sync.Mutex
	byKey map[pathKey]*pathStats
	err   error
}

func (p *pathTable) add(ev *dashboard.TapEvent) {
	if ev.Reporter == "destination" && ev.Source.Workload != "" {
		return
	}
	k := pathKey{ev.Source.Workload, ev.Service, ev.Method, ev.Path}
	if k.source == "" {
		k.source = "unknown"
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.byKey[k]
	if s == nil {
		s = &pathStats{best: ev.DurationMS}
		p.byKey[k] = s
	}
	s.count++
	if ev.ResponseCode >= 500 {
		s.failures++
	}
	s.best, s.worst, s.last = min(s.best, ev.DurationMS), max(s.worst, ev.DurationMS), ev.DurationMS
}

func (p *pathTable) setErr(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.err = err
}

func drawTop(w io.Writer, g *dashboard.Graph, paths *pathTable, service string, rows int) {
	fmt.Fprintf(w, "trellis top — %s — window %s (refresh %s, Ctrl-C to quit)\n\n",
		g.GeneratedAt.Local().Format("15:04:05"), g.Window, topRefresh)
	names := map[string]dashboard.Node{}
	for _, n := range g.Nodes {
		names[n.ID] = n
	}
	var edges []dashboard.Edge
	for _, e := range g.Edges {
		to := names[e.Target]
		if e.Declared || names[e.Source].Kind != dashboard.KindWorkload || to.Kind != dashboard.KindService {
			continue
		}
		if service != "" && !matches(to.Name, to.Namespace, service) {
			continue
		}
		edges = append(edges, e)
	}
	slices.SortFunc(edges, func(a, b dashboard.Edge) int {
		if a.RPS != b.RPS {
			if a.RPS > b.RPS {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Source+a.Target, b.Source+b.Target)
	})
	fmt.Fprintln(w, "Busiest edges")
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tSERVICE\tRPS\tSUCCESS\tP50\tP90\tP99")
	for i, e := range edges {
		if i == rows {
			break
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", names[e.Source].Name, names[e.Target].Name, statColumns(e.Stats))
	}
	tw.Flush()
	if len(edges) == 0 {
		fmt.Fprintln(w, "  (no traffic in the window)")
	}

	paths.mu.Lock()
	type row struct {
		k pathKey
		s pathStats
	}
	var list []row
	for k, s := range paths.byKey {
		list = append(list, row{k, *s})
	}
	err := paths.err
	paths.mu.Unlock()
	slices.SortFunc(list, func(a, b row) int {
		if a.s.count != b.s.count {
			return b.s.count - a.s.count
		}
		return strings.Compare(a.k.path, b.k.path)
	})
	fmt.Fprintln(w, "\nBusiest paths (live tap, since top started)")
	tw = tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tSERVICE\tMETHOD\tPATH\tCOUNT\tSUCCESS\tBEST\tWORST\tLAST")
	for i, r := range list {
		if i == rows {
			break
		}
		svc, _, _ := strings.Cut(r.k.service, ".")
		succ := fmt.Sprintf("%.1f%%", 100*float64(r.s.count-r.s.failures)/float64(r.s.count))
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", r.k.source, svc, r.k.method, r.k.path, r.s.count, succ,
			fmtDuration(r.s.best), fmtDuration(r.s.worst), fmtDuration(r.s.last))
	}
	tw.Flush()
	switch {
	case err != nil && errors.Is(err, context.Canceled):
	case err != nil:
		fmt.Fprintf(w, "  (tap unavailable: %v)\n", err)
	case len(list) == 0:
		fmt.Fprintln(w, "  (no request tapped yet)")
	}
}
