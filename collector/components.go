// Package collector is opsight's OpenTelemetry Collector distribution: the
// component list the operator-sidecar (and a gateway) is built from.
package collector

import (
	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/storage/filestorage"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/debugexporter"
	"go.opentelemetry.io/collector/exporter/otlpexporter"
	"go.opentelemetry.io/collector/exporter/otlphttpexporter"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/batchprocessor"
	"go.opentelemetry.io/collector/processor/memorylimiterprocessor"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/service/telemetry/otelconftelemetry"

	"github.com/opsight/opsight/collector/exporter/localfileexporter"
	"github.com/opsight/opsight/collector/exporter/lokiexporter"
	"github.com/opsight/opsight/collector/exporter/redmetricsexporter"
	"github.com/opsight/opsight/collector/extension/opsightmetricsextension"
	"github.com/opsight/opsight/collector/processor/adaptivesamplingprocessor"
	"github.com/opsight/opsight/collector/processor/operatorenrichprocessor"
	"github.com/opsight/opsight/collector/receiver/operatorlogsreceiver"
	"github.com/opsight/opsight/internal/selftelemetry"
)

// Components returns the factories of the distribution. Exporters are
// wrapped so their queue, sent and dropped figures show on the sidecar's
// metrics endpoint as opsight_export_*.
func Components() (otelcol.Factories, error) {
	m := selftelemetry.Default()
	var err error
	f := otelcol.Factories{Telemetry: otelconftelemetry.NewFactory()}
	if f.Receivers, err = otelcol.MakeFactoryMap[receiver.Factory](
		otlpreceiver.NewFactory(),
		operatorlogsreceiver.NewFactory(),
	); err != nil {
		return f, err
	}
	if f.Processors, err = otelcol.MakeFactoryMap[processor.Factory](
		memorylimiterprocessor.NewFactory(),
		batchprocessor.NewFactory(),
		operatorenrichprocessor.NewFactory(),
		adaptivesamplingprocessor.NewFactory(),
	); err != nil {
		return f, err
	}
	if f.Exporters, err = otelcol.MakeFactoryMap[exporter.Factory](
		m.WrapExporter(otlpexporter.NewFactory()),
		m.WrapExporter(otlphttpexporter.NewFactory()),
		m.WrapExporter(lokiexporter.NewFactory()),
		m.WrapExporter(localfileexporter.NewFactory()),
		redmetricsexporter.NewFactory(),
		debugexporter.NewFactory(),
	); err != nil {
		return f, err
	}
	if f.Extensions, err = otelcol.MakeFactoryMap[extension.Factory](
		filestorage.NewFactory(),
		opsightmetricsextension.NewFactory(),
	); err != nil {
		return f, err
	}
	return f, nil
}
