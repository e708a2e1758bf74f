// Package store holds the mesh's typed, versioned configuration: the merged content of
// every source (a config file today; Kubernetes informers and registrations later), as
// immutable snapshots that the model reads.
//
// # Data flow
//
// A source calls Replace with everything it currently holds, under a name of its own
// (a file path), or Remove when it is gone. The store merges all sources with
// config.Combine, oldest source first, into a new Snapshot and bumps the version when
// the merged content (objects, their positions, conflicts) differs from the last
// snapshot's; then it signals subscribers. Subscribers read Snapshot() when signalled:
// signals are coalesced, so a slow reader sees only the newest snapshot.
//
// # Conflicts
//
// When two sources define the same object (kind, namespace, name), the one from the
// source that was added first is kept, and Snapshot.Errors reports the other, naming
// both positions. Removing the first source makes the other one win.
//
// # Concurrency
//
// All methods are safe for concurrent use. A mutex serialises writers (Replace, Remove,
// Subscribe); readers load the current snapshot from an atomic pointer without locking.
// Snapshots and the Sets in them are never modified once published, and the store does
// not modify the Sets it is given: a source must not modify a Set after passing it to
// Replace.
package store
