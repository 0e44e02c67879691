package main

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/opsight/opsight/internal/riskpatterns"
)

// Both collectors run one logs pipeline from the same file glob to the same
// sink, with checkpoints in file_storage, in-memory sending queues, their
// own telemetry off. $DIR is the run's directory.

// opsightConfig: operatorlogs → operatorenrich → loki.
func opsightConfig(glob, sink string) string {
	return fmt.Sprintf(`extensions:
  file_storage:
    directory: $DIR/storage
receivers:
  operatorlogs:
    include: [%q]
    start_at: beginning
    storage: file_storage
processors:
  operatorenrich:
    revision: v1.0.0
exporters:
  loki:
    endpoint: %s/loki/api/v1/push
service:
  extensions: [file_storage]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
  pipelines:
    logs:
      receivers: [operatorlogs]
      processors: [operatorenrich]
      exporters: [loki]
`, glob, sink)
}

// contribConfig: filelog (container + json parsers) → transform setting the
// same fields opsight sets (trace context from four spellings, reconcile id,
// revision, one attribute per risk pattern of the default catalogue matched
// as a case-insensitive regular expression, as OTTL has no multi-pattern
// matcher) → otlphttp with snappy, like Loki's protobuf push.
func contribConfig(glob, sink string, withRisk bool) string {
	var risk strings.Builder
	for _, p := range riskpatterns.Default {
		if !withRisk {
			break
		}
		alts := make([]string, len(p.Needles))
		for i, n := range p.Needles {
			alts[i] = regexp.QuoteMeta(n)
		}
		re := "(?i)(" + strings.Join(alts, "|") + ")"
		stmt := fmt.Sprintf(`set(attributes["risk.%s"], true) where IsMatch(body, %s)`, p.ID, ottlString(re))
		fmt.Fprintf(&risk, "          - %s\n", yamlSingle(stmt))
	}
	return fmt.Sprintf(`extensions:
  file_storage:
    directory: $DIR/storage
receivers:
  filelog:
    include: [%q]
    start_at: beginning
    include_file_path: true
    storage: file_storage
    max_log_size: 262144
    operators:
      - type: container
        format: containerd
        add_metadata_from_filepath: true
      - type: json_parser
        if: 'body matches "^\\{"'
        parse_from: body
        parse_to: attributes
        on_error: send_quiet
        timestamp:
          parse_from: attributes.ts
          layout_type: gotime
          layout: "2006-01-02T15:04:05.000000Z07:00"
        severity:
          parse_from: attributes.level
processors:
  transform:
    error_mode: ignore
    log_statements:
      - context: resource
        statements:
          - set(attributes["service.name"], "etcd-operator")
          - set(attributes["service.version"], "v1.0.0")
          - set(attributes["k8s.cluster.name"], "bench")
      - context: log
        statements:
          - set(attributes["reconcile_id"], attributes["reconcileID"]) where attributes["reconcileID"] != nil
          - set(attributes["trace_id"], attributes["traceId"]) where attributes["traceId"] != nil
          - set(attributes["trace_id"], attributes["traceID"]) where attributes["traceID"] != nil
          - set(attributes["span_id"], attributes["spanId"]) where attributes["spanId"] != nil
          - set(attributes["span_id"], attributes["spanID"]) where attributes["spanID"] != nil
          - set(attributes["trace_id"], Substring(attributes["traceparent"], 3, 32)) where attributes["traceparent"] != nil
          - set(attributes["span_id"], Substring(attributes["traceparent"], 36, 16)) where attributes["traceparent"] != nil
          - set(trace_id.string, attributes["trace_id"]) where attributes["trace_id"] != nil
          - set(span_id.string, attributes["span_id"]) where attributes["span_id"] != nil
          - set(attributes["correlation"], "field") where attributes["trace_id"] != nil
%s          - keep_matching_keys(attributes, "^(level|controller|reconcile_id|trace_id|span_id|correlation|risk\\..*|log\\..*)$")
exporters:
  otlphttp:
    endpoint: %s
    compression: snappy
service:
  extensions: [file_storage]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
  pipelines:
    logs:
      receivers: [filelog]
      processors: [transform]
      exporters: [otlphttp]
`, glob, risk.String(), sink)
}

// ottlString quotes s as an OTTL string literal.
func ottlString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// yamlSingle quotes s as a YAML single-quoted scalar.
func yamlSingle(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
