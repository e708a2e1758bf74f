// Package file is the config source of local mode: it reads the mesh's YAML files,
// feeds each valid file to the config store, and watches the files for changes.
//
// # Data flow
//
// Run loads every file once (then Synced is closed) and watches the files' parent
// directories with fsnotify, so that files replaced by rename (as editors and
// Kubernetes ConfigMap volumes do) are seen. Events are debounced: 100ms after the last
// event in a directory, each watched file in it is read again, and parsed if its bytes
// changed. A valid file replaces its source in the store (the source is named by the
// file's path); an invalid one is rejected whole: each problem is logged once at Warn
// with file, line and reason, is reported by Errors, and the store keeps the file's last
// good content. A file that disappears is removed from the store.
//
// # Concurrency
//
// Run's goroutine owns the watcher, the debounce timer and the per-file state; it
// starts no goroutines of its own (fsnotify's reader stops when Run closes the watcher
// on return). Errors may be called from any goroutine: the current problems are guarded
// by a mutex.
package file
