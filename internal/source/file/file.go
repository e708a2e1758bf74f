package file

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"

	"trellis.dev/trellis/internal/config"
	"trellis.dev/trellis/internal/store"
)

// debounce is how long after the last event in a directory its files are read again:
// editors save in bursts of events (write temp file, rename, chmod). In a directory that
// never goes quiet, files are read again at most maxDebounce after the first event.
const (
	debounce    = 100 * time.Millisecond
	maxDebounce = time.Second
)

// Config configures a Source.
type Config struct {
	// Paths are the config files to read and watch.
	Paths []string
	// Store receives the content of every valid file, under the file's path.
	Store *store.Store
	// Logger receives one line per load, removal and problem. Nil discards.
	Logger *slog.Logger
}

// Source loads config files into a store and keeps them loaded as they change.
type Source struct {
	store  *store.Store
	log    *slog.Logger
	files  []*watchedFile            // in the order given
	byDir  map[string][]*watchedFile // by absolute parent directory
	synced chan struct{}
	ran    atomic.Bool

	// afterReload, if set before Run, is called by Run after each debounced reload with
	// the time the reload started: tests wait on it to know that a file was read after
	// they wrote it.
	afterReload func(started time.Time)

	mu     sync.Mutex
	errors map[string][]error // the current problems of each file, by path
}

// watchedFile is one config file. Only Run's goroutine uses it.
type watchedFile struct {
	path string // as the user wrote it (cleaned): the store's source name, positions
	abs  string

	seen    bool // the file has existed since Run started
	read    bool // digest is the content last read
	digest  [sha256.Size]byte
	readErr string // the read error last reported, so it is reported once
	applied bool   // the store holds a version of this file
}

// New checks cfg and returns a Source; Run starts it.
func New(cfg Config) (*Source, error) {
	if len(cfg.Paths) == 0 {
		return nil, errors.New("file source: no paths")
	}
	if cfg.Store == nil {
		return nil, errors.New("file source: no store")
	}
	s := &Source{
		store:  cfg.Store,
		log:    cfg.Logger,
		byDir:  map[string][]*watchedFile{},
		synced: make(chan struct{}),
		errors: map[string][]error{},
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	seen := map[string]bool{}
	for _, p := range cfg.Paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, fmt.Errorf("file source: resolving %s: %w", p, err)
		}
		if seen[abs] {
			continue
		}
		seen[abs] = true
		f := &watchedFile{path: filepath.Clean(p), abs: abs}
		s.files = append(s.files, f)
		dir := filepath.Dir(abs)
		s.byDir[dir] = append(s.byDir[dir], f)
	}
	return s, nil
}

// Run loads every file, then watches them until ctx is done, and returns nil then. An
// invalid or missing file does not stop it: its problems are logged and reported by
// Errors. It returns an error only if the files cannot be watched at all. Run may be
// called once.
func (s *Source) Run(ctx context.Context) error {
	if !s.ran.CompareAndSwap(false, true) {
		return errors.New("file source: Run called twice")
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("starting the config file watcher: %w", err)
	}
	defer w.Close()
	// Watch before the first load, so that no change between the two is missed.
	for _, dir := range slices.Sorted(maps.Keys(s.byDir)) {
		if err := w.Add(dir); err != nil {
			return fmt.Errorf("watching config directory %s: %w", dir, err)
		}
	}
	for _, f := range s.files {
		s.load(f)
	}
	close(s.synced)

	timer := time.NewTimer(debounce)
	timer.Stop()
	defer timer.Stop()
	pending := map[string]bool{} // directories with events since the last load
	var firstPending time.Time   // when the first of them came
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("config file watcher stopped")
			}
			if dir := filepath.Dir(ev.Name); s.byDir[dir] != nil {
				if len(pending) == 0 {
					firstPending = time.Now()
				}
				pending[dir] = true
				timer.Reset(min(debounce, time.Until(firstPending.Add(maxDebounce))))
			}
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("config file watcher stopped")
			}
			s.log.Warn("watching config files", "error", err)
		case <-timer.C:
			started := time.Now()
			for _, dir := range slices.Sorted(maps.Keys(pending)) {
				for _, f := range s.byDir[dir] {
					s.load(f)
				}
			}
			clear(pending)
			if s.afterReload != nil {
				s.afterReload(started)
			}
		}
	}
}

// Synced is closed once every file has been loaded (or found invalid) for the first
// time. It is never closed if Run fails to start watching.
func (s *Source) Synced() <-chan struct{} { return s.synced }

// Errors is every current problem, file by file in the order the files were given:
// *config.Error values with file, line and reason.
func (s *Source) Errors() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []error
	for _, f := range s.files {
		out = append(out, s.errors[f.path]...)
	}
	return out
}

// load reads f and, if its content changed since the last read, parses it and applies it.
func (s *Source) load(f *watchedFile) {
	data, err := os.ReadFile(f.abs)
	switch {
	case errors.Is(err, fs.ErrNotExist) && f.seen: // deleted: withdraw it, quietly
		if f.read || f.applied {
			s.setErrors(f, nil)
			s.store.Remove(f.path)
			s.log.Info("config file removed; its config is withdrawn", "file", f.path)
		}
		f.read, f.applied = false, false
		return
	case err != nil:
		if msg := pathErrorText(err); msg != f.readErr {
			f.readErr = msg
			s.reject(f, config.ErrorList{{Pos: config.Position{File: f.path}, Msg: "reading file: " + msg}})
		}
		return
	}
	f.seen, f.readErr = true, ""
	digest := sha256.Sum256(data)
	if f.read && digest == f.digest {
		return
	}
	f.read, f.digest = true, digest
	set, err := config.Parse(f.path, data)
	if err != nil {
		var list config.ErrorList
		if !errors.As(err, &list) {
			list = config.ErrorList{{Pos: config.Position{File: f.path}, Msg: err.Error()}}
		}
		s.reject(f, list)
		return
	}
	s.setErrors(f, nil) // before the store signals the change, so its readers see both
	s.store.Replace(f.path, set)
	f.applied = true
	s.log.Info("config file loaded", "file", f.path, "workloads", len(set.Workloads), "services", len(set.Services))
}

// reject records and logs, one line each, the problems of a file that is not applied.
func (s *Source) reject(f *watchedFile, problems config.ErrorList) {
	keeping := "nothing (no valid version yet)"
	if f.applied {
		keeping = "its last good version"
	}
	errs := make([]error, len(problems))
	for i, p := range problems {
		errs[i] = p
		attrs := []any{"file", p.Pos.File, "line", p.Pos.Line}
		if what := strings.TrimSpace(p.Kind + " " + p.Name); what != "" {
			attrs = append(attrs, "resource", what)
		}
		if p.Field != "" {
			attrs = append(attrs, "field", p.Field)
		}
		attrs = append(attrs, "reason", p.Msg, "applied", keeping)
		s.log.Warn("config file rejected", attrs...)
	}
	s.setErrors(f, errs)
}

func (s *Source) setErrors(f *watchedFile, errs []error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(errs) == 0 {
		delete(s.errors, f.path)
		return
	}
	s.errors[f.path] = errs
}

// pathErrorText is err without the path that the problem is positioned at anyway.
func pathErrorText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
