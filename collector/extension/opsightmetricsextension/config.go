package opsightmetricsextension

import (
	"errors"
	"fmt"
	"net"

	"go.opentelemetry.io/collector/config/confighttp"

	"github.com/opsight/opsight/internal/conventions"
)

// Paths served on the endpoint.
const (
	MetricsPath = "/metrics"
	HealthPath  = "/healthz"
)

// Config is the opsightmetrics extension's configuration: an HTTP server
// (endpoint, TLS, timeouts as in any collector HTTP server).
type Config struct {
	confighttp.ServerConfig `mapstructure:",squash"`

	_ struct{} // prevent unkeyed literals
}

func createDefaultConfig() *Config {
	sc := confighttp.NewDefaultServerConfig()
	sc.NetAddr.Endpoint = conventions.DefaultMetricsAddr
	return &Config{ServerConfig: sc}
}

// Validate checks every key and names the one that is wrong.
func (c *Config) Validate() error {
	ep := c.NetAddr.Endpoint
	if ep == "" {
		return errors.New("endpoint must be set, e.g. \":9464\" (host:port to serve /metrics and /healthz on)")
	}
	if _, port, err := net.SplitHostPort(ep); err != nil || port == "" {
		return fmt.Errorf("endpoint %q is not host:port (e.g. \":9464\" or \"127.0.0.1:9464\")", ep)
	}
	return nil
}
