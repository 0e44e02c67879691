package webhook

import (
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func TestLoadConfig(t *testing.T) {
	cfg, err := LoadConfig(filepath.Join("testdata", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Image != "ghcr.io/opsight/operator-sidecar:0.1.0" || !cfg.NativeSidecar || cfg.LogSource != LogSourceFile ||
		cfg.Namespace != "opsight-system" || len(cfg.Env) != 2 || cfg.ContainerName != DefaultContainerName {
		t.Errorf("config not read as written: %+v", cfg)
	}
	if got := cfg.Resources.Limits[corev1.ResourceMemory]; got.Cmp(resource.MustParse("128Mi")) != 0 {
		t.Errorf("limits.memory = %s", got.String())
	}
	if *cfg.SecurityContext.RunAsGroup != 0 || !*cfg.SecurityContext.RunAsNonRoot || !*cfg.SecurityContext.ReadOnlyRootFilesystem {
		t.Errorf("file mode default securityContext: %+v", cfg.SecurityContext)
	}

	api, err := LoadConfig(filepath.Join("testdata", "config_api.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if api.LogSource != LogSourceAPI || *api.SecurityContext.RunAsGroup != 65532 || api.GoMemLimitPercent != 90 {
		t.Errorf("api config defaults: %+v", api)
	}
}

func TestLoadConfigDefaults(t *testing.T) {
	cfg, err := ParseConfig([]byte("image: x/y:1\n"))
	if err != nil {
		t.Fatal(err)
	}
	req := cfg.Resources.Requests
	if req.Cpu().String() != "50m" || req.Memory().String() != "64Mi" || cfg.Resources.Limits.Memory().String() != "128Mi" {
		t.Errorf("default resources = %+v, want requests 50m/64Mi, limit 128Mi", cfg.Resources)
	}
	if cfg.MetricsPort != 9464 || cfg.StateSizeLimit.String() != "256Mi" || cfg.PodLogsHostPath != "/var/log/pods" {
		t.Errorf("defaults: %+v", cfg)
	}
	sc := cfg.SecurityContext
	if sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" ||
		sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault || *sc.AllowPrivilegeEscalation {
		t.Errorf("default securityContext not least privilege: %+v", sc)
	}
}

func TestLoadConfigBad(t *testing.T) {
	for file, want := range map[string]string{
		"bad_no_image.yaml":             "image: required",
		"bad_log_source.yaml":           `logSource: "journald"`,
		"bad_managed_env.yaml":          "env[0].name: OPSIGHT_REVISION is set by the webhook",
		"bad_unknown_key.yaml":          `unknown field "nativeSidcar"`,
		"bad_percent.yaml":              "goMemLimitPercent: 150",
		"bad_requests_over_limits.yaml": "requests.memory 256Mi exceeds limits.memory 128Mi",
		"bad_container_name.yaml":       `containerName: "Opsight_Sidecar"`,
		"bad_state_size.yaml":           "stateSizeLimit: 8Mi is below 16Mi",
		"does_not_exist.yaml":           "reading injection config",
	} {
		t.Run(file, func(t *testing.T) {
			_, err := LoadConfig(filepath.Join("testdata", file))
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("error = %v, want it to contain %q", err, want)
			}
		})
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("image: a:1\nlogSource: api\n"))
	f.Add([]byte("image: a\nresources: {limits: {memory: 1e3}}\n"))
	f.Add([]byte("env: [{name: X}]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := ParseConfig(b)
		if err != nil {
			return
		}
		// Anything accepted must be injectable without panicking.
		_, _ = goMemLimit(&cfg)
		pod := corev1.Pod{}
		pod.Annotations = map[string]string{AnnotationInject: "true"}
		pod.Spec.Containers = []corev1.Container{{Name: "m", Image: "i:1"}}
		if ops, _ := Plan(&cfg, &pod, "ns"); len(ops) == 0 {
			t.Fatalf("valid config %q injected nothing", b)
		}
	})
}
