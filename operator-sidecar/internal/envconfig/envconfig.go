// Package envconfig builds the sidecar's collector configuration from the
// environment settings of CONVENTIONS.md, so the sidecar runs with no config
// file (that is how the chart injects it).
package envconfig

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"go.yaml.in/yaml/v3"

	"github.com/opsight/opsight/internal/conventions"
)

// Settings are the environment settings, already read.
type Settings struct {
	// LogSource is file (tail LogInclude) or api (stream the operator
	// container's log through the Kubernetes API with the pod's service
	// account in ServiceAccountDir).
	LogSource         string
	ServiceAccountDir string
	LogInclude        []string
	Revision          string
	LokiURL           string
	TracesURL         string
	OTLPGRPCAddr      string
	OTLPHTTPAddr      string
	MetricsAddr       string
	StateDir          string
	PodName           string
	PodNamespace      string
	Container         string
	// QueueBytes bounds the persistent sending queues together, in bytes
	// (OPSIGHT_QUEUE_BYTES). 0: 25% of the free space of StateDir's file
	// system at start, at most 1 GiB. A full queue blocks, so the receiver
	// stops reading (backpressure) instead of the disk filling up: the
	// collector's persistent queue loses items when its storage hits ENOSPC.
	QueueBytes int64
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
		LogSource:         or(conventions.EnvLogSource, LogSourceFile),
		ServiceAccountDir: or(conventions.EnvServiceAccountDir, DefaultServiceAccountDir),
		Revision:          getenv(conventions.EnvRevision),
		LokiURL:           strings.TrimSpace(getenv(conventions.EnvLokiURL)),
		TracesURL:         strings.TrimSpace(getenv(conventions.EnvTracesURL)),
		OTLPGRPCAddr:      or(conventions.EnvOTLPGRPCAddr, conventions.DefaultOTLPGRPCAddr),
		OTLPHTTPAddr:      or(conventions.EnvOTLPHTTPAddr, conventions.DefaultOTLPHTTPAddr),
		MetricsAddr:       or(conventions.EnvMetricsAddr, conventions.DefaultMetricsAddr),
		StateDir:          or(conventions.EnvStateDir, conventions.DefaultStateDir),
		PodName:           getenv(conventions.EnvPodName),
		PodNamespace:      getenv(conventions.EnvPodNamespace),
		Container:         getenv(conventions.EnvContainer),
	}
	if v := strings.TrimSpace(getenv(conventions.EnvQueueBytes)); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			n = -1 // Validate reports it
		}
		s.QueueBytes = n
	}
	for _, g := range strings.Split(getenv(conventions.EnvLogInclude), ",") {
		if g = strings.TrimSpace(g); g != "" {
			s.LogInclude = append(s.LogInclude, g)
		}
	}
	return s
}

// Values of OPSIGHT_LOG_SOURCE, and where a pod's service account is.
const (
	LogSourceFile            = "file"
	LogSourceAPI             = "api"
	DefaultServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"
)

// Validate says what is missing and how to fix it.
func (s Settings) Validate() error {
	switch s.LogSource {
	case LogSourceFile:
	case LogSourceAPI:
		if s.PodName == "" || s.PodNamespace == "" || s.Container == "" {
			return fmt.Errorf("%s=api streams one container's log, so %s, %s (downward API) and %s (the operator's container) must all be set",
				conventions.EnvLogSource, conventions.EnvPodName, conventions.EnvPodNamespace, conventions.EnvContainer)
		}
		if len(s.LogInclude) > 0 {
			return fmt.Errorf("%s applies to %s=file only; unset it, or use file mode", conventions.EnvLogInclude, conventions.EnvLogSource)
		}
	default:
		return fmt.Errorf("%s=%q: want file (read the pod's log files) or api (stream them through the API server)", conventions.EnvLogSource, s.LogSource)
	}
	if s.LogSource == LogSourceFile && len(s.LogInclude) == 0 && (s.PodName == "" || s.PodNamespace == "") {
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
	if s.QueueBytes < 0 {
		return fmt.Errorf("%s: want a positive number of bytes, e.g. 268435456", conventions.EnvQueueBytes)
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

// excludes keeps compressed rotations (.gz, never read) and kubelet's
// half-written .tmp out of every include's directory (filepath.Match globs
// cannot say "not"); plain rotations stay in, so lines renamed away while the
// sidecar was down are still read (by fingerprint, once). Without
// CONTAINER_NAME every container of the pod is tailed but ours.
func (s Settings) excludes() []string {
	var exclude []string
	for _, g := range s.Includes() {
		dir := filepath.Dir(g)
		exclude = append(exclude, filepath.Join(dir, "*.gz"), filepath.Join(dir, "*.tmp"))
	}
	if len(s.LogInclude) == 0 && s.Container == "" {
		exclude = append(exclude, fmt.Sprintf("/var/log/pods/%s_%s_*/%s/*", s.PodNamespace, s.PodName, conventions.SidecarContainer))
	}
	return exclude
}

// Config returns the collector configuration as a map ready for YAML.
func (s Settings) Config() map[string]any {
	storageDir := filepath.Join(s.StateDir, "storage")
	outDir := filepath.Join(s.StateDir, "out")
	recv := map[string]any{"start_at": "beginning", "storage": "file_storage"}
	if s.LogSource == LogSourceAPI {
		recv["source"] = LogSourceAPI
		recv["api"] = map[string]any{
			"namespace": s.PodNamespace, "pod": s.PodName, "container": s.Container,
			"token_file": filepath.Join(s.ServiceAccountDir, "token"),
			"ca_file":    filepath.Join(s.ServiceAccountDir, "ca.crt"),
		}
	} else {
		recv["include"], recv["exclude"] = s.Includes(), s.excludes()
	}
	enrich := map[string]any{}
	if s.Revision != "" {
		enrich["revision"] = s.Revision
	}
	exporters := map[string]any{
		"redmetrics": map[string]any{},
	}
	var logsOut, tracesOut []string
	persistent := 0
	if s.LokiURL != "" {
		persistent++
	}
	if s.TracesURL != "" {
		persistent++
	}
	queue := func() map[string]any {
		return map[string]any{
			"storage": "file_storage", "sizer": "bytes", "block_on_overflow": true,
			"queue_size": s.queueBudget() / int64(persistent),
		}
	}
	if s.LokiURL != "" {
		exporters["loki"] = map[string]any{
			"endpoint":         s.LokiURL,
			"sending_queue":    queue(),
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
			"sending_queue":    queue(),
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

// queueBudget is QueueBytes, or 25% of the free space where the state
// directory is (or will be), at most 1 GiB, at least 1 MiB. A quarter,
// because bbolt (file_storage) grows its file by doubling and keeps freed
// pages: the file is several times the queued bytes.
func (s Settings) queueBudget() int64 {
	if s.QueueBytes > 0 {
		return s.QueueBytes
	}
	const maxBudget, minBudget = 1 << 30, 1 << 20
	dir := s.StateDir
	for {
		var st syscall.Statfs_t
		if err := syscall.Statfs(dir, &st); err == nil {
			free := int64(st.Bavail) * int64(st.Bsize) / 4
			return max(minBudget, min(maxBudget, free))
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return maxBudget
		}
		dir = parent
	}
}

// YAML renders Config.
func (s Settings) YAML() (string, error) {
	b, err := yaml.Marshal(s.Config())
	return string(b), err
}
