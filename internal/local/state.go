package local

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// State is what `trellis up --state FILE` writes: the processes it runs and the
// addresses it chose. It is written once every sidecar is ready, and again whenever
// something changes.
type State struct {
	ControlPlane ControlPlaneState `json:"controlPlane"`
	Workloads    []WorkloadState   `json:"workloads"`
}

// ControlPlaneState describes the control plane process.
type ControlPlaneState struct {
	PID int `json:"pid"`
	// XDS is the plaintext xDS address; Monitoring the metrics and debug address.
	XDS        string `json:"xds"`
	Monitoring string `json:"monitoring"`
	// SecureXDS is the TLS xDS and CA address, verified with TrustBundle (a PEM file);
	// JoinToken is the file holding the token that authenticates certificate
	// requests.
	SecureXDS   string `json:"secureXds"`
	TrustBundle string `json:"trustBundle"`
	JoinToken   string `json:"joinToken"`
	// Dashboard is the dashboard's address (web UI at /, JSON API under /api/).
	Dashboard string `json:"dashboard"`
}

// WorkloadState describes one workload's app and sidecar.
type WorkloadState struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	// PID is the app's process id, absent when the workload runs no command.
	PID      int `json:"pid,omitempty"`
	ProxyPID int `json:"proxyPid"`
	// App lists the app's addresses, one per port (127.0.0.1:<targetPort>).
	App []string `json:"app"`
	// Inbound is the sidecar's inbound address of the first port; InboundPorts has
	// the inbound address of every port, keyed by port name (or number).
	Inbound      string            `json:"inbound,omitempty"`
	InboundPorts map[string]string `json:"inboundPorts,omitempty"`
	// Outbound is the sidecar's outbound listener: an HTTP proxy for the app.
	Outbound string `json:"outbound"`
	// Admin is the sidecar's admin address (/ready, /config_dump, /stats).
	Admin string `json:"admin"`
	// Metrics is the sidecar's Prometheus endpoint address (/stats/prometheus).
	Metrics string `json:"metrics"`
	// Upstreams are the local TCP binds of the workload's upstreams.
	Upstreams []string `json:"upstreams,omitempty"`
}

// workloadState describes a running workload from its plan and processes.
func workloadState(pl *plan, proxyPID, appPID int) WorkloadState {
	ws := WorkloadState{
		Name:      pl.Workload.Name,
		Namespace: pl.Workload.Namespace,
		PID:       appPID,
		ProxyPID:  proxyPID,
		App:       []string{},
		Outbound:  pl.Addrs.Outbound,
		Admin:     pl.Addrs.Admin,
		Metrics:   pl.Addrs.Metrics,
	}
	for i, p := range pl.Workload.Spec.Ports {
		k := portKey(p)
		ws.App = append(ws.App, pl.Addrs.Target[k])
		if i == 0 {
			ws.Inbound = pl.Addrs.Inbound[k]
			ws.InboundPorts = map[string]string{}
		}
		ws.InboundPorts[k] = pl.Addrs.Inbound[k]
	}
	for _, u := range pl.Workload.Spec.Upstreams {
		ws.Upstreams = append(ws.Upstreams, u.Bind)
	}
	return ws
}

// sortWorkloads orders workloads by namespace, then name.
func sortWorkloads(ws []WorkloadState) {
	sort.Slice(ws, func(i, j int) bool {
		if ws[i].Namespace != ws[j].Namespace {
			return ws[i].Namespace < ws[j].Namespace
		}
		return ws[i].Name < ws[j].Name
	})
}

// writeState stores the state as JSON at path atomically: readers see the old file
// or the new one, never half of one.
func writeState(path string, st State) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding state: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing state: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("writing state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing state: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing state: %w", err)
	}
	return nil
}

// readyClient asks sidecars' admin listeners whether they are ready.
var readyClient = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}

// proxyReady reports whether the sidecar with that admin address answers /ready
// with 200.
func proxyReady(ctx context.Context, admin string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/ready", nil)
	if err != nil {
		return false
	}
	resp, err := readyClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// stateLoop writes the state file (and calls OnState) whenever the state changed and
// every sidecar is ready, until ctx is done. It is owned by Run.
func (s *supervisor) stateLoop(ctx context.Context) {
	poll := time.NewTicker(250 * time.Millisecond)
	defer poll.Stop()
	var last []byte
	var waitingSince time.Time
	dirty, warned := true, false
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.changed:
			dirty = true
		case <-poll.C:
		}
		if !dirty {
			continue
		}
		st, notReady := s.currentState(ctx)
		if len(notReady) > 0 {
			if waitingSince.IsZero() {
				waitingSince = time.Now()
			}
			if !warned && time.Since(waitingSince) > s.cfg.ReadyTimeout {
				s.cfg.Logger.Warn("still waiting for processes to be ready", "waiting", notReady, "for", time.Since(waitingSince).Round(time.Second))
				warned = true
			}
			continue
		}
		dirty, warned, waitingSince = false, false, time.Time{}
		data, err := json.Marshal(st)
		if err != nil || string(data) == string(last) {
			continue
		}
		last = data
		if s.cfg.StatePath != "" {
			if err := writeState(s.cfg.StatePath, st); err != nil {
				s.cfg.Logger.Error("cannot write the state file", "error", err)
			}
		}
		if s.cfg.OnState != nil {
			s.cfg.OnState(st)
		}
	}
}

// currentState describes the running mesh, and lists what is not ready yet: the
// control plane or a sidecar not running, a sidecar not answering /ready with 200, an
// app not started.
func (s *supervisor) currentState(ctx context.Context) (State, []string) {
	st := State{ControlPlane: ControlPlaneState{PID: s.control.PID(), XDS: s.xds, Monitoring: s.monitoring,
		SecureXDS: s.secureXDS, TrustBundle: s.bundleFile(), JoinToken: s.tokenFile(),
		Dashboard: s.dashboard}}
	var notReady []string
	if st.ControlPlane.PID == 0 {
		notReady = append(notReady, "control")
	}
	s.mu.Lock()
	runs := make([]*workloadRun, 0, len(s.runs))
	for _, r := range s.runs {
		runs = append(runs, r)
	}
	s.mu.Unlock()
	for _, r := range runs {
		proxyPID, appPID, launched := r.pids()
		st.Workloads = append(st.Workloads, workloadState(r.plan, proxyPID, appPID))
		switch {
		case proxyPID == 0 || !proxyReady(ctx, r.plan.Addrs.Admin):
			notReady = append(notReady, r.plan.Key+" sidecar")
		case !launched:
			notReady = append(notReady, r.plan.Key+" app")
		}
	}
	if st.Workloads == nil {
		st.Workloads = []WorkloadState{}
	}
	sortWorkloads(st.Workloads)
	return st, notReady
}
