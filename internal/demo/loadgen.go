package demo

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"
)

// LoadConfig configures the load generator.
type LoadConfig struct {
	// Target is the URL requested, such as http://frontend:9080/.
	Target string
	// QPS is the steady request rate. Default 5.
	QPS float64
	// Interval is how often a summary line is printed. Default 5s.
	Interval time.Duration
	// Client sends the requests. Default: MeshClient().
	Client *http.Client
	// Out receives the summary lines.
	Out io.Writer
}

// Load requests cfg.Target at a steady rate until ctx is done, printing every
// Interval one line that counts the answers by status code and by reviews version.
func Load(ctx context.Context, cfg LoadConfig) error {
	if cfg.Target == "" {
		return fmt.Errorf("loadgen: no target URL")
	}
	if cfg.QPS <= 0 {
		cfg.QPS = 5
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 5 * time.Second
	}
	if cfg.Client == nil {
		cfg.Client = MeshClient()
	}
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	tick := time.NewTicker(time.Duration(float64(time.Second) / cfg.QPS))
	defer tick.Stop()
	report := time.NewTicker(cfg.Interval)
	defer report.Stop()
	var s summary
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-report.C:
			fmt.Fprintln(cfg.Out, s.line(cfg.Target, cfg.Interval))
			s = summary{}
		case <-tick.C:
			s.add(request(ctx, cfg.Client, cfg.Target))
		}
	}
}

// result is the outcome of one request: a status code (0 for a transport error) and
// the reviews version that served it, if any.
type result struct {
	code    int
	version string
}

func request(ctx context.Context, c *http.Client, target string) result {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return result{}
	}
	resp, err := c.Do(req)
	if err != nil {
		return result{}
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return result{code: resp.StatusCode, version: resp.Header.Get(ReviewsVersionHeader)}
}

// summary counts results between two reports.
type summary struct {
	total    int
	codes    map[int]int
	versions map[string]int
}

func (s *summary) add(r result) {
	if s.codes == nil {
		s.codes, s.versions = map[int]int{}, map[string]int{}
	}
	s.total++
	s.codes[r.code]++
	if r.version != "" {
		s.versions[r.version]++
	}
}

// line is the report, such as
// "loadgen http://frontend:9080/: 25 requests in 5s: 200=25; reviews v1=12 v2=13".
func (s *summary) line(target string, every time.Duration) string {
	var codes []string
	for _, c := range slices.Sorted(maps.Keys(s.codes)) {
		name := fmt.Sprint(c)
		if c == 0 {
			name = "error"
		}
		codes = append(codes, fmt.Sprintf("%s=%d", name, s.codes[c]))
	}
	var versions []string
	for _, v := range slices.Sorted(maps.Keys(s.versions)) {
		versions = append(versions, fmt.Sprintf("%s=%d", v, s.versions[v]))
	}
	out := fmt.Sprintf("loadgen %s: %d requests in %s", target, s.total, every)
	if len(codes) > 0 {
		out += ": " + strings.Join(codes, " ")
	}
	if len(versions) > 0 {
		out += "; reviews " + strings.Join(versions, " ")
	}
	return out
}
