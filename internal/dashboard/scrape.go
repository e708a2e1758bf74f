package dashboard

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"trellis.dev/trellis/internal/bootstrap"
)

// The metric families the dashboard reads, under both naming schemes
// (docs/telemetry.md, --metrics-compat).
var (
	requestFamilies  = []string{"trellis_requests_total", "istio_requests_total"}
	durationFamilies = []string{"trellis_request_duration_milliseconds", "istio_request_duration_milliseconds"}
)

// maxScrapeBytes bounds how much of one sidecar's metrics page is read.
const maxScrapeBytes = 16 << 20

// seriesKey is the part of a request metric's label set the dashboard keeps: who
// called what, as reported by which side. The response code is folded into counts.
type seriesKey struct {
	Reporter     string
	SrcWorkload  string
	SrcNamespace string
	DstWorkload  string
	DstNamespace string
	DstService   string // FQDN, or "unknown"
	Protocol     string
}

// counts are request counts and a latency histogram: cumulative per sidecar in a
// scrape, or increases over a round.
type counts struct {
	requests float64
	failures float64 // 5xx responses
	// latency: observations and cumulative bucket counts, one per bound of the
	// histogram (bounds, below); nil when the histogram did not match.
	observations float64
	buckets      []float64
}

func (c *counts) add(o *counts) {
	c.requests += o.requests
	c.failures += o.failures
	if o.buckets == nil {
		return
	}
	if c.buckets == nil {
		c.buckets = make([]float64, len(o.buckets))
	}
	if len(c.buckets) != len(o.buckets) {
		return
	}
	c.observations += o.observations
	for i, v := range o.buckets {
		c.buckets[i] += v
	}
}

// sub returns c - prev, or c itself when any value went down (the sidecar restarted
// and its counters started again from zero).
func (c *counts) sub(prev *counts) *counts {
	if c.requests < prev.requests || c.failures < prev.failures || c.observations < prev.observations ||
		len(c.buckets) != len(prev.buckets) {
		return c
	}
	d := &counts{requests: c.requests - prev.requests, failures: c.failures - prev.failures,
		observations: c.observations - prev.observations}
	if c.buckets != nil {
		d.buckets = make([]float64, len(c.buckets))
		for i := range c.buckets {
			if d.buckets[i] = c.buckets[i] - prev.buckets[i]; d.buckets[i] < 0 {
				return c
			}
		}
	}
	return d
}

func (c *counts) zero() bool { return c.requests == 0 && c.observations == 0 }

// snapshot is one scrape of one sidecar: cumulative counts per series, and the
// latency bucket bounds (milliseconds) of its histogram.
type snapshot struct {
	series map[seriesKey]*counts
	bounds []float64
}

// scrapeTarget is where a sidecar's metrics are, from its announced metadata: an
// unspecified host (0.0.0.0:15020 in a pod) is replaced by the host of its inbound
// address, which other sidecars reach it at. Empty when it announces none.
func scrapeTarget(md bootstrap.Metadata) string {
	host, port, err := net.SplitHostPort(md.Metrics)
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = ""
		for _, p := range md.Ports {
			if h, _, err := net.SplitHostPort(p.Inbound); err == nil {
				if ip := net.ParseIP(h); h != "" && (ip == nil || !ip.IsUnspecified()) {
					host = h
					break
				}
			}
		}
		if host == "" {
			return ""
		}
	}
	return net.JoinHostPort(host, port)
}

// scrape reads a sidecar's /stats/prometheus.
func scrape(ctx context.Context, c *http.Client, addr string) (*snapshot, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/stats/prometheus", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scraping %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scraping %s: %s", addr, resp.Status)
	}
	snap, err := parseMetrics(io.LimitReader(resp.Body, maxScrapeBytes))
	if err != nil {
		return nil, fmt.Errorf("scraping %s: %w", addr, err)
	}
	return snap, nil
}

// parseMetrics reads the request counter and duration histogram out of a metrics
// page in the Prometheus text format.
func parseMetrics(r io.Reader) (*snapshot, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parsing metrics: %w", err)
	}
	snap := &snapshot{series: map[seriesKey]*counts{}}
	get := func(k seriesKey) *counts {
		c := snap.series[k]
		if c == nil {
			c = &counts{}
			snap.series[k] = c
		}
		return c
	}
	if f := family(fams, requestFamilies); f != nil {
		for _, m := range f.GetMetric() {
			labels := labelMap(m)
			v := m.GetCounter().GetValue()
			c := get(keyOf(labels))
			c.requests += v
			if failed(labels["response_code"]) {
				c.failures += v
			}
		}
	}
	if f := family(fams, durationFamilies); f != nil {
		for _, m := range f.GetMetric() {
			h := m.GetHistogram()
			bounds, cum := finiteBuckets(h)
			if snap.bounds == nil {
				snap.bounds = bounds
			} else if !equalBounds(snap.bounds, bounds) {
				continue
			}
			c := get(keyOf(labelMap(m)))
			if c.buckets == nil {
				c.buckets = make([]float64, len(bounds))
			}
			c.observations += float64(h.GetSampleCount())
			for i, v := range cum {
				c.buckets[i] += v
			}
		}
	}
	return snap, nil
}

func family(fams map[string]*dto.MetricFamily, names []string) *dto.MetricFamily {
	for _, n := range names {
		if f, ok := fams[n]; ok {
			return f
		}
	}
	return nil
}

func labelMap(m *dto.Metric) map[string]string {
	out := make(map[string]string, len(m.GetLabel()))
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

func keyOf(l map[string]string) seriesKey {
	return seriesKey{
		Reporter:    l["reporter"],
		SrcWorkload: orUnknown(l["source_workload"]), SrcNamespace: orUnknown(l["source_workload_namespace"]),
		DstWorkload: orUnknown(l["destination_workload"]), DstNamespace: orUnknown(l["destination_workload_namespace"]),
		DstService: orUnknown(l["destination_service"]), Protocol: l["request_protocol"],
	}
}

func orUnknown(s string) string {
	if s == "" {
		return unknown
	}
	return s
}

// failed reports whether a response code counts against the success rate: a 5xx.
func failed(code string) bool {
	n, err := strconv.Atoi(code)
	return err == nil && n >= 500 && n < 600
}

// finiteBuckets returns a histogram's finite upper bounds and cumulative counts.
func finiteBuckets(h *dto.Histogram) (bounds, cum []float64) {
	for _, b := range h.GetBucket() {
		if math.IsInf(b.GetUpperBound(), 1) {
			continue
		}
		bounds = append(bounds, b.GetUpperBound())
		cum = append(cum, float64(b.GetCumulativeCount()))
	}
	return bounds, cum
}

func equalBounds(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// quantile estimates the q-quantile (0 < q < 1) of a histogram as Prometheus's
// histogram_quantile does: linear interpolation inside the bucket the rank falls in,
// the lowest bucket starting at 0, and the highest finite bound for ranks past it.
// ok is false when there are no observations.
func quantile(q float64, bounds, cum []float64, total float64) (v float64, ok bool) {
	if total <= 0 || len(bounds) == 0 || len(bounds) != len(cum) {
		return 0, false
	}
	rank := q * total
	prevBound, prevCum := 0.0, 0.0
	for i, b := range bounds {
		if cum[i] >= rank {
			if cum[i] == prevCum {
				return b, true
			}
			if i == 0 && b <= 0 {
				return b, true
			}
			return prevBound + (b-prevBound)*(rank-prevCum)/(cum[i]-prevCum), true
		}
		prevBound, prevCum = b, cum[i]
	}
	return bounds[len(bounds)-1], true
}
