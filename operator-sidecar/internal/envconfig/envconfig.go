// Package envconfig builds the sidecar's collector configuration from the
// environment settings of CONVENTIONS.md, so the sidecar runs with no config
// file (that is how the chart injects it).
package envconfig

import (
	"fmt"
	"net/url"
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
	// (OPSIGHT_QUEUE_BYTES). 0: their share of the state budget (see
	// budget). A full queue blocks, so the receiver stops reading
	// (backpressure) instead of the disk filling up: the collector's
	// persistent queue loses items when its storage hits ENOSPC.
	//
	// Which queues are persistent: the traces queue always (spans received
	// over OTLP exist nowhere else once acknowledged). The Loki queue when
	// QueueBytes is set or in api mode (persistentLokiQueue): by default logs
	// are read through (see readThroughQueue), the node's log files being
	// their durable buffer.
	QueueBytes int64
	// StateLimitBytes is the size limit of the state directory's volume
	// (OPSIGHT_STATE_LIMIT_BYTES; the webhook passes its emptyDir sizeLimit).
	// kubelet evicts the whole pod, operator included, when an emptyDir
	// passes its sizeLimit, so every on-disk budget derives from it. 0: no
	// limit is known, the budget comes from the free space (see budget).
	StateLimitBytes int64
}

// FromEnv reads Settings with the documented defaults.

// tracesWriteBuffer is the OTLP/HTTP traces exporter's write buffer per
// connection (bytes).
const tracesWriteBuffer = 64 << 10

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
	s.QueueBytes = positiveInt(getenv(conventions.EnvQueueBytes))
	s.StateLimitBytes = positiveInt(getenv(conventions.EnvStateLimitBytes))
	for _, g := range strings.Split(getenv(conventions.EnvLogInclude), ",") {
		if g = strings.TrimSpace(g); g != "" {
			s.LogInclude = append(s.LogInclude, g)
		}
	}
	return s
}

// positiveInt reads a byte count: 0 when unset, -1 when not a positive
// integer (Validate reports it).
func positiveInt(v string) int64 {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return -1
	}
	return n
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
	if err := checkURL(conventions.EnvLokiURL, s.LokiURL); err != nil {
		return err
	}
	if s.LokiURL != "" && !strings.HasSuffix(strings.TrimRight(s.LokiURL, "/"), lokiPushPath) {
		return fmt.Errorf("%s=%q: want Loki's push URL, ending in %s (e.g. http://loki.monitoring:3100%s)", conventions.EnvLokiURL, s.LokiURL, lokiPushPath, lokiPushPath)
	}
	if err := checkURL(conventions.EnvTracesURL, s.TracesURL); err != nil {
		return err
	}
	// The OTLP/HTTP exporter appends /v1/traces to its endpoint: a URL that
	// already ends in it posts to …/v1/traces/v1/traces, a 404 that drops
	// every span as a permanent error.
	if p := strings.TrimRight(s.TracesURL, "/"); strings.HasSuffix(p, otlpTracesPath) {
		return fmt.Errorf("%s=%q: give the OTLP/HTTP base URL without %s (the exporter appends it), e.g. %s", conventions.EnvTracesURL, s.TracesURL, otlpTracesPath, strings.TrimSuffix(p, otlpTracesPath))
	}
	if s.QueueBytes < 0 {
		return fmt.Errorf("%s: want a positive number of bytes, e.g. 268435456", conventions.EnvQueueBytes)
	}
	if s.StateLimitBytes < 0 {
		return fmt.Errorf("%s: want the state volume's size limit as a positive number of bytes, e.g. 268435456 (the webhook sets it from stateSizeLimit)", conventions.EnvStateLimitBytes)
	}
	if s.StateLimitBytes > 0 && s.StateLimitBytes < minStateLimit {
		return fmt.Errorf("%s=%d: the state directory needs at least %d bytes (16 MiB) for checkpoints, queues and the dead-letter file; raise the webhook's stateSizeLimit", conventions.EnvStateLimitBytes, s.StateLimitBytes, int64(minStateLimit))
	}
	if s.StateLimitBytes > 0 && s.QueueBytes > 0 {
		auto := s
		auto.QueueBytes = 0
		if room := auto.budgetWith(s.persistentLokiQueue()).queues; s.QueueBytes > room {
			return fmt.Errorf("%s=%d does not fit in the state volume (%s=%d leaves room for %d queued bytes); lower it or raise the volume's limit", conventions.EnvQueueBytes, s.QueueBytes, conventions.EnvStateLimitBytes, s.StateLimitBytes, room)
		}
	}
	if !filepath.IsAbs(s.StateDir) {
		return fmt.Errorf("%s=%q: want an absolute directory", conventions.EnvStateDir, s.StateDir)
	}
	return nil
}

const (
	lokiPushPath   = "/loki/api/v1/push"
	otlpTracesPath = "/v1/traces"
	minStateLimit  = 16 << 20
)

// checkURL accepts an empty value or an absolute http(s) URL with a host.
func checkURL(key, v string) error {
	if v == "" {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s=%q: want an http:// or https:// URL with a host, e.g. http://name.namespace:port/…", key, v)
	}
	return nil
}

// Warnings are settings that work but are unlikely to be what a user wants.
func (s Settings) Warnings() []string {
	var w []string
	// In a pod (the webhook sets POD_NAME) the embedded default writes into
	// an emptyDir that nobody reads and that goes with the pod.
	if s.PodName != "" && s.LokiURL == "" {
		b := s.budget()
		w = append(w, fmt.Sprintf("%s is not set: the operator's enriched logs go to %s inside this pod's state volume only, "+
			"rotated at %d bytes and deleted with the pod; nothing ships them anywhere. Set the chart's sidecar.lokiURL (or %s) to send them to Loki",
			conventions.EnvLokiURL, filepath.Join(s.StateDir, "out"), b.localFile, conventions.EnvLokiURL))
	}
	if s.PodName != "" && s.TracesURL == "" {
		w = append(w, fmt.Sprintf("%s is not set: spans are kept only as files in this pod's state volume (RED metrics are still served); set the chart's sidecar.tracesURL (or %s) to send them to Tempo",
			conventions.EnvTracesURL, conventions.EnvTracesURL))
	}
	return w
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

// excludes keeps kubelet's half-written .tmp out of every include's
// directory (filepath.Match globs cannot say "not"); rotations stay in, plain
// and gzipped, so lines rotated away while the sidecar was down are still read
// (by fingerprint, once). Without CONTAINER_NAME every container of the pod
// is tailed but ours.
func (s Settings) excludes() []string {
	var exclude []string
	for _, g := range s.Includes() {
		exclude = append(exclude, filepath.Join(filepath.Dir(g), "*.tmp"))
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
	b := s.budget()
	var logsOut, tracesOut []string
	queue := func() map[string]any {
		return map[string]any{
			"storage": "file_storage", "sizer": "bytes", "block_on_overflow": true,
			"queue_size": b.queue,
		}
	}
	localfile := func() map[string]any {
		return map[string]any{"directory": outDir, "max_files": localFiles, "max_file_bytes": b.localFile / localFiles}
	}
	if s.LokiURL != "" {
		lokiQueue := readThroughQueue()
		if s.persistentLokiQueue() {
			lokiQueue = queue()
		}
		exporters["loki"] = map[string]any{
			"endpoint":         s.LokiURL,
			"sending_queue":    lokiQueue,
			"retry_on_failure": map[string]any{"max_elapsed_time": "0s"}, // retry until delivered: nothing lost
			// What Loki refuses and cannot be fixed is kept, not dropped.
			"dead_letter": map[string]any{"directory": filepath.Join(s.StateDir, "dead-letter"), "max_bytes": b.deadLetter},
		}
		logsOut = append(logsOut, "loki")
	} else {
		exporters["localfile/logs"] = localfile()
		logsOut = append(logsOut, "localfile/logs")
	}
	if s.TracesURL != "" {
		exporters["otlp_http/traces"] = map[string]any{
			"endpoint":         s.TracesURL,
			"sending_queue":    queue(),
			"retry_on_failure": map[string]any{"max_elapsed_time": "0s"},
			// otlphttp's default is 512 KiB per connection, held for the
			// connection's life; a request of a sidecar's spans is tens of
			// KiB gzipped (docs/benchmarks.md, steady RSS).
			"write_buffer_size": tracesWriteBuffer,
		}
		tracesOut = append(tracesOut, "otlp_http/traces")
	} else {
		exporters["localfile/traces"] = localfile()
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

// persistentLokiQueue: the Loki exporter queues on the state volume when
// OPSIGHT_QUEUE_BYTES asks for a queue there, and in api mode, where the
// API server serves only the live log file and the previous instance's: a
// stream stopped by an outage would lose what the kubelet rotates away
// meanwhile. Otherwise it reads through (see readThroughQueue).
func (s Settings) persistentLokiQueue() bool {
	return s.LokiURL != "" && (s.QueueBytes > 0 || s.LogSource == LogSourceAPI)
}

// readThroughQueue is the Loki exporter's default sending queue: in memory,
// and ConsumeLogs returns only once Loki accepted the batch (or the error
// is permanent: the dead-letter file has it). The receiver checkpoints after
// ConsumeLogs returned, so a checkpoint only ever passes lines Loki holds;
// what is not yet delivered is still in the node's log files and is read
// again after a crash. The node's log files are the logs' durable buffer,
// as they already were once a persistent queue was full.
//
// Why not the persistent queue (docs/benchmarks.md, "The persistent queue's
// cost"): exporterhelper writes every batch into bbolt with three
// transactions (put, read, done), each rewriting the B+tree leaf that holds
// the queue's metadata key together with up to three whole batches, and
// unmarshals every batch it reads back: ~18 bytes written per input byte
// and 2.6× the CPU of the pipeline itself, for a copy of lines the node
// already keeps. What the state volume bought, an outage buffer beyond
// kubelet's log retention, OPSIGHT_QUEUE_BYTES still buys.
//
// One request at a time per caller, so the queue holds at most one
// request per caller (the receiver's one, OTLP clients' own): a requests
// sizer, not bytes, so no request is ever too large for it.
func readThroughQueue() map[string]any {
	return map[string]any{
		"wait_for_result": true, "sizer": "requests", "queue_size": readThroughRequests,
		"block_on_overflow": true, "num_consumers": 1,
	}
}

// readThroughRequests bounds the requests in the read-through queue: the
// receiver's one plus OTLP log clients waiting (each holds its own request).
const readThroughRequests = 64

// How the state directory's bytes are shared out (see budget).
const (
	// bboltGrowth: file_storage keeps a queue in a bbolt file, which grows
	// by doubling and keeps freed pages, so its file is up to this many times
	// the queued bytes.
	bboltGrowth = 3
	// stateReserve is kept free for checkpoints, bbolt metadata and the
	// margin kubelet's periodic du needs (it measures, it does not block).
	stateReserve = 4 << 20
	localFiles   = 4 // files per localfile exporter, oldest removed first
	maxAutoState = 2 << 30
)

// diskBudget says how many bytes each on-disk part of the sidecar may hold.
type diskBudget struct {
	limit      int64 // what the state directory may hold in all
	queue      int64 // queue_size of each persistent queue (bytes sizer)
	queues     int64 // all queues' queue_size together
	localFile  int64 // max_files × max_file_bytes of each localfile exporter
	deadLetter int64 // the Loki exporter's dead-letter file
}

// budget shares the state volume between its users so that together they
// stay below its limit: full queues block (the receiver stops reading and
// the operator's lines wait in the node's log files), the localfile output
// rotates, and kubelet never evicts the pod for its emptyDir. The limit is
// OPSIGHT_STATE_LIMIT_BYTES, else half the free space where the state
// directory is, at most 2 GiB. OPSIGHT_QUEUE_BYTES, when set, fixes the
// queues' share.
func (s Settings) budget() diskBudget { return s.budgetWith(s.persistentLokiQueue()) }

// budgetWith is budget with the Loki queue on the state volume or not.
func (s Settings) budgetWith(persistentLoki bool) diskBudget {
	b := diskBudget{limit: s.StateLimitBytes}
	if b.limit <= 0 {
		b.limit = min(maxAutoState, freeBytes(s.StateDir)/2)
	}
	usable := max(b.limit-b.limit/10-stateReserve, 1<<20)
	var queues, files int64
	if s.LokiURL != "" {
		if persistentLoki {
			queues++
		}
		// At least 1 MiB: the exporter's floor, room for a refused 256KB line.
		b.deadLetter = max(usable/10, 1<<20)
		usable = max(usable-b.deadLetter, 0)
	} else {
		files++
	}
	if s.TracesURL != "" {
		queues++
	} else {
		files++
	}
	// Each queue's file may grow to bboltGrowth × its queue_size; a
	// localfile exporter holds its share as written.
	share := usable / (queues*bboltGrowth + files)
	b.queue = max(share, 1<<19)
	if queues > 0 && s.QueueBytes > 0 {
		b.queue = s.QueueBytes / queues
	}
	b.queues = b.queue * queues
	b.localFile = max(share, localFiles<<18) // files of at least 256 KiB
	return b
}

// freeBytes is the free space of the file system holding dir (or the
// nearest existing parent); 4 GiB when it cannot be read.
func freeBytes(dir string) int64 {
	for {
		var st syscall.Statfs_t
		if err := syscall.Statfs(dir, &st); err == nil {
			return int64(st.Bavail) * int64(st.Bsize)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return 4 << 30
		}
		dir = parent
	}
}

// YAML renders Config.
func (s Settings) YAML() (string, error) {
	b, err := yaml.Marshal(s.Config())
	return string(b), err
}
