package local

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// debounce is how long the files must be quiet before a change is applied: editors
// write a file in several steps (truncate, write, rename).
const debounce = 150 * time.Millisecond

// fileWatcher reports changes to a set of files. It watches their directories, not
// the files, so a file replaced by a rename (as editors save) stays watched.
type fileWatcher struct {
	w      *fsnotify.Watcher
	files  map[string]bool // absolute paths
	logger *slog.Logger
}

func newFileWatcher(files []string, logger *slog.Logger) (*fileWatcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watching mesh files: %w", err)
	}
	fw := &fileWatcher{w: w, files: map[string]bool{}, logger: logger}
	dirs := map[string]bool{}
	for _, f := range files {
		abs, err := filepath.Abs(f)
		if err != nil {
			w.Close()
			return nil, fmt.Errorf("watching %s: %w", f, err)
		}
		fw.files[abs] = true
		dirs[filepath.Dir(abs)] = true
	}
	for d := range dirs {
		if err := w.Add(d); err != nil {
			w.Close()
			return nil, fmt.Errorf("watching directory %s: %w", d, err)
		}
	}
	return fw, nil
}

// close stops watching; it may be called more than once.
func (fw *fileWatcher) close() {
	fw.w.Close()
}

// run calls changed, from its own goroutine, once a burst of changes to the files has
// settled, until ctx is done.
func (fw *fileWatcher) run(ctx context.Context, changed func()) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-fw.w.Events:
			if !ok {
				return
			}
			if fw.files[filepath.Clean(ev.Name)] && ev.Op != fsnotify.Chmod {
				timer.Reset(debounce)
			}
		case err, ok := <-fw.w.Errors:
			if !ok {
				return
			}
			fw.logger.Warn("watching mesh files", "error", err)
		case <-timer.C:
			changed()
		}
	}
}
