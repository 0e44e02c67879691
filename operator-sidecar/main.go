// Command operator-sidecar is opsight's sidecar: an OpenTelemetry Collector
// distribution that tails an operator's logs, receives its OTLP traces,
// enriches both and feeds Loki, Tempo and Prometheus.
//
//	operator-sidecar                     # pipeline from OPSIGHT_* environment settings
//	operator-sidecar --config FILE       # standard collector YAML
//	operator-sidecar demo                # simulated operator + sidecar, no external service
//	operator-sidecar env-config          # print the configuration the environment gives
//	operator-sidecar webhook ...         # sidecar-injection admission webhook
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/confmap/provider/yamlprovider"
	"go.opentelemetry.io/collector/otelcol"

	"github.com/opsight/opsight/collector"
	"github.com/opsight/opsight/internal/buildinfo"
	"github.com/opsight/opsight/operator-sidecar/internal/demo"
	"github.com/opsight/opsight/operator-sidecar/internal/envconfig"
)

func main() {
	if err := newRootCommand().Execute(); err != nil {
		os.Exit(1)
	}
}

func collectorSettings() otelcol.CollectorSettings {
	return otelcol.CollectorSettings{
		BuildInfo: component.BuildInfo{
			Command:     "operator-sidecar",
			Description: "opsight sidecar: operator logs and traces, enriched, to Loki, Tempo and Prometheus",
			// The bare version: the collector reports it as its own
			// service.version and the Loki exporter's User-Agent.
			Version: buildinfo.Get().Version,
		},
		Factories: collector.Components,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{ResolverSettings: confmap.ResolverSettings{
			// Without --config the pipeline comes from the OPSIGHT_* environment.
			URIs: []string{envconfig.Scheme + ":"},
			ProviderFactories: []confmap.ProviderFactory{
				envconfig.NewProviderFactory(), fileprovider.NewFactory(), envprovider.NewFactory(), yamlprovider.NewFactory(),
			},
			DefaultScheme: "env",
		}},
	}
}

func newRootCommand() *cobra.Command {
	root := otelcol.NewCommand(collectorSettings())
	// cobra's default prints "version X" only; add revision and Go version.
	root.SetVersionTemplate(buildinfo.Get().Print(root.Name()))
	root.AddCommand(demo.Command(collectorSettings), envConfigCommand(), webhookCommand())
	return root
}

func envConfigCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "env-config",
		Short: "Print the collector configuration built from the OPSIGHT_* environment",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s := envconfig.FromEnv(os.Getenv)
			if err := s.Validate(); err != nil {
				return err
			}
			y, err := s.YAML()
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(cmd.OutOrStdout(), y)
			return err
		},
	}
}
