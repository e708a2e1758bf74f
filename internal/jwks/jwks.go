package jwks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"time"
)

// Defaults of Config.
const (
	DefaultTimeout = 5 * time.Second
	DefaultRefresh = 20 * time.Minute
	// MaxBodyBytes bounds a key set document.
	MaxBodyBytes = 1 << 20
	// retryMin and retryMax bound the backoff after a failed fetch.
	retryMin = time.Second
	retryMax = time.Minute
)

// Config configures a Fetcher.
type Config struct {
	// Timeout bounds one fetch (connection, redirects and body). Default 5s.
	Timeout time.Duration
	// Refresh is how often a key set is fetched again. Default 20m.
	Refresh time.Duration
	// AllowPrivate allows fetching from loopback, link-local and private addresses
	// (tests, or an issuer inside your network).
	AllowPrivate bool
	// Logger receives fetch failures. Default: slog.Default().
	Logger *slog.Logger
}

// Fetcher fetches and caches key sets.
type Fetcher struct {
	cfg    Config
	client *http.Client
	log    *slog.Logger

	mu      sync.Mutex
	entries map[string]*entry // by URI; only wanted URIs
	wake    chan struct{}     // buffered 1: Want added a URI
	changed chan struct{}     // buffered 1: a key set appeared or changed
}

type entry struct {
	doc     string    // last good key set; "" before the first
	next    time.Time // when to fetch next; zero: now
	backoff time.Duration
	lastErr string
}

// New returns a Fetcher; Run makes it fetch.
func New(cfg Config) *Fetcher {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = DefaultRefresh
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	dialer := &net.Dialer{Timeout: cfg.Timeout}
	if !cfg.AllowPrivate {
		dialer.Control = refusePrivate
	}
	transport := &http.Transport{
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   cfg.Timeout,
		ResponseHeaderTimeout: cfg.Timeout,
		MaxIdleConns:          4,
		IdleConnTimeout:       time.Minute,
	}
	return &Fetcher{
		cfg:     cfg,
		client:  &http.Client{Transport: transport, Timeout: cfg.Timeout},
		log:     cfg.Logger,
		entries: map[string]*entry{},
		wake:    make(chan struct{}, 1),
		changed: make(chan struct{}, 1),
	}
}

// refusePrivate is the dialer's check of the address it is about to connect to.
func refusePrivate(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("refusing to fetch from %s: not an IP address", address)
	}
	a := ap.Addr().Unmap()
	if a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || a.IsPrivate() ||
		a.IsUnspecified() || a.IsMulticast() || a.IsInterfaceLocalMulticast() {
		return fmt.Errorf("refusing to fetch a key set from %s: loopback, link-local and private addresses need --jwks-allow-private", a)
	}
	return nil
}

// Want sets the URIs to keep fetched; the others are forgotten.
func (f *Fetcher) Want(uris []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	added := false
	for _, u := range uris {
		if f.entries[u] == nil {
			f.entries[u] = &entry{}
			added = true
		}
	}
	for u := range f.entries {
		if !slices.Contains(uris, u) {
			delete(f.entries, u)
		}
	}
	if added {
		select {
		case f.wake <- struct{}{}:
		default:
		}
	}
}

// Lookup returns the last key set fetched from uri, if any.
func (f *Fetcher) Lookup(uri string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e := f.entries[uri]; e != nil && e.doc != "" {
		return e.doc, true
	}
	return "", false
}

// Changed receives (coalesced) after a key set appeared or changed.
func (f *Fetcher) Changed() <-chan struct{} { return f.changed }

// Run fetches until ctx ends.
func (f *Fetcher) Run(ctx context.Context) error {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-f.wake:
		case <-timer.C:
		}
		next := f.fetchDue(ctx)
		timer.Reset(time.Until(next))
	}
}

// fetchDue fetches every URI whose time has come and returns when to look again.
func (f *Fetcher) fetchDue(ctx context.Context) time.Time {
	now := time.Now()
	f.mu.Lock()
	var due []string
	for u, e := range f.entries {
		if !e.next.After(now) {
			due = append(due, u)
		}
	}
	f.mu.Unlock()
	slices.Sort(due)
	for _, u := range due {
		doc, err := f.fetch(ctx, u)
		f.record(u, doc, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	next := time.Now().Add(f.cfg.Refresh)
	for _, e := range f.entries {
		if e.next.Before(next) {
			next = e.next
		}
	}
	return next
}

func (f *Fetcher) record(uri, doc string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.entries[uri]
	if e == nil {
		return // no longer wanted
	}
	if err != nil {
		e.backoff = min(max(2*e.backoff, retryMin), retryMax)
		e.next = time.Now().Add(e.backoff)
		if msg := err.Error(); msg != e.lastErr {
			e.lastErr = msg
			f.log.Warn("fetching a JWT key set", "uri", uri, "err", err, "keepingPrevious", e.doc != "")
		}
		return
	}
	e.backoff, e.lastErr = 0, ""
	e.next = time.Now().Add(f.cfg.Refresh)
	if doc != e.doc {
		e.doc = doc
		select {
		case f.changed <- struct{}{}:
		default:
		}
	}
}

// fetch GETs a key set and checks that it is one.
func (f *Fetcher) fetch(ctx context.Context, uri string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return "", fmt.Errorf("fetching %s: %w", uri, err)
	}
	if req.URL.Scheme != "https" && req.URL.Scheme != "http" {
		return "", fmt.Errorf("fetching %s: only http and https URIs are fetched", uri)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := f.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("fetching %s: %w", uri, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("fetching %s: %s", uri, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBodyBytes+1))
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", uri, err)
	}
	if len(body) > MaxBodyBytes {
		return "", fmt.Errorf("fetching %s: the key set is larger than %d bytes", uri, MaxBodyBytes)
	}
	if err := Check(body); err != nil {
		return "", fmt.Errorf("fetching %s: %w", uri, err)
	}
	return string(body), nil
}

// Check reports whether data is a JSON Web Key Set: an object with a "keys" list of
// objects that each have a "kty".
func Check(data []byte) error {
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return fmt.Errorf("not a JSON Web Key Set: %w", err)
	}
	if set.Keys == nil {
		return errors.New(`not a JSON Web Key Set: no "keys"`)
	}
	for i, k := range set.Keys {
		if _, ok := k["kty"].(string); !ok {
			return fmt.Errorf(`not a JSON Web Key Set: keys[%d] has no "kty"`, i)
		}
	}
	return nil
}
