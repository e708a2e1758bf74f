package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Roles are the demo app's roles, as `trellis demo-app <role>` takes them.
var Roles = []string{"frontend", "reviews", "ratings", "details", "loadgen"}

// AppConfig configures one role of the demo app.
type AppConfig struct {
	// Version is what the reviews role reports: v1 (no stars) or v2 (stars from
	// ratings).
	Version string
	// Details, Reviews and Ratings are the base URLs of the services a role calls,
	// such as http://reviews:9080. The calls go through the sidecar because Client's
	// transport honours HTTP_PROXY.
	Details, Reviews, Ratings string
	// Client makes the calls. Default: a client using HTTP_PROXY from the environment.
	Client *http.Client
	Logger *slog.Logger
}

func (c *AppConfig) setDefaults() {
	if c.Version == "" {
		c.Version = "v1"
	}
	if c.Details == "" {
		c.Details = "http://details:9080"
	}
	if c.Reviews == "" {
		c.Reviews = "http://reviews:9080"
	}
	if c.Ratings == "" {
		c.Ratings = "http://ratings:9080"
	}
	if c.Client == nil {
		c.Client = MeshClient()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// MeshClient is an HTTP client that sends through the proxy named by HTTP_PROXY: in
// `trellis up`, the workload's sidecar.
func MeshClient() *http.Client {
	return &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: 16},
	}
}

// Handler returns the HTTP handler of a serving role: frontend, reviews, ratings or
// details.
func Handler(role string, cfg AppConfig) (http.Handler, error) {
	cfg.setDefaults()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	switch role {
	case "frontend":
		mux.Handle("GET /", &frontend{cfg: cfg})
	case "reviews":
		mux.Handle("GET /", &reviews{cfg: cfg})
	case "ratings":
		mux.HandleFunc("GET /", func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusOK, Ratings{Ratings: map[string]int{"Reviewer1": 5, "Reviewer2": 4}})
		})
	case "details":
		mux.HandleFunc("GET /", func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusOK, Details{Title: "The Comedy of Errors", Author: "William Shakespeare", Year: 1595, Pages: 200})
		})
	default:
		return nil, fmt.Errorf("unknown demo role %q (want one of %s)", role, strings.Join(Roles, ", "))
	}
	return mux, nil
}

// Details is the details service's answer.
type Details struct {
	Title  string `json:"title"`
	Author string `json:"author"`
	Year   int    `json:"year"`
	Pages  int    `json:"pages"`
}

// Ratings is the ratings service's answer: stars by reviewer.
type Ratings struct {
	Ratings map[string]int `json:"ratings"`
}

// Reviews is the reviews service's answer.
type Reviews struct {
	// Version is the reviews workload that answered: v1 or v2.
	Version string   `json:"version"`
	Reviews []Review `json:"reviews"`
	// Error says why the stars are missing (v2 only).
	Error string `json:"error,omitempty"`
}

// Review is one review; Stars is set by v2 only.
type Review struct {
	Reviewer string `json:"reviewer"`
	Text     string `json:"text"`
	Stars    int    `json:"stars,omitempty"`
}

// Page is the frontend's answer: what it gathered from details and reviews.
type Page struct {
	Details *Details `json:"details,omitempty"`
	Reviews *Reviews `json:"reviews,omitempty"`
	Errors  []string `json:"errors,omitempty"`
}

// ReviewsVersionHeader carries, on the frontend's answer, the version of reviews
// that served it.
const ReviewsVersionHeader = "X-Reviews-Version"

type reviews struct{ cfg AppConfig }

func (h *reviews) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	out := Reviews{Version: h.cfg.Version, Reviews: []Review{
		{Reviewer: "Reviewer1", Text: "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!"},
		{Reviewer: "Reviewer2", Text: "Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare."},
	}}
	if h.cfg.Version == "v2" {
		var rt Ratings
		if err := getJSON(r, h.cfg.Client, h.cfg.Ratings+"/ratings", &rt); err != nil {
			out.Error = "ratings unavailable: " + err.Error()
		} else {
			for i := range out.Reviews {
				out.Reviews[i].Stars = rt.Ratings[out.Reviews[i].Reviewer]
			}
		}
	}
	writeJSON(w, http.StatusOK, out)
}

type frontend struct{ cfg AppConfig }

func (h *frontend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var page Page
	var mu sync.Mutex
	var wg sync.WaitGroup
	wg.Go(func() {
		var d Details
		err := getJSON(r, h.cfg.Client, h.cfg.Details+"/details", &d)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			page.Errors = append(page.Errors, "details unavailable: "+err.Error())
			return
		}
		page.Details = &d
	})
	wg.Go(func() {
		var rv Reviews
		err := getJSON(r, h.cfg.Client, h.cfg.Reviews+"/reviews", &rv)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			page.Errors = append(page.Errors, "reviews unavailable: "+err.Error())
			return
		}
		page.Reviews = &rv
	})
	wg.Wait()
	status := http.StatusOK
	if page.Details == nil && page.Reviews == nil {
		status = http.StatusBadGateway
	}
	if page.Reviews != nil {
		w.Header().Set(ReviewsVersionHeader, page.Reviews.Version)
	}
	if strings.Contains(r.Header.Get("Accept"), "text/html") {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(status)
		if err := pageHTML.Execute(w, page); err != nil {
			h.cfg.Logger.Warn("rendering page", "error", err)
		}
		return
	}
	writeJSON(w, status, page)
}

var pageHTML = template.Must(template.New("page").Parse(`<!doctype html>
<html><head><title>Trellis demo</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 2em auto">
<h1>{{with .Details}}{{.Title}}{{else}}Book{{end}}</h1>
{{with .Details}}<p>{{.Author}}, {{.Year}}, {{.Pages}} pages</p>{{end}}
{{with .Reviews}}<h2>Reviews <small>(reviews {{.Version}})</small></h2>
{{range .Reviews}}<blockquote>{{.Text}}<br>— {{.Reviewer}}{{if .Stars}} {{.Stars}}★{{end}}</blockquote>{{end}}
{{with .Error}}<p><em>{{.}}</em></p>{{end}}{{end}}
{{range .Errors}}<p><em>{{.}}</em></p>{{end}}
</body></html>
`))

// propagated are the request headers a demo app copies onto the calls it makes, so
// that traces and request ids follow a request across services.
var propagated = []string{"X-Request-Id", "Traceparent", "Tracestate", "X-B3-Traceid", "X-B3-Spanid", "X-B3-Parentspanid", "X-B3-Sampled", "B3"}

// getJSON calls url on behalf of the incoming request in and decodes its JSON answer.
func getJSON(in *http.Request, c *http.Client, url string, v any) error {
	req, err := http.NewRequestWithContext(in.Context(), http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	for _, h := range propagated {
		if val := in.Header.Get(h); val != "" {
			req.Header.Set(h, val)
		}
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return fmt.Errorf("%s answered %s", url, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(v); err != nil {
		return fmt.Errorf("decoding the answer of %s: %w", url, err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// Serve serves h on addr until ctx is done, then shuts down gracefully.
func Serve(ctx context.Context, addr string, h http.Handler) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving on %s: %w", addr, err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutting down %s: %w", addr, err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
