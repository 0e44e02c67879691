package demo

import (
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// quietLogger keeps the collector's own logs to warnings and errors so the
// demo's summary stays readable.
func quietLogger() zap.Option {
	return zap.WrapCore(func(c zapcore.Core) zapcore.Core {
		return zapcore.NewSamplerWithOptions(levelCore{c}, 1, 10, 0)
	})
}

type levelCore struct{ zapcore.Core }

func (l levelCore) Enabled(lvl zapcore.Level) bool {
	return lvl >= zapcore.WarnLevel && l.Core.Enabled(lvl)
}
func (l levelCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if !l.Enabled(e.Level) {
		return ce
	}
	return l.Core.Check(e, ce)
}
func (l levelCore) With(f []zapcore.Field) zapcore.Core { return levelCore{l.Core.With(f)} }
