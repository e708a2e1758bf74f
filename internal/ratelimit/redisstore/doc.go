// Package redisstore is the rate-limit service's Redis store: counters that every
// replica of the service shares, so that a Global limit is one budget however many
// replicas answer.
//
// # Algorithm
//
// A fixed window. The service names a counter per rule, client and window; Increment
// runs one Lua script, atomically on the Redis server and in one round trip:
//
//	local n = redis.call('INCRBY', KEYS[1], ARGV[1])
//	if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
//	return n
//
// so concurrent increments from any number of replicas never lose a hit, and a counter
// always expires (a ttl after its first hit) even if a replica dies between commands.
// The script is sent by its SHA (EVALSHA) and loaded once per Redis server.
//
// # Failures
//
// Every call is bounded by Config.Timeout (dial, read and write) with no retries, so a
// Redis that is down or unreachable costs a request at most about that long; the error
// is returned, and the service applies its failure mode. go-redis's connection pool
// reconnects by itself when Redis comes back.
//
// # Concurrency
//
// A Store is safe for concurrent use; go-redis's pool owns the connections and Close
// releases them.
package redisstore
