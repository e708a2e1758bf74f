package appprobe

import (
	"cmp"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"trellis.dev/trellis/internal/bootstrap"
)

// Handler serves the probes by path; an unknown path is 404. Each probe is one GET to
// 127.0.0.1:<port> within its timeout (1s when it has none, as in Kubernetes); a
// redirect is answered as is, like any other status.
func Handler(probes map[string]bootstrap.AppProbe, logger *slog.Logger) http.Handler {
	client := &http.Client{
		// HTTPS probes are not verified, as the kubelet does not verify them.
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the kubelet does not verify probes either
			DisableKeepAlives: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := probes[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		timeout := time.Duration(cmp.Or(p.TimeoutSeconds, 1)) * time.Second
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		code, err := probe(ctx, client, p)
		if err != nil {
			logger.Debug("app probe failed", "probe", r.URL.Path, "error", err)
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(code)
	})
}

func probe(ctx context.Context, client *http.Client, p bootstrap.AppProbe) (int, error) {
	scheme := "http"
	if strings.EqualFold(p.Scheme, "HTTPS") {
		scheme = "https"
	}
	path := p.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	url := fmt.Sprintf("%s://%s%s", scheme, net.JoinHostPort("127.0.0.1", strconv.Itoa(p.Port)), path)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("User-Agent", "kube-probe/trellis")
	for _, h := range p.Headers {
		req.Header.Add(h.Name, h.Value)
	}
	if p.Host != "" {
		req.Host = p.Host
	}
	for _, h := range p.Headers {
		if strings.EqualFold(h.Name, "Host") {
			req.Host = h.Value
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 10<<10))
	return resp.StatusCode, nil
}
