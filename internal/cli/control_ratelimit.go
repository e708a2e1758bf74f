package cli

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/spf13/pflag"

	"trellis.dev/trellis/internal/control"
	"trellis.dev/trellis/internal/ratelimit"
)

// rateLimitFlags are the rate-limiting flags of `trellis control`.
type rateLimitFlags struct {
	serviceAddr, store, redisAddr, failureMode string
	redisTimeout, timeout                      time.Duration
	failureModeDeny                            bool
}

func addRateLimitFlags(f *pflag.FlagSet) *rateLimitFlags {
	r := &rateLimitFlags{}
	f.StringVar(&r.serviceAddr, "ratelimit-addr", "", "address of an external rate-limit service (trellis ratelimit) for Global rules; empty: the control plane serves it on --xds-addr")
	f.StringVar(&r.store, "ratelimit-store", control.RateLimitStoreMemory, "store of the embedded rate-limit service: memory or redis")
	f.StringVar(&r.redisAddr, "redis-addr", "", "Redis address for --ratelimit-store redis (password from $TRELLIS_REDIS_PASSWORD)")
	f.DurationVar(&r.redisTimeout, "redis-timeout", 0, "bound on each Redis call of the embedded rate-limit service (default 100ms)")
	f.StringVar(&r.failureMode, "ratelimit-failure-mode", "open", "what the embedded rate-limit service answers when its store fails: open (allow) or closed (refuse)")
	f.DurationVar(&r.timeout, "ratelimit-timeout", 0, "bound on a sidecar's call to the rate-limit service (default 100ms)")
	f.BoolVar(&r.failureModeDeny, "ratelimit-failure-mode-deny", false, "sidecars refuse requests (429) when the rate-limit service cannot be asked")
	return r
}

func (r *rateLimitFlags) config() (control.RateLimitConfig, error) {
	mode, err := ratelimit.ParseFailureMode(r.failureMode)
	if err != nil {
		return control.RateLimitConfig{}, fmt.Errorf("--ratelimit-failure-mode: %w", err)
	}
	cfg := control.RateLimitConfig{ServiceAddr: r.serviceAddr, Store: r.store, FailureMode: mode,
		Timeout: r.timeout, FailureModeDeny: r.failureModeDeny}
	cfg.Redis.Addr, cfg.Redis.Timeout, cfg.Redis.Password = r.redisAddr, r.redisTimeout, os.Getenv("TRELLIS_REDIS_PASSWORD")
	if r.serviceAddr != "" {
		_, port, err := net.SplitHostPort(r.serviceAddr)
		if err != nil {
			return cfg, fmt.Errorf("--ratelimit-addr: %w", err)
		}
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return cfg, fmt.Errorf("--ratelimit-addr %q: port must be 1..65535", r.serviceAddr)
		}
	}
	if r.store == control.RateLimitStoreRedis && r.redisAddr == "" {
		return cfg, fmt.Errorf("--ratelimit-store redis needs --redis-addr")
	}
	return cfg, nil
}

// args are the flags to give `trellis control` (for `trellis up`): those that differ
// from their defaults.
func (r *rateLimitFlags) args() []string {
	var out []string
	add := func(name, value, def string) {
		if value != def {
			out = append(out, "--"+name, value)
		}
	}
	add("ratelimit-addr", r.serviceAddr, "")
	add("ratelimit-store", r.store, control.RateLimitStoreMemory)
	add("redis-addr", r.redisAddr, "")
	add("ratelimit-failure-mode", r.failureMode, "open")
	if r.redisTimeout != 0 {
		out = append(out, "--redis-timeout", r.redisTimeout.String())
	}
	if r.timeout != 0 {
		out = append(out, "--ratelimit-timeout", r.timeout.String())
	}
	if r.failureModeDeny {
		out = append(out, "--ratelimit-failure-mode-deny")
	}
	return out
}
