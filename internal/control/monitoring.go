package control

import (
	"encoding/json"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"trellis.dev/trellis/internal/xdsgen"
)

// monitoringHandler serves /metrics, /ready, /debug/config and /debug/xds.
func monitoringHandler(metrics *prometheus.Registry, tr *translator) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(metrics, promhttp.HandlerOpts{Registry: metrics}))
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) {
		if tr.state.Load() == nil {
			http.Error(w, "not ready: loading configuration", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	mux.HandleFunc("GET /debug/config", func(w http.ResponseWriter, r *http.Request) {
		st := tr.state.Load()
		if st == nil {
			http.Error(w, "no configuration translated yet", http.StatusServiceUnavailable)
			return
		}
		sourceErrors := []string{}
		for _, e := range tr.source.Errors() {
			sourceErrors = append(sourceErrors, e.Error())
		}
		writeJSON(w, struct {
			*state
			SourceErrors []string `json:"sourceErrors"`
		}{st, sourceErrors})
	})
	mux.HandleFunc("GET /debug/xds", func(w http.ResponseWriter, r *http.Request) {
		st := tr.state.Load()
		if st == nil {
			http.Error(w, "no configuration translated yet", http.StatusServiceUnavailable)
			return
		}
		if node := r.URL.Query().Get("node"); node != "" {
			res, ok := st.resources[node]
			if !ok {
				http.Error(w, "no proxy "+node+" is connected", http.StatusNotFound)
				return
			}
			writeJSON(w, xdsgen.Merge(res.Scoped, res.Own))
			return
		}
		all := make(map[string]*xdsgen.Resources, len(st.resources))
		for node, res := range st.resources {
			all[node] = xdsgen.Merge(res.Scoped, res.Own)
		}
		writeJSON(w, all) // encoding/json sorts the node IDs
	})
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, "encoding: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(b, '\n'))
}
