// Package memstore is the rate-limit service's in-memory store: counters that live in
// one process, for the service embedded in the control plane or run alone with one
// replica (local mode's default). Replicas of the service do not share it; use
// redisstore for that.
//
// # Data
//
// Counters sit in a fixed number of shards, each a map guarded by its own mutex, chosen
// by a hash of the key, so that concurrent requests for different clients rarely wait
// for one another. A counter expires ttl after it was created (the service names a new
// counter for every window, so an expired counter is never needed again). Expired
// counters are swept lazily: a shard is swept, under its lock, when a new counter is
// added to it and the shard was last swept more than a sweep interval ago. There is no
// background goroutine.
package memstore
