// Package grafana holds the Grafana dashboards of the mesh (mesh.json,
// service.json, workload.json); its test checks that they are valid dashboard
// models whose queries use only the metrics and labels the sidecar exports.
package grafana

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"trellis.dev/trellis/internal/proxy/reqinfo"
	"trellis.dev/trellis/internal/proxy/telemetry"
)

// exported returns the metric names (histograms as their _bucket, _sum and _count
// series) and label names a sidecar exports, after one request and one TCP
// connection, with the access log on.
func exported(t *testing.T) (metrics, labels map[string]bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tel, err := telemetry.New(ctx, telemetry.Config{
		Self:      reqinfo.Peer{Workload: "client", Namespace: "default", App: "client"},
		AccessLog: io.Discard,
		Logger:    slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Close(ctx)
	peer := &reqinfo.Peer{Workload: "reviews-v1", Namespace: "default", App: "reviews", Version: "v1"}
	tel.Record(&reqinfo.Info{Start: time.Now(), Duration: time.Millisecond, Code: 200,
		Cluster:   "outbound|8080||reviews.default.svc.cluster.local",
		Telemetry: reqinfo.Telemetry{Method: "GET", Authority: "reviews:8080", Path: "/", Proto: "HTTP/1.1", GRPCStatus: -1, Peer: peer}})
	tcp := &reqinfo.TCPInfo{Start: time.Now(), Cluster: "outbound|9000||tcp.default.svc.cluster.local", Peer: peer}
	tel.TCPOpened(tcp)
	tel.TCPClosed(tcp)
	fams, err := tel.Metrics().Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	metrics, labels = map[string]bool{}, map[string]bool{"le": true}
	for _, f := range fams {
		if f.GetType() == dto.MetricType_HISTOGRAM {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				metrics[f.GetName()+s] = true
			}
		} else {
			metrics[f.GetName()] = true
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = true
			}
		}
	}
	return metrics, labels
}

// dashboardModel is the part of Grafana's dashboard JSON model the test reads.
type dashboardModel struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Definition string          `json:"definition"`
			Datasource *datasource     `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	GridPos    *struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		Expr       string      `json:"expr"`
		RefID      string      `json:"refId"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
}

var (
	metricName = regexp.MustCompile(`\b(?:trellis|istio)_[a-z_]+\b`)
	matcher    = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"`)
	grouping   = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
	labelValue = regexp.MustCompile(`label_values\(\s*([a-z_]+)(?:\{[^}]*\})?\s*,\s*([a-z_]+)\s*\)`)
)

// checkExpr reports the metrics and labels of a PromQL expression the sidecar does
// not export, and unbalanced brackets.
func checkExpr(t *testing.T, where, expr string, metrics, labels map[string]bool) {
	t.Helper()
	names := metricName.FindAllString(expr, -1)
	if len(names) == 0 {
		t.Errorf("%s: %q uses no trellis_* metric", where, expr)
	}
	for _, n := range names {
		if !metrics[n] {
			t.Errorf("%s: metric %s is not exported by the sidecar", where, n)
		}
	}
	for _, m := range matcher.FindAllStringSubmatch(expr, -1) {
		if !labels[m[1]] {
			t.Errorf("%s: label %s is not exported by the sidecar", where, m[1])
		}
	}
	for _, m := range grouping.FindAllStringSubmatch(expr, -1) {
		for _, l := range strings.Split(m[1], ",") {
			if l = strings.TrimSpace(l); l != "" && !labels[l] {
				t.Errorf("%s: grouping label %s is not exported by the sidecar", where, l)
			}
		}
	}
	for _, pair := range []string{"()", "{}", "[]"} {
		if strings.Count(expr, pair[:1]) != strings.Count(expr, pair[1:]) {
			t.Errorf("%s: unbalanced %s in %q", where, pair, expr)
		}
	}
}

func TestDashboards(t *testing.T) {
	metrics, labels := exported(t)
	files, err := filepath.Glob("*.json")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(files)
	if want := []string{"mesh.json", "service.json", "workload.json"}; !slices.Equal(files, want) {
		t.Errorf("dashboards %v, want %v", files, want)
	}
	uids := map[string]bool{}
	for _, file := range files {
		t.Run(file, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var d dashboardModel
			dec := json.NewDecoder(strings.NewReader(string(data)))
			if err := dec.Decode(&d); err != nil {
				t.Fatalf("not a dashboard model: %v", err)
			}
			if d.UID == "" || d.Title == "" || d.SchemaVersion < 30 || uids[d.UID] {
				t.Errorf("uid %q, title %q, schemaVersion %d (unique uid, a title and a recent schema wanted)", d.UID, d.Title, d.SchemaVersion)
			}
			uids[d.UID] = true
			vars := map[string]bool{}
			for _, v := range d.Templating.List {
				vars[v.Name] = true
				switch v.Type {
				case "datasource":
					if string(v.Query) != `"prometheus"` {
						t.Errorf("variable %s: datasource query %s, want prometheus", v.Name, v.Query)
					}
				case "query":
					if v.Datasource == nil || v.Datasource.UID != "${datasource}" {
						t.Errorf("variable %s does not use the datasource variable", v.Name)
					}
					m := labelValue.FindStringSubmatch(v.Definition)
					if m == nil || !metrics[m[1]] || !labels[m[2]] {
						t.Errorf("variable %s: query %q is not label_values of an exported metric and label", v.Name, v.Definition)
					}
				}
			}
			if !vars["datasource"] {
				t.Error("no datasource variable")
			}
			ids := map[int]bool{}
			for _, p := range d.Panels {
				where := file + ": panel " + p.Title
				if p.ID == 0 || ids[p.ID] || p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.H == 0 {
					t.Errorf("%s: id %d (unique, non-zero) and gridPos %+v wanted", where, p.ID, p.GridPos)
				}
				ids[p.ID] = true
				if p.Type == "row" {
					continue
				}
				if p.Datasource == nil || p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
					t.Errorf("%s: datasource %+v, %d targets", where, p.Datasource, len(p.Targets))
				}
				refs := map[string]bool{}
				for _, tg := range p.Targets {
					if tg.RefID == "" || refs[tg.RefID] {
						t.Errorf("%s: refId %q (unique, non-empty) wanted", where, tg.RefID)
					}
					refs[tg.RefID] = true
					checkExpr(t, where, tg.Expr, metrics, labels)
					for _, v := range regexp.MustCompile(`\$([a-z_]+)`).FindAllStringSubmatch(tg.Expr, -1) {
						if !vars[v[1]] && !strings.HasPrefix(v[1], "__") {
							t.Errorf("%s: unknown variable $%s", where, v[1])
						}
					}
				}
			}
		})
	}
}
