package dashboard

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"trellis.dev/trellis/internal/dashboard/web"
)

// DefaultWindow is the window of the API's stats when the request names none.
const DefaultWindow = time.Minute

// DefaultChartHistory is how far back /api/services?history= goes when it is given
// without a duration.
const DefaultChartHistory = 10 * time.Minute

// Handler serves the web UI at / and the JSON API under /api/.
func (d *Dashboard) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /", http.FileServerFS(web.FS))
	mux.HandleFunc("GET /api/graph", d.serveGraph)
	mux.HandleFunc("GET /api/services", d.serveServices)
	mux.HandleFunc("GET /api/workloads", d.serveWorkloads)
	mux.HandleFunc("GET /api/sidecars", d.serveSidecars)
	mux.HandleFunc("GET /api/tap", d.serveTap)
	return mux
}

// window reads ?window=, bounded by the scrape interval and the retention.
func (d *Dashboard) window(r *http.Request) (time.Duration, error) {
	return d.duration(r, "window", DefaultWindow)
}

func (d *Dashboard) duration(r *http.Request, param string, def time.Duration) (time.Duration, error) {
	v := r.URL.Query().Get(param)
	if v == "" {
		return def, nil
	}
	w, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("?%s=%s: %w", param, v, err)
	}
	return min(max(w, d.cfg.ScrapeInterval), d.cfg.Retention), nil
}

func (d *Dashboard) serveGraph(w http.ResponseWriter, r *http.Request) {
	win, err := d.window(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	now := time.Now()
	series, span, bounds := d.hist.window(now.Add(-win))
	nodes, edges := graph(flows(series), span, bounds, d.cfg.Sidecars.Instances())
	writeJSON(w, Graph{Window: win.String(), GeneratedAt: now.UTC(), Nodes: nodes, Edges: edges})
}

func (d *Dashboard) serveServices(w http.ResponseWriter, r *http.Request) {
	win, err := d.window(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var rounds []round
	if r.URL.Query().Has("history") {
		h, err := d.duration(r, "history", DefaultChartHistory)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if rounds, _ = d.hist.since(time.Now().Add(-h)); rounds == nil {
			rounds = []round{}
		}
	}
	series, span, bounds := d.hist.window(time.Now().Add(-win))
	writeJSON(w, ServicesResponse{Window: win.String(),
		Services: services(flows(series), span, bounds, d.cfg.Sidecars.Instances(), rounds)})
}

func (d *Dashboard) serveWorkloads(w http.ResponseWriter, r *http.Request) {
	win, err := d.window(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	series, span, bounds := d.hist.window(time.Now().Add(-win))
	writeJSON(w, WorkloadsResponse{Window: win.String(),
		Workloads: workloads(flows(series), span, bounds, d.cfg.Sidecars.Instances())})
}

func (d *Dashboard) serveSidecars(w http.ResponseWriter, _ *http.Request) {
	resp := SidecarsResponse{ScrapeInterval: d.cfg.ScrapeInterval.String(), TapEnabled: d.cfg.Tap, Sidecars: []Sidecar{}}
	for _, in := range d.cfg.Sidecars.Instances() {
		s := Sidecar{Node: in.NodeID, Metrics: scrapeTarget(in.Metadata)}
		d.mu.Lock()
		if st := d.status[in.NodeID]; st != nil {
			s.LastScrape, s.Error = st.LastScrape, st.Error
		}
		d.mu.Unlock()
		if d.cfg.Tap {
			s.Admin, s.Tapping = in.Metadata.Admin, d.taps.isOpen(in.NodeID)
		}
		resp.Sidecars = append(resp.Sidecars, s)
	}
	writeJSON(w, resp)
}

// serveTap streams tapped requests: Server-Sent Events when the client accepts
// text/event-stream (the web UI's EventSource), else JSON lines. ?service= and
// ?workload= filter; ?backlog=false skips the recent requests.
func (d *Dashboard) serveTap(w http.ResponseWriter, r *http.Request) {
	if !d.cfg.Tap {
		http.Error(w, "the tap is off: it reads the sidecars' admin addresses, which only local mode "+
			"(trellis up, or trellis control --dashboard-tap) can reach", http.StatusNotFound)
		return
	}
	q := r.URL.Query()
	f := tapFilter{service: q.Get("service"), workload: q.Get("workload")}
	sse := strings.Contains(r.Header.Get("Accept"), "text/event-stream")
	if sse {
		w.Header().Set("Content-Type", "text/event-stream")
	} else {
		w.Header().Set("Content-Type", "application/x-ndjson")
	}
	w.Header().Set("Cache-Control", "no-store")
	rc := http.NewResponseController(w)
	backlog, ch, cancel := d.taps.subscribe()
	defer cancel()
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	write := func(ev *TapEvent) error {
		if !f.match(ev) {
			return nil
		}
		if sse {
			if _, err := w.Write([]byte("data: ")); err != nil {
				return err
			}
		}
		if err := enc.Encode(ev); err != nil {
			return err
		}
		if sse {
			_, err := w.Write([]byte("\n"))
			return err
		}
		return nil
	}
	if q.Get("backlog") != "false" {
		for i := range backlog {
			if write(&backlog[i]) != nil {
				return
			}
		}
	}
	if sse {
		w.Write([]byte(": tap open\n\n"))
	}
	if rc.Flush() != nil {
		return
	}
	ping := time.NewTicker(15 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-ping.C:
			beat := "\n"
			if sse {
				beat = ": keep-alive\n\n"
			}
			if _, err := w.Write([]byte(beat)); err != nil || rc.Flush() != nil {
				return
			}
		case ev := <-ch:
			if write(&ev) != nil {
				return
			}
			for more := true; more; {
				select {
				case ev := <-ch:
					if write(&ev) != nil {
						return
					}
				default:
					more = false
				}
			}
			if rc.Flush() != nil {
				return
			}
		}
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encoding: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(append(b, '\n'))
}
