package xdsload

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// cpMetrics are the control plane's own timings, read from its /metrics: the
// translations (model, generation and push) and, within them, the pushes.
type cpMetrics struct {
	translations, translateSeconds float64
	pushes, pushSeconds            float64
}

// scrape reads the control plane's metrics at url.
func scrape(url string) (cpMetrics, error) {
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	resp, err := client.Get(url)
	if err != nil {
		return cpMetrics{}, fmt.Errorf("reading the control plane's metrics: %w", err)
	}
	defer resp.Body.Close()
	var m cpMetrics
	fields := map[string]*float64{
		"trellis_translation_duration_seconds_count": &m.translations,
		"trellis_translation_duration_seconds_sum":   &m.translateSeconds,
		"trellis_xds_push_duration_seconds_count":    &m.pushes,
		"trellis_xds_push_duration_seconds_sum":      &m.pushSeconds,
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if dst := fields[name]; ok && dst != nil {
			*dst, _ = strconv.ParseFloat(value, 64)
		}
	}
	return m, sc.Err()
}

// loadAverage is the machine's 1-minute load average, or 0 if unknown.
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f, _, _ := strings.Cut(string(b), " ")
	v, _ := strconv.ParseFloat(f, 64)
	return v
}

// since is what happened between before and m: the number of translations and
// their mean duration, and the mean push duration, in milliseconds.
func (m cpMetrics) since(before cpMetrics) (translations int, translateMs, pushMs float64) {
	n := m.translations - before.translations
	if n > 0 {
		translateMs = (m.translateSeconds - before.translateSeconds) / n * 1000
	}
	if p := m.pushes - before.pushes; p > 0 {
		pushMs = (m.pushSeconds - before.pushSeconds) / p * 1000
	}
	return int(n), translateMs, pushMs
}
