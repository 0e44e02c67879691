package envconfig

import (
	"strconv"
	"strings"
	"testing"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		wantErr string // substring; "" = valid
	}{
		{"include given", map[string]string{"OPSIGHT_LOG_INCLUDE": "/logs/*.log"}, ""},
		{"pod identity instead", map[string]string{"POD_NAME": "p", "POD_NAMESPACE": "n"}, ""},
		{"nothing to tail", map[string]string{}, "OPSIGHT_LOG_INCLUDE is not set"},
		{"loki not http", map[string]string{"OPSIGHT_LOG_INCLUDE": "/l", "OPSIGHT_LOKI_URL": "loki:3100"}, "OPSIGHT_LOKI_URL"},
		{"loki not push url", map[string]string{"OPSIGHT_LOG_INCLUDE": "/l", "OPSIGHT_LOKI_URL": "http://loki:3100"}, "/loki/api/v1/push"},
		{"loki push url in the middle", map[string]string{"OPSIGHT_LOG_INCLUDE": "/l", "OPSIGHT_LOKI_URL": "http://loki:3100/push/x"}, "/loki/api/v1/push"},
		{"loki no host", map[string]string{"OPSIGHT_LOG_INCLUDE": "/l", "OPSIGHT_LOKI_URL": "http:///loki/api/v1/push"}, "with a host"},
		{"loki push url", map[string]string{"OPSIGHT_LOG_INCLUDE": "/l", "OPSIGHT_LOKI_URL": "http://loki:3100/loki/api/v1/push"}, ""},
		{"victorialogs push url", map[string]string{"OPSIGHT_LOG_INCLUDE": "/l", "OPSIGHT_LOKI_URL": "http://vl:9428/insert/loki/api/v1/push"}, ""},
		{"traces not http", map[string]string{"OPSIGHT_LOG_INCLUDE": "/l", "OPSIGHT_TRACES_URL": "tempo:4318"}, "OPSIGHT_TRACES_URL"},
		{"traces grpc scheme", map[string]string{"OPSIGHT_LOG_INCLUDE": "/l", "OPSIGHT_TRACES_URL": "grpc://tempo:4317"}, "OPSIGHT_TRACES_URL"},
		{"traces url with signal path", map[string]string{"OPSIGHT_LOG_INCLUDE": "/l", "OPSIGHT_TRACES_URL": "http://tempo:4318/v1/traces"}, "without /v1/traces"},
		{"traces url with signal path and slash", map[string]string{"OPSIGHT_LOG_INCLUDE": "/l", "OPSIGHT_TRACES_URL": "http://tempo:4318/v1/traces/"}, "e.g. http://tempo:4318"},
		{"traces base url", map[string]string{"OPSIGHT_LOG_INCLUDE": "/l", "OPSIGHT_TRACES_URL": "http://tempo:4318"}, ""},
		{"bad state limit", map[string]string{"OPSIGHT_LOG_INCLUDE": "/l", "OPSIGHT_STATE_LIMIT_BYTES": "256Mi"}, "OPSIGHT_STATE_LIMIT_BYTES"},
		{"state limit too small", map[string]string{"OPSIGHT_LOG_INCLUDE": "/l", "OPSIGHT_STATE_LIMIT_BYTES": "1048576"}, "at least"},
		{"queue bigger than the state volume", map[string]string{"OPSIGHT_LOG_INCLUDE": "/l", "OPSIGHT_LOKI_URL": "http://l/loki/api/v1/push",
			"OPSIGHT_STATE_LIMIT_BYTES": "67108864", "OPSIGHT_QUEUE_BYTES": "67108864"}, "does not fit"},
		{"relative state dir", map[string]string{"OPSIGHT_LOG_INCLUDE": "/l", "OPSIGHT_STATE_DIR": "state"}, "OPSIGHT_STATE_DIR"},
		{"bad queue bytes", map[string]string{"OPSIGHT_LOG_INCLUDE": "/l", "OPSIGHT_QUEUE_BYTES": "1GiB"}, "OPSIGHT_QUEUE_BYTES"},
		{"api mode", map[string]string{"OPSIGHT_LOG_SOURCE": "api", "POD_NAME": "p", "POD_NAMESPACE": "n", "CONTAINER_NAME": "manager"}, ""},
		{"api mode without container", map[string]string{"OPSIGHT_LOG_SOURCE": "api", "POD_NAME": "p", "POD_NAMESPACE": "n"}, "CONTAINER_NAME"},
		{"api mode with include", map[string]string{"OPSIGHT_LOG_SOURCE": "api", "POD_NAME": "p", "POD_NAMESPACE": "n", "CONTAINER_NAME": "c", "OPSIGHT_LOG_INCLUDE": "/l"}, "file only"},
		{"unknown log source", map[string]string{"OPSIGHT_LOG_SOURCE": "journald", "OPSIGHT_LOG_INCLUDE": "/l"}, "want file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := FromEnv(env(tc.env)).Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one mentioning %q", err, tc.wantErr)
			}
		})
	}
}

func TestConfigOutputs(t *testing.T) {
	local := FromEnv(env(map[string]string{"OPSIGHT_LOG_INCLUDE": "/a/*.log, /b/*.log", "OPSIGHT_STATE_DIR": "/s"})).Config()
	exps := local["exporters"].(map[string]any)
	if _, ok := exps["localfile/logs"]; !ok {
		t.Errorf("no Loki URL: want localfile/logs, have %v", exps)
	}
	if d := exps["localfile/traces"].(map[string]any)["directory"]; d != "/s/out" {
		t.Errorf("embedded default output in %v, want /s/out", d)
	}
	recv := local["receivers"].(map[string]any)["operatorlogs"].(map[string]any)
	if inc := recv["include"].([]string); len(inc) != 2 || inc[1] != "/b/*.log" {
		t.Errorf("include %v", inc)
	}
	// kubelet's half-written .tmp stays out; gzipped rotations are read.
	if exc := recv["exclude"].([]string); !contains(exc, "/a/*.tmp") || !contains(exc, "/b/*.tmp") || contains(exc, "/a/*.gz") {
		t.Errorf("exclude %v must keep .tmp files (and only those) out of every include dir", exc)
	}

	remote := FromEnv(env(map[string]string{
		"OPSIGHT_LOG_INCLUDE": "/a/*.log", "OPSIGHT_LOKI_URL": "http://l/loki/api/v1/push", "OPSIGHT_TRACES_URL": "http://t:4318",
	})).Config()
	exps = remote["exporters"].(map[string]any)
	checkPersistent(t, exps, "otlp_http/traces")
	if w := exps["otlp_http/traces"].(map[string]any)["write_buffer_size"]; w != tracesWriteBuffer || tracesWriteBuffer >= 512<<10 {
		t.Errorf("traces write_buffer_size %v, want %d, below otlphttp's 512 KiB", w, tracesWriteBuffer)
	}
	// Logs are read through: ConsumeLogs returns once Loki has the batch, so
	// the receiver's checkpoint never passes an undelivered line (the node's
	// log files hold them), and nothing of the logs is queued on disk.
	loki := exps["loki"].(map[string]any)
	q := loki["sending_queue"].(map[string]any)
	if q["storage"] != nil || q["wait_for_result"] != true || q["block_on_overflow"] != true || q["sizer"] != "requests" {
		t.Errorf("loki queue %v: want an in-memory queue that waits for the result", q)
	}
	if loki["retry_on_failure"].(map[string]any)["max_elapsed_time"] != "0s" {
		t.Errorf("loki gives up retrying")
	}

	// OPSIGHT_QUEUE_BYTES asks for a queue on the state volume: Loki's too.
	queued := FromEnv(env(map[string]string{
		"OPSIGHT_LOG_INCLUDE": "/a/*.log", "OPSIGHT_LOKI_URL": "http://l/loki/api/v1/push", "OPSIGHT_TRACES_URL": "http://t:4318",
		"OPSIGHT_QUEUE_BYTES": "67108864",
	})).Config()
	exps = queued["exporters"].(map[string]any)
	for _, id := range []string{"loki", "otlp_http/traces"} {
		if q := checkPersistent(t, exps, id); q["queue_size"].(int64) != 32<<20 {
			t.Errorf("%s queue_size %v, want half of OPSIGHT_QUEUE_BYTES", id, q["queue_size"])
		}
	}
}

// checkPersistent: the exporter id has a persistent, bounded, blocking queue
// and retries for ever. It returns the queue.
func checkPersistent(t *testing.T, exps map[string]any, id string) map[string]any {
	t.Helper()
	e, ok := exps[id].(map[string]any)
	if !ok {
		t.Fatalf("exporter %s missing: %v", id, exps)
	}
	// Persistent queue and endless retry: a backend outage loses nothing.
	q := e["sending_queue"].(map[string]any)
	if q["storage"] != "file_storage" {
		t.Errorf("%s has no persistent queue", id)
	}
	// Bounded in bytes below the free disk, blocking when full: backpressure, not ENOSPC.
	if q["sizer"] != "bytes" || q["block_on_overflow"] != true || q["queue_size"].(int64) < 1<<19 {
		t.Errorf("%s queue %v: want a blocking bytes-sized queue", id, q)
	}
	if e["retry_on_failure"].(map[string]any)["max_elapsed_time"] != "0s" {
		t.Errorf("%s gives up retrying", id)
	}
	return q
}

func TestDefaultIncludeIsThePodsOwnDir(t *testing.T) {
	// CONTAINER_NAME names the operator's container (as the webhook sets it).
	s := FromEnv(env(map[string]string{"POD_NAME": "op-0", "POD_NAMESPACE": "ops", "CONTAINER_NAME": "manager"}))
	if got := s.Includes(); len(got) != 1 || got[0] != "/var/log/pods/ops_op-0_*/manager/*.log*" {
		t.Errorf("includes %v", got)
	}
	// Without it, every container of the pod but the sidecar's own.
	s = FromEnv(env(map[string]string{"POD_NAME": "op-0", "POD_NAMESPACE": "ops"}))
	if got := s.Includes(); len(got) != 1 || got[0] != "/var/log/pods/ops_op-0_*/*/*.log*" {
		t.Errorf("includes %v", got)
	}
	exc := s.Config()["receivers"].(map[string]any)["operatorlogs"].(map[string]any)["exclude"].([]string)
	if !contains(exc, "/var/log/pods/ops_op-0_*/opsight-sidecar/*") {
		t.Errorf("the sidecar's own log dir is not excluded: %v", exc)
	}
}

func contains(l []string, s string) bool {
	for _, e := range l {
		if e == s {
			return true
		}
	}
	return false
}

func TestAPISourceConfig(t *testing.T) {
	cfg := FromEnv(env(map[string]string{"OPSIGHT_LOG_SOURCE": "api", "POD_NAME": "op-0", "POD_NAMESPACE": "ops",
		"CONTAINER_NAME": "manager", "OPSIGHT_SERVICE_ACCOUNT_DIR": "/sa"})).Config()
	recv := cfg["receivers"].(map[string]any)["operatorlogs"].(map[string]any)
	if recv["source"] != "api" || recv["include"] != nil || recv["storage"] != "file_storage" {
		t.Errorf("receiver %v: want source api with checkpoints and no include", recv)
	}
	api := recv["api"].(map[string]any)
	for k, want := range map[string]string{"namespace": "ops", "pod": "op-0", "container": "manager", "token_file": "/sa/token", "ca_file": "/sa/ca.crt"} {
		if api[k] != want {
			t.Errorf("api.%s = %v, want %s", k, api[k], want)
		}
	}
	def := FromEnv(env(map[string]string{"OPSIGHT_LOG_SOURCE": "api"}))
	if def.ServiceAccountDir != "/var/run/secrets/kubernetes.io/serviceaccount" {
		t.Errorf("default service account dir %q", def.ServiceAccountDir)
	}
}

// TestStateBudgetFitsTheLimit: whatever the outputs, the on-disk parts the
// sidecar keeps add up to less than the state volume's limit (the emptyDir
// sizeLimit the webhook passes), counting each persistent queue's file at
// bboltGrowth times its queue_size.
func TestStateBudgetFitsTheLimit(t *testing.T) {
	const loki, tempo = "http://l/loki/api/v1/push", "http://t:4318"
	for _, limit := range []int64{16 << 20, 64 << 20, 256 << 20, 10 << 30} {
		for _, out := range []struct{ loki, traces, queueBytes string }{
			{"", "", ""}, {loki, "", ""}, {"", tempo, ""}, {loki, tempo, ""},
			// OPSIGHT_QUEUE_BYTES at what Validate lets through puts Loki's queue on the volume too.
			{loki, "", "max"}, {loki, tempo, "max"},
		} {
			m := map[string]string{"OPSIGHT_LOG_INCLUDE": "/l", "OPSIGHT_STATE_DIR": "/s", "OPSIGHT_LOKI_URL": out.loki, "OPSIGHT_TRACES_URL": out.traces,
				"OPSIGHT_STATE_LIMIT_BYTES": strconv.FormatInt(limit, 10)}
			if out.queueBytes != "" {
				auto := FromEnv(env(m))
				m["OPSIGHT_QUEUE_BYTES"] = strconv.FormatInt(auto.budgetWith(true).queues, 10)
			}
			s := FromEnv(env(m))
			if err := s.Validate(); err != nil {
				t.Fatal(err)
			}
			exps := s.Config()["exporters"].(map[string]any)
			var used int64
			for id, e := range exps {
				e := e.(map[string]any)
				// Only a persistent queue holds bytes on the volume; an in-memory one holds them in RAM.
				if q, ok := e["sending_queue"].(map[string]any); ok && q["storage"] != nil {
					used += bboltGrowth * q["queue_size"].(int64)
				}
				if n, ok := e["max_files"].(int); ok {
					used += int64(n) * e["max_file_bytes"].(int64)
				}
				if dl, ok := e["dead_letter"].(map[string]any); ok {
					used += dl["max_bytes"].(int64)
					if dl["directory"] != "/s/dead-letter" {
						t.Errorf("dead letter in %v, want it on the state volume", dl["directory"])
					}
				} else if id == "loki" {
					t.Errorf("the loki exporter has no dead_letter: refused entries would be dropped")
				}
			}
			if used+stateReserve > limit {
				t.Errorf("limit %d, loki %q, traces %q, queue bytes %q: the parts hold %d bytes + %d reserve, more than the limit", limit, out.loki, out.traces, m["OPSIGHT_QUEUE_BYTES"], used, stateReserve)
			}
			if used < limit/2 {
				t.Errorf("limit %d, loki %q, traces %q, queue bytes %q: only %d bytes used; the budget wastes the volume", limit, out.loki, out.traces, m["OPSIGHT_QUEUE_BYTES"], used)
			}
		}
	}
}

// TestWarnings: in a pod, output that nobody reads is said out loud; outside
// one (a developer's run with OPSIGHT_LOG_INCLUDE) it is the point.
func TestWarnings(t *testing.T) {
	inPod := map[string]string{"POD_NAME": "op-0", "POD_NAMESPACE": "ops"}
	if w := FromEnv(env(inPod)).Warnings(); len(w) != 2 || !strings.Contains(w[0], "OPSIGHT_LOKI_URL is not set") || !strings.Contains(w[1], "OPSIGHT_TRACES_URL") {
		t.Errorf("in a pod without backends: warnings %q", w)
	}
	inPod["OPSIGHT_LOKI_URL"], inPod["OPSIGHT_TRACES_URL"] = "http://l/loki/api/v1/push", "http://t:4318"
	if w := FromEnv(env(inPod)).Warnings(); len(w) != 0 {
		t.Errorf("in a pod with backends: warnings %q", w)
	}
	if w := FromEnv(env(map[string]string{"OPSIGHT_LOG_INCLUDE": "/l"})).Warnings(); len(w) != 0 {
		t.Errorf("outside a pod: warnings %q", w)
	}
}

// TestLokiQueueByMode: in file mode logs are read through (the node's log
// files are their buffer); in api mode, and when OPSIGHT_QUEUE_BYTES asks,
// the Loki queue is on the state volume.
func TestLokiQueueByMode(t *testing.T) {
	const loki = "http://l/loki/api/v1/push"
	for _, tc := range []struct {
		name       string
		env        map[string]string
		persistent bool
	}{
		{"file mode", map[string]string{"OPSIGHT_LOG_INCLUDE": "/l", "OPSIGHT_LOKI_URL": loki}, false},
		{"file mode, queue asked for", map[string]string{"OPSIGHT_LOG_INCLUDE": "/l", "OPSIGHT_LOKI_URL": loki, "OPSIGHT_QUEUE_BYTES": "67108864"}, true},
		{"api mode", map[string]string{"OPSIGHT_LOG_SOURCE": "api", "POD_NAME": "p", "POD_NAMESPACE": "n", "CONTAINER_NAME": "c", "OPSIGHT_LOKI_URL": loki}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := FromEnv(env(tc.env)).Config()["exporters"].(map[string]any)["loki"].(map[string]any)["sending_queue"].(map[string]any)
			if got := q["storage"] == "file_storage"; got != tc.persistent {
				t.Errorf("queue %v: persistent %v, want %v", q, got, tc.persistent)
			}
			if !tc.persistent && q["wait_for_result"] != true {
				t.Errorf("queue %v: a read-through queue must wait for Loki's answer, or the checkpoint passes undelivered lines", q)
			}
		})
	}
}
