package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/otelcol"
	corev1 "k8s.io/api/core/v1"

	"github.com/opsight/opsight/internal/conventions"
)

// The configuration the environment gives must load and validate against
// the real distribution (every component type exists, every key is known),
// with and without the backends set.
func TestEnvConfigDryRun(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
	}{
		{"embedded default", map[string]string{}},
		{"loki and tempo", map[string]string{
			"OPSIGHT_LOKI_URL":   "http://loki:3100/loki/api/v1/push",
			"OPSIGHT_TRACES_URL": "http://tempo:4318",
		}},
		{"pod defaults", map[string]string{"OPSIGHT_LOG_INCLUDE": "", "POD_NAME": "op-0", "POD_NAMESPACE": "ops", "CONTAINER_NAME": "manager"}},
		{"api log source", map[string]string{"OPSIGHT_LOG_SOURCE": "api", "OPSIGHT_LOG_INCLUDE": "",
			"POD_NAME": "op-0", "POD_NAMESPACE": "ops", "CONTAINER_NAME": "manager"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("OPSIGHT_LOG_INCLUDE", "/var/log/pods/*/manager/*.log")
			t.Setenv("OPSIGHT_STATE_DIR", t.TempDir())
			t.Setenv("OPSIGHT_REVISION", "v1.2.3")
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			col, err := otelcol.NewCollector(collectorSettings())
			if err != nil {
				t.Fatal(err)
			}
			if err := col.DryRun(context.Background()); err != nil {
				t.Fatalf("env configuration does not validate: %v", err)
			}
		})
	}
}

// Without a log location the sidecar refuses to start and says what to set.
func TestEnvConfigMissingInclude(t *testing.T) {
	t.Setenv("OPSIGHT_LOG_INCLUDE", "")
	t.Setenv("POD_NAME", "")
	t.Setenv("POD_NAMESPACE", "")
	col, err := otelcol.NewCollector(collectorSettings())
	if err != nil {
		t.Fatal(err)
	}
	err = col.DryRun(context.Background())
	if err == nil {
		t.Fatal("started with no log files to tail")
	}
	for _, want := range []string{"OPSIGHT_LOG_INCLUDE", "POD_NAME"} {
		if !contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// The environment the webhook injects (its golden patched pods) is enough
// for the sidecar to start, in both log sources: the two halves of the
// contract cannot drift apart.
func TestInjectedEnvValidates(t *testing.T) {
	for _, golden := range []string{"operator_native.pod.json", "operator_api_regular.pod.json"} {
		t.Run(golden, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("webhook", "testdata", "golden", golden))
			if err != nil {
				t.Fatal(err)
			}
			var pod corev1.Pod
			if err := json.Unmarshal(b, &pod); err != nil {
				t.Fatal(err)
			}
			pod.Name, pod.UID, pod.Spec.NodeName = pod.GenerateName+"x2x4z", "uid-1", "node-1" // set by the API server and scheduler
			var sidecar *corev1.Container
			for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
				for i := range cs {
					if cs[i].Name == conventions.SidecarContainer {
						sidecar = &cs[i]
					}
				}
			}
			if sidecar == nil {
				t.Fatalf("no %s container in %s", conventions.SidecarContainer, golden)
			}
			// Only what the webhook injects: the machine's own variables
			// (a CI runner may well set CONTAINER_NAME) must not help.
			for _, kv := range os.Environ() {
				k, _, _ := strings.Cut(kv, "=")
				switch {
				case strings.HasPrefix(k, "OPSIGHT_"), k == conventions.EnvPodName, k == conventions.EnvPodNamespace,
					k == conventions.EnvPodUID, k == conventions.EnvNodeName, k == conventions.EnvContainer:
					t.Setenv(k, "")
				}
			}
			fields := map[string]string{"metadata.name": pod.Name, "metadata.namespace": pod.Namespace,
				"metadata.uid": string(pod.UID), "spec.nodeName": pod.Spec.NodeName}
			for _, e := range sidecar.Env {
				v := e.Value
				if e.ValueFrom != nil {
					var ok bool
					if v, ok = fields[e.ValueFrom.FieldRef.FieldPath]; !ok {
						t.Fatalf("env %s: field %s not resolved by this test", e.Name, e.ValueFrom.FieldRef.FieldPath)
					}
				}
				t.Setenv(e.Name, v)
			}
			t.Setenv(conventions.EnvStateDir, t.TempDir())
			col, err := otelcol.NewCollector(collectorSettings())
			if err != nil {
				t.Fatal(err)
			}
			if err := col.DryRun(context.Background()); err != nil {
				t.Fatalf("the injected environment does not start the sidecar: %v", err)
			}
		})
	}
}

// --version names the program, the version, the revision and the Go
// toolchain (cobra's default would print the version only); the image
// test (tools/image) checks the stamped values on the built binary.
func TestVersionFlag(t *testing.T) {
	root := newRootCommand()
	var out strings.Builder
	root.SetOut(&out)
	root.SetArgs([]string{"--version"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"operator-sidecar, version dev (revision: ", "go version: go1.", "platform:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--version printed %q, want it to contain %q", out.String(), want)
		}
	}
}
