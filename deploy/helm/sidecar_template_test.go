package helm

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/opsight/opsight/operator-sidecar/webhook"
)

// consumerChart is an operator's chart that has opsight as a dependency and
// adds the sidecar with the opsight.sidecar template instead of the webhook.
const consumerChart = `apiVersion: v2
name: widget-operator
version: 1.0.0
dependencies:
  - name: opsight
    version: 0.1.0
`

const consumerDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: widget-controller-manager
  namespace: {{ .Release.Namespace }}
spec:
  selector:
    matchLabels: {app: widget}
  template:
    metadata:
      labels: {app: widget}
    spec:
      {{- $sidecar := dict "values" .Values.opsight "container" "manager" "image" .Values.image "serviceName" .Values.serviceName "revision" .Values.revision "native" .Values.native }}
      {{- if .Values.native }}
      initContainers:
        {{- include "opsight.sidecar" $sidecar | nindent 8 }}
      {{- end }}
      containers:
        - name: manager
          image: {{ .Values.image }}
        {{- if not .Values.native }}
        {{- include "opsight.sidecar" $sidecar | nindent 8 }}
        {{- end }}
      volumes:
        {{- include "opsight.sidecarVolumes" (dict "values" .Values.opsight) | nindent 8 }}
`

// TestSidecarTemplateMatchesWebhook renders opsight.sidecar from a consumer
// chart and checks that it is exactly the container and volumes the webhook
// injects for the same values (so the two ways of adding the sidecar cannot
// drift apart).
func TestSidecarTemplateMatchesWebhook(t *testing.T) {
	for _, tc := range []struct {
		name     string
		native   bool
		image    string
		revision string
		values   string // the opsight values, under the consumer's opsight:
	}{
		{"defaults-native", true, "ghcr.io/acme/widget-operator:v1.4.2", "", ""},
		{"regular-api-cluster", false, "registry.local:5000/team/widget@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "",
			"cluster: prod-eu-1\nsidecar:\n  logSource: api\n  lokiURL: http://loki/loki/api/v1/push\n  tracesURL: http://tempo:4318\n" +
				"  resources: {requests: {cpu: 20m, memory: 48Mi}, limits: {cpu: 500m, memory: 500M}}\n  goMemLimitPercent: 80\n" +
				"  env: [{name: OPSIGHT_ZONE, value: eu-1a}]\n"},
		{"revision-override-port-no-tag", true, "registry.local:5000/team/widget", "2026.11.3", "image: {tag: v9}\nsidecar: {resources: {limits: {memory: 1Gi}}}\n"},
		{"custom-security-context", false, "widget:1", "", "sidecar:\n  securityContext: {runAsUser: 0, runAsNonRoot: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}\n"},
		{"native-api", true, "ghcr.io/acme/widget-operator:v1.4.2", "", "sidecar: {logSource: api}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The opsight values file (shared by both renderings).
			dir := t.TempDir()
			optsFile := filepath.Join(dir, "opsight-values.yaml")
			if err := os.WriteFile(optsFile, []byte(tc.values), 0o644); err != nil {
				t.Fatal(err)
			}

			// 1. The webhook: render the chart's injection config, inject into the same pod.
			objs := render(t, "-f", optsFile, "--set", "sidecar.nativeSidecar="+boolStr(tc.native), "--kube-version", "1.31.0")
			var cfgText string
			for _, cm := range ofKind[*corev1.ConfigMap](objs) {
				if v, ok := cm.Data["inject.yaml"]; ok {
					cfgText = v
				}
			}
			cfg, err := webhook.ParseConfig([]byte(cfgText))
			if err != nil {
				t.Fatal(err)
			}
			pod := corev1.Pod{TypeMeta: typeMetaPod, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "manager", Image: tc.image}}}}
			pod.Annotations = map[string]string{webhook.AnnotationInject: "true", webhook.AnnotationService: "widget-operator"}
			if tc.revision != "" {
				pod.Annotations[webhook.AnnotationRevision] = tc.revision
			}
			raw, _ := json.Marshal(&pod)
			resp := webhook.Mutate(&cfg, &admissionv1.AdmissionRequest{UID: "u", Operation: admissionv1.Create,
				Kind: podKind, Namespace: "widget-system", Object: runtime.RawExtension{Raw: raw}})
			patch, err := jsonpatch.DecodePatch(resp.Patch)
			if err != nil {
				t.Fatalf("%v: %s", err, resp.Patch)
			}
			injectedRaw, err := patch.Apply(raw)
			if err != nil {
				t.Fatal(err)
			}
			var injected corev1.Pod
			if err := json.Unmarshal(injectedRaw, &injected); err != nil {
				t.Fatal(err)
			}

			// 2. The named template, from a consumer chart with opsight in charts/.
			consumer := filepath.Join(dir, "widget-operator")
			if err := os.CopyFS(filepath.Join(consumer, "charts", "opsight"), os.DirFS(chartDir(t))); err != nil {
				t.Fatal(err)
			}
			must(t, os.WriteFile(filepath.Join(consumer, "Chart.yaml"), []byte(consumerChart), 0o644))
			must(t, os.MkdirAll(filepath.Join(consumer, "templates"), 0o755))
			must(t, os.WriteFile(filepath.Join(consumer, "templates", "deployment.yaml"), []byte(consumerDeployment), 0o644))
			values := "image: " + tc.image + "\nserviceName: widget-operator\nrevision: " + jsonStr(tc.revision) + "\nnative: " + boolStr(tc.native) +
				"\nopsight:\n  webhook: {enabled: false}\n  dashboards: {enabled: false}\n  prometheusRules: {enabled: false}\n  lokiRules: {enabled: false}\n"
			for _, l := range strings.Split(strings.TrimSpace(tc.values), "\n") {
				if l != "" {
					values += "  " + l + "\n"
				}
			}
			must(t, os.WriteFile(filepath.Join(consumer, "values.yaml"), []byte(values), 0o644))
			out, err := helmCmd(t, "template", "rel", consumer, "--namespace", "widget-system")
			if err != nil {
				t.Fatal(err)
			}
			deps := ofKind[*appsv1.Deployment](decodeAll(t, out))
			if len(deps) != 1 {
				t.Fatalf("%d Deployments rendered, want the consumer's only", len(deps))
			}
			spec := deps[0].Spec.Template.Spec

			// 3. Same container, same place, same volumes.
			wantC, wantInit := sidecarOf(&injected.Spec)
			gotC, gotInit := sidecarOf(&spec)
			if wantC == nil || gotC == nil {
				t.Fatalf("sidecar missing: webhook %v, template %v", wantC != nil, gotC != nil)
			}
			if wantInit != gotInit || wantInit != tc.native {
				t.Errorf("native: webhook %t, template %t, want %t", wantInit, gotInit, tc.native)
			}
			if w, g := canon(t, wantC), canon(t, gotC); w != g {
				t.Errorf("opsight.sidecar differs from the webhook's container:\nwebhook:  %s\ntemplate: %s", w, g)
			}
			var wantVols []corev1.Volume
			for _, v := range injected.Spec.Volumes {
				if strings.HasPrefix(v.Name, "opsight-") {
					wantVols = append(wantVols, v)
				}
			}
			if w, g := canon(t, wantVols), canon(t, spec.Volumes); w != g {
				t.Errorf("opsight.sidecarVolumes differs from the webhook's volumes:\nwebhook:  %s\ntemplate: %s", w, g)
			}
			// Both renderings agreeing is not enough: api mode needs the
			// sidecar's own token (it works even with
			// automountServiceAccountToken: false), file mode none, and in
			// both the sidecar mounts something at the service-account path
			// so that the ServiceAccount admission plugin gives it no copy of
			// the pod's token.
			api := cfg.LogSource == webhook.LogSourceAPI
			if got := hasTokenVolume(spec.Volumes, gotC); got != api {
				t.Errorf("logSource %s: template has the %s volume and mount: %t, want %t", cfg.LogSource, webhook.VolumeKubeAPIAccess, got, api)
			}
			wantAt := webhook.VolumeNoSAToken
			if api {
				wantAt = webhook.VolumeKubeAPIAccess
			}
			var at []string
			for _, m := range gotC.VolumeMounts {
				if m.MountPath == webhook.ServiceAccountMountPath {
					at = append(at, m.Name)
				}
			}
			if len(at) != 1 || at[0] != wantAt {
				t.Errorf("logSource %s: template mounts %v at %s, want only %s", cfg.LogSource, at, webhook.ServiceAccountMountPath, wantAt)
			}
		})
	}
}

// TestSidecarTemplateRequiresServiceName: without serviceName the template
// fails, naming the key, instead of naming every kubebuilder operator
// "manager" (the container name), which merges them into one service.
func TestSidecarTemplateRequiresServiceName(t *testing.T) {
	consumer := filepath.Join(t.TempDir(), "widget-operator")
	if err := os.CopyFS(filepath.Join(consumer, "charts", "opsight"), os.DirFS(chartDir(t))); err != nil {
		t.Fatal(err)
	}
	must(t, os.WriteFile(filepath.Join(consumer, "Chart.yaml"), []byte(consumerChart), 0o644))
	must(t, os.MkdirAll(filepath.Join(consumer, "templates"), 0o755))
	must(t, os.WriteFile(filepath.Join(consumer, "templates", "deployment.yaml"), []byte(consumerDeployment), 0o644))
	must(t, os.WriteFile(filepath.Join(consumer, "values.yaml"), []byte("image: widget:1\nrevision: \"\"\nnative: true\n"+
		"opsight:\n  webhook: {enabled: false}\n  dashboards: {enabled: false}\n  prometheusRules: {enabled: false}\n  lokiRules: {enabled: false}\n"), 0o644))
	_, err := helmCmd(t, "template", "rel", consumer, "--namespace", "widget-system")
	if err == nil || !strings.Contains(err.Error(), `opsight.sidecar: pass "serviceName"`) {
		t.Fatalf("rendering without serviceName: err = %v, want the required-key message", err)
	}
}

var (
	typeMetaPod = metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"}
	podKind     = metav1.GroupVersionKind{Group: "", Version: "v1", Kind: "Pod"}
)

// hasTokenVolume: the pod has the sidecar's token volume and the sidecar
// mounts it read-only at the service-account path.
func hasTokenVolume(vols []corev1.Volume, c *corev1.Container) bool {
	vol, mount := false, false
	for _, v := range vols {
		vol = vol || v.Name == webhook.VolumeKubeAPIAccess && v.Projected != nil
	}
	for _, m := range c.VolumeMounts {
		mount = mount || m.Name == webhook.VolumeKubeAPIAccess && m.ReadOnly && m.MountPath == webhook.ServiceAccountMountPath
	}
	return vol && mount
}

func sidecarOf(spec *corev1.PodSpec) (*corev1.Container, bool) {
	for i := range spec.InitContainers {
		if spec.InitContainers[i].Name == webhook.DefaultContainerName {
			return &spec.InitContainers[i], true
		}
	}
	for i := range spec.Containers {
		if spec.Containers[i].Name == webhook.DefaultContainerName {
			return &spec.Containers[i], false
		}
	}
	return nil, false
}

// canon is the JSON of v after a round trip through its Go type, so
// quantities and field order compare by meaning.
func canon(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func boolStr(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

func jsonStr(s string) string { b, _ := json.Marshal(s); return string(b) }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
