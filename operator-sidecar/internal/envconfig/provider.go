package envconfig

import (
	"context"
	"os"

	"go.opentelemetry.io/collector/confmap"
	"go.uber.org/zap"
)

// Scheme is the config URI the sidecar uses when no --config is given.
const Scheme = "opsightenv"

// NewProviderFactory returns a confmap provider that builds the collector
// configuration from the environment. It fails, with the fix in the message,
// only when it is actually used.
func NewProviderFactory() confmap.ProviderFactory {
	return confmap.NewProviderFactory(func(set confmap.ProviderSettings) confmap.Provider { return provider{logger: set.Logger} })
}

type provider struct{ logger *zap.Logger }

func (p provider) Retrieve(context.Context, string, confmap.WatcherFunc) (*confmap.Retrieved, error) {
	s := FromEnv(os.Getenv)
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if p.logger != nil {
		for _, w := range s.Warnings() {
			p.logger.Warn(w)
		}
	}
	y, err := s.YAML()
	if err != nil {
		return nil, err
	}
	return confmap.NewRetrievedFromYAML([]byte(y))
}

func (provider) Scheme() string                 { return Scheme }
func (provider) Shutdown(context.Context) error { return nil }
