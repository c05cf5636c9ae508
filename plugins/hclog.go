package plugins

import (
	"context"
	"io"
	"log"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// slogAdapter lets go-plugin log (including the lines a plugin writes to stderr, which go-plugin
// parses and re-logs at their level) into mlgate's slog logger.
type slogAdapter struct {
	l    *slog.Logger
	name string
	args []any
}

func newHCLog(l *slog.Logger, name string) hclog.Logger { return &slogAdapter{l: l, name: name} }

func (a *slogAdapter) Log(level hclog.Level, msg string, args ...any) {
	var lv slog.Level
	switch {
	case level <= hclog.Debug:
		lv = slog.LevelDebug
	case level == hclog.Info:
		lv = slog.LevelInfo
	case level == hclog.Warn:
		lv = slog.LevelWarn
	default:
		lv = slog.LevelError
	}
	all := append(append([]any{"plugin_log", a.name}, a.args...), args...)
	a.l.Log(context.Background(), lv, msg, all...)
}

func (a *slogAdapter) Trace(msg string, args ...any) { a.Log(hclog.Trace, msg, args...) }
func (a *slogAdapter) Debug(msg string, args ...any) { a.Log(hclog.Debug, msg, args...) }
func (a *slogAdapter) Info(msg string, args ...any)  { a.Log(hclog.Info, msg, args...) }
func (a *slogAdapter) Warn(msg string, args ...any)  { a.Log(hclog.Warn, msg, args...) }
func (a *slogAdapter) Error(msg string, args ...any) { a.Log(hclog.Error, msg, args...) }
func (a *slogAdapter) IsTrace() bool                 { return false }
func (a *slogAdapter) IsDebug() bool                 { return a.l.Enabled(context.Background(), slog.LevelDebug) }
func (a *slogAdapter) IsInfo() bool                  { return a.l.Enabled(context.Background(), slog.LevelInfo) }
func (a *slogAdapter) IsWarn() bool                  { return a.l.Enabled(context.Background(), slog.LevelWarn) }
func (a *slogAdapter) IsError() bool                 { return true }
func (a *slogAdapter) ImpliedArgs() []any            { return a.args }
func (a *slogAdapter) With(args ...any) hclog.Logger {
	return &slogAdapter{l: a.l, name: a.name, args: append(append([]any{}, a.args...), args...)}
}
func (a *slogAdapter) Name() string { return a.name }
func (a *slogAdapter) Named(name string) hclog.Logger {
	n := name
	if a.name != "" {
		n = a.name + "." + name
	}
	return &slogAdapter{l: a.l, name: n, args: a.args}
}
func (a *slogAdapter) ResetNamed(name string) hclog.Logger {
	return &slogAdapter{l: a.l, name: name, args: a.args}
}
func (a *slogAdapter) SetLevel(hclog.Level)  {}
func (a *slogAdapter) GetLevel() hclog.Level { return hclog.Debug }
func (a *slogAdapter) StandardLogger(*hclog.StandardLoggerOptions) *log.Logger {
	return slog.NewLogLogger(a.l.Handler(), slog.LevelInfo)
}
func (a *slogAdapter) StandardWriter(o *hclog.StandardLoggerOptions) io.Writer {
	return a.StandardLogger(o).Writer()
}
