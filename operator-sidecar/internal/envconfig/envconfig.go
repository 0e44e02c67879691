// Package envconfig builds the sidecar's collector configuration from the
// environment settings of CONVENTIONS.md, so the sidecar runs with no config
// file (that is how the chart injects it).
package envconfig

import (
	"fmt"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/opsight/opsight/internal/conventions"
)

// Settings are the environment settings, already read.
type Settings struct {
	LogInclude   []string
	Revision     string
	LokiURL      string
	TracesURL    string
	OTLPGRPCAddr string
	OTLPHTTPAddr string
	MetricsAddr  string
	StateDir     string
	PodName      string
	PodNamespace string
	Container    string
}

// FromEnv reads Settings with the documented defaults.
func FromEnv(getenv func(string) string) Settings {
	or := func(k, def string) string {
		if v := strings.TrimSpace(getenv(k)); v != "" {
			return v
		}
		return def
	}
	s := Settings{
		Revision:     getenv(conventions.EnvRevision),
		LokiURL:      strings.TrimSpace(getenv(conventions.EnvLokiURL)),
		TracesURL:    strings.TrimSpace(getenv(conventions.EnvTracesURL)),
		OTLPGRPCAddr: or(conventions.EnvOTLPGRPCAddr, conventions.DefaultOTLPGRPCAddr),
		OTLPHTTPAddr: or(conventions.EnvOTLPHTTPAddr, conventions.DefaultOTLPHTTPAddr),
		MetricsAddr:  or(conventions.EnvMetricsAddr, conventions.DefaultMetricsAddr),
		StateDir:     or(conventions.EnvStateDir, conventions.DefaultStateDir),
		PodName:      getenv(conventions.EnvPodName),
		PodNamespace: getenv(conventions.EnvPodNamespace),
		Container:    getenv(conventions.EnvContainer),
	}
	for _, g := range strings.Split(getenv(conventions.EnvLogInclude), ",") {
		if g = strings.TrimSpace(g); g != "" {
			s.LogInclude = append(s.LogInclude, g)
		}
	}
	return s
}

// Validate says what is missing and how to fix it.
func (s Settings) Validate() error {
	if len(s.LogInclude) == 0 && (s.PodName == "" || s.PodNamespace == "") {
		return fmt.Errorf("%s is not set and %s/%s are empty, so the pod's own log directory is unknown: set %s to the operator's log files (e.g. /var/log/pods/*/manager/*.log) or pass the pod name and namespace through the downward API",
			conventions.EnvLogInclude, conventions.EnvPodName, conventions.EnvPodNamespace, conventions.EnvLogInclude)
	}
	for _, u := range []struct{ k, v string }{{conventions.EnvLokiURL, s.LokiURL}, {conventions.EnvTracesURL, s.TracesURL}} {
		if u.v != "" && !strings.HasPrefix(u.v, "http://") && !strings.HasPrefix(u.v, "https://") {
			return fmt.Errorf("%s=%q: want an http:// or https:// URL", u.k, u.v)
		}
	}
	if s.LokiURL != "" && !strings.Contains(s.LokiURL, "/push") {
		return fmt.Errorf("%s=%q: want Loki's push URL, ending in /loki/api/v1/push", conventions.EnvLokiURL, s.LokiURL)
	}
	if !filepath.IsAbs(s.StateDir) {
		return fmt.Errorf("%s=%q: want an absolute directory", conventions.EnvStateDir, s.StateDir)
	}
	return nil
}

// Includes is the list of log globs: the setting, else the kubelet log
// directory of the operator's container (CONTAINER_NAME) in this pod, else
// of every container of the pod; rotated files included.
func (s Settings) Includes() []string {
	if len(s.LogInclude) > 0 {
		return s.LogInclude
	}
	container := "*"
	if s.Container != "" {
		container = s.Container
	}
	return []string{fmt.Sprintf("/var/log/pods/%s_%s_*/%s/*.log*", s.PodNamespace, s.PodName, container)}
}

// Config returns the collector configuration as a map ready for YAML.
func (s Settings) Config() map[string]any {
	storageDir := filepath.Join(s.StateDir, "storage")
	outDir := filepath.Join(s.StateDir, "out")
	// Compressed rotations (.gz) are never read, nor kubelet's half-written
	// .tmp; plain rotations are, so lines renamed away while the sidecar was
	// down are still read (by fingerprint, once). Globs are filepath.Match
	// patterns, so the excludes mirror each include's directory.
	var exclude []string
	for _, g := range s.Includes() {
		dir := filepath.Dir(g)
		exclude = append(exclude, filepath.Join(dir, "*.gz"), filepath.Join(dir, "*.tmp"))
	}
	if len(s.LogInclude) == 0 && s.Container == "" {
		// Every container of the pod but ours: never tail our own output.
		exclude = append(exclude, fmt.Sprintf("/var/log/pods/%s_%s_*/%s/*", s.PodNamespace, s.PodName, conventions.SidecarContainer))
	}
	recv := map[string]any{
		"include":  s.Includes(),
		"exclude":  exclude,
		"start_at": "beginning",
		"storage":  "file_storage",
	}
	enrich := map[string]any{}
	if s.Revision != "" {
		enrich["revision"] = s.Revision
	}
	exporters := map[string]any{
		"redmetrics": map[string]any{},
	}
	var logsOut, tracesOut []string
	if s.LokiURL != "" {
		exporters["loki"] = map[string]any{
			"endpoint":         s.LokiURL,
			"sending_queue":    map[string]any{"storage": "file_storage"},
			"retry_on_failure": map[string]any{"max_elapsed_time": "0s"}, // retry until delivered: nothing lost
		}
		logsOut = append(logsOut, "loki")
	} else {
		exporters["localfile/logs"] = map[string]any{"directory": outDir}
		logsOut = append(logsOut, "localfile/logs")
	}
	if s.TracesURL != "" {
		exporters["otlp_http/traces"] = map[string]any{
			"endpoint":         s.TracesURL,
			"sending_queue":    map[string]any{"storage": "file_storage"},
			"retry_on_failure": map[string]any{"max_elapsed_time": "0s"},
		}
		tracesOut = append(tracesOut, "otlp_http/traces")
	} else {
		exporters["localfile/traces"] = map[string]any{"directory": outDir}
		tracesOut = append(tracesOut, "localfile/traces")
	}
	tracesOut = append(tracesOut, "redmetrics")
	procs := []string{"memory_limiter", "operatorenrich"}
	return map[string]any{
		"extensions": map[string]any{
			"file_storage":   map[string]any{"directory": storageDir, "create_directory": true},
			"opsightmetrics": map[string]any{"endpoint": s.MetricsAddr},
		},
		"receivers": map[string]any{
			"operatorlogs": recv,
			"otlp": map[string]any{"protocols": map[string]any{
				"grpc": map[string]any{"endpoint": s.OTLPGRPCAddr},
				"http": map[string]any{"endpoint": s.OTLPHTTPAddr},
			}},
		},
		"processors": map[string]any{
			"memory_limiter": map[string]any{"check_interval": "1s", "limit_percentage": 80, "spike_limit_percentage": 20},
			"operatorenrich": enrich,
		},
		"exporters": exporters,
		"service": map[string]any{
			"extensions": []string{"file_storage", "opsightmetrics"},
			// The collector's own telemetry endpoint stays off: everything is on opsightmetrics.
			"telemetry": map[string]any{"metrics": map[string]any{"level": "none"}},
			"pipelines": map[string]any{
				"logs":   map[string]any{"receivers": []string{"operatorlogs", "otlp"}, "processors": procs, "exporters": logsOut},
				"traces": map[string]any{"receivers": []string{"otlp"}, "processors": procs, "exporters": tracesOut},
			},
		},
	}
}

// YAML renders Config.
func (s Settings) YAML() (string, error) {
	b, err := yaml.Marshal(s.Config())
	return string(b), err
}
