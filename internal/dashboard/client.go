package dashboard

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Client reads a dashboard's JSON API: what `trellis stat`, `top` and `tap` use.
type Client struct {
	// Base is the dashboard's URL (http://127.0.0.1:15080).
	Base string
	HTTP *http.Client
}

// NewClient returns a client of the dashboard at base: a URL, or host:port.
func NewClient(base string) *Client {
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	// The dashboard is reached directly, never through a proxy from the environment
	// (inside a mesh app HTTP_PROXY is the sidecar).
	return &Client{Base: strings.TrimRight(base, "/"), HTTP: &http.Client{Transport: &http.Transport{Proxy: nil}}}
}

func (c *Client) get(ctx context.Context, path string, q url.Values, out any) error {
	u := c.Base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("asking the dashboard: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("asking the dashboard: GET %s: %s: %s", u, resp.Status, strings.TrimSpace(string(body)))
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decoding GET %s: %w", u, err)
	}
	return nil
}

func windowQuery(window string) url.Values {
	q := url.Values{}
	if window != "" {
		q.Set("window", window)
	}
	return q
}

// Graph returns the service graph over window ("1m"; empty: the default).
func (c *Client) Graph(ctx context.Context, window string) (*Graph, error) {
	var g Graph
	return &g, c.get(ctx, "/api/graph", windowQuery(window), &g)
}

// Services returns every service's golden signals over window.
func (c *Client) Services(ctx context.Context, window string) (*ServicesResponse, error) {
	var s ServicesResponse
	return &s, c.get(ctx, "/api/services", windowQuery(window), &s)
}

// Workloads returns every workload's golden signals over window.
func (c *Client) Workloads(ctx context.Context, window string) (*WorkloadsResponse, error) {
	var w WorkloadsResponse
	return &w, c.get(ctx, "/api/workloads", windowQuery(window), &w)
}

// TapQuery filters a tap stream.
type TapQuery struct {
	// Service keeps requests to that service (name, name.namespace or FQDN).
	Service string
	// Workload keeps requests from or to that workload (name or namespace/name).
	Workload string
	// Backlog asks for the recent requests first.
	Backlog bool
}

// Tap streams tapped requests to fn until ctx ends, the stream ends, or fn returns
// an error.
func (c *Client) Tap(ctx context.Context, tq TapQuery, fn func(TapEvent) error) error {
	q := url.Values{}
	if tq.Service != "" {
		q.Set("service", tq.Service)
	}
	if tq.Workload != "" {
		q.Set("workload", tq.Workload)
	}
	if !tq.Backlog {
		q.Set("backlog", "false")
	}
	u := c.Base + "/api/tap?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("opening the tap: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("opening the tap: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var ev TapEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return fmt.Errorf("decoding a tap event: %w", err)
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("reading the tap: %w", err)
	}
	return nil
}
