package redisstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// DefaultTimeout bounds each Redis call when Config.Timeout is zero.
const DefaultTimeout = 100 * time.Millisecond

// incrementScript adds ARGV[1] to KEYS[1] and gives the counter a lifetime of ARGV[2]
// milliseconds if it has none; it returns the new value.
var incrementScript = redis.NewScript(`
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return n
`)

// Config configures a Store.
type Config struct {
	// Addr is Redis's host:port. Required.
	Addr string
	// Username and Password authenticate, if Redis asks for it.
	Username, Password string
	// DB is the database number.
	DB int
	// Timeout bounds dialing, and each read and write; default DefaultTimeout.
	Timeout time.Duration
	// PoolSize is the number of connections kept; default go-redis's (10 per CPU).
	PoolSize int
	// Logger receives go-redis's own messages (such as failed dials), at Debug: the
	// service logs outages itself, once. go-redis has one logger per process, so the
	// Logger of the last Store created gets them. Nil discards.
	Logger *slog.Logger
}

// Store keeps counters in Redis.
type Store struct {
	client *redis.Client
}

// New returns a Store for cfg. It does not connect: the first call does.
func New(cfg Config) (*Store, error) {
	if cfg.Addr == "" {
		return nil, errors.New("creating Redis store: no address")
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	client := redis.NewClient(&redis.Options{
		Addr:                  cfg.Addr,
		Username:              cfg.Username,
		Password:              cfg.Password,
		DB:                    cfg.DB,
		DialTimeout:           timeout,
		DialerRetries:         1,
		ReadTimeout:           timeout,
		WriteTimeout:          timeout,
		PoolTimeout:           timeout,
		ContextTimeoutEnabled: true,
		MaxRetries:            -1, // a rate-limit answer is only useful now
		PoolSize:              cfg.PoolSize,
		DisableIdentity:       true,
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
	})
	redisLog.use(cfg.Logger)
	return &Store{client: client}, nil
}

// redisLog is go-redis's process-wide logger, forwarding to a *slog.Logger at Debug.
var redisLog = &redisLogger{}

type redisLogger struct {
	once sync.Once
	log  atomic.Pointer[slog.Logger]
}

func (l *redisLogger) use(log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l.log.Store(log)
	l.once.Do(func() { redis.SetLogger(l) })
}

func (l *redisLogger) Printf(ctx context.Context, format string, v ...any) {
	if log := l.log.Load(); log.Enabled(ctx, slog.LevelDebug) {
		log.DebugContext(ctx, "go-redis: "+fmt.Sprintf(format, v...))
	}
}

// Increment adds hits to the counter key, creating it with a lifetime of ttl, and
// returns its new value.
func (s *Store) Increment(ctx context.Context, key string, hits uint64, ttl time.Duration) (uint64, error) {
	ms := ttl.Milliseconds()
	if ms < 1 {
		ms = 1
	}
	n, err := incrementScript.Run(ctx, s.client, []string{key}, hits, ms).Uint64()
	if err != nil {
		return 0, fmt.Errorf("incrementing %s in Redis at %s: %w", key, s.client.Options().Addr, err)
	}
	return n, nil
}

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("pinging Redis at %s: %w", s.client.Options().Addr, err)
	}
	return nil
}

// Close closes the connections.
func (s *Store) Close() error { return s.client.Close() }
