package xdsserver

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/envoyproxy/go-control-plane/pkg/log"
)

// cacheLogger adapts slog to go-control-plane's logger. The cache reports routine
// events (watches opened, ADS requests waiting for their names) at Info and Warn;
// they are Debug here.
type cacheLogger struct{ l *slog.Logger }

var _ log.Logger = cacheLogger{}

func (c cacheLogger) Debugf(format string, args ...any) { c.log(slog.LevelDebug, format, args) }
func (c cacheLogger) Infof(format string, args ...any)  { c.log(slog.LevelDebug, format, args) }
func (c cacheLogger) Warnf(format string, args ...any)  { c.log(slog.LevelDebug, format, args) }
func (c cacheLogger) Errorf(format string, args ...any) { c.log(slog.LevelError, format, args) }

func (c cacheLogger) log(level slog.Level, format string, args []any) {
	if !c.l.Enabled(context.Background(), level) {
		return
	}
	c.l.Log(context.Background(), level, fmt.Sprintf(format, args...))
}
