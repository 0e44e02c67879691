package envconfig

import (
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
		{"traces not http", map[string]string{"OPSIGHT_LOG_INCLUDE": "/l", "OPSIGHT_TRACES_URL": "tempo:4318"}, "OPSIGHT_TRACES_URL"},
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
	if exc := recv["exclude"].([]string); !contains(exc, "/a/*.gz") || !contains(exc, "/b/*.tmp") {
		t.Errorf("exclude %v must keep .gz and .tmp rotations out of every include dir", exc)
	}

	remote := FromEnv(env(map[string]string{
		"OPSIGHT_LOG_INCLUDE": "/a/*.log", "OPSIGHT_LOKI_URL": "http://l/loki/api/v1/push", "OPSIGHT_TRACES_URL": "http://t:4318",
	})).Config()
	exps = remote["exporters"].(map[string]any)
	for _, id := range []string{"loki", "otlp_http/traces"} {
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
	}
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
