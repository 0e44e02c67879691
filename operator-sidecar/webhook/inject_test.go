package webhook

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the current output")

func loadCfg(t *testing.T, file string, native bool) *Config {
	t.Helper()
	cfg, err := LoadConfig(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	cfg.NativeSidecar = native
	return &cfg
}

// review posts a fixture (or raw review bytes) to the handler and returns the response.
func review(t *testing.T, cfg *Config, body []byte) *admissionv1.AdmissionResponse {
	t.Helper()
	srv := httptest.NewServer(NewHandler(cfg, slog.New(slog.NewTextHandler(io.Discard, nil))))
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/mutate", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	var out admissionv1.AdmissionReview
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("response is not an AdmissionReview: %v\n%s", err, b)
	}
	if out.APIVersion != "admission.k8s.io/v1" || out.Kind != "AdmissionReview" || out.Response == nil {
		t.Fatalf("bad response envelope: %s", b)
	}
	return out.Response
}

func readFixture(t *testing.T, name string) (raw []byte, req *admissionv1.AdmissionReview) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	req = &admissionv1.AdmissionReview{}
	if err := json.Unmarshal(raw, req); err != nil {
		t.Fatal(err)
	}
	return raw, req
}

// applyPatch applies resp's JSON patch to the request's pod and decodes the
// result strictly (unknown fields are an error: the patch must build a valid Pod).
func applyPatch(t *testing.T, req *admissionv1.AdmissionReview, resp *admissionv1.AdmissionResponse) ([]byte, *corev1.Pod) {
	t.Helper()
	if resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
		t.Fatalf("patchType = %v, want JSONPatch", resp.PatchType)
	}
	p, err := jsonpatch.DecodePatch(resp.Patch)
	if err != nil {
		t.Fatalf("patch is not RFC 6902: %v\n%s", err, resp.Patch)
	}
	out, err := p.Apply(req.Request.Object.Raw)
	if err != nil {
		t.Fatalf("patch does not apply: %v\n%s", err, resp.Patch)
	}
	var pod corev1.Pod
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&pod); err != nil {
		t.Fatalf("patched pod does not decode: %v", err)
	}
	return out, &pod
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Indent(&buf, got, "", "  "); err != nil {
		t.Fatal(err)
	}
	buf.WriteByte('\n')
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it, then review it)", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("%s differs from golden (go test -update rewrites it; review the diff):\n%s", name, buf.Bytes())
	}
}

func envOf(c *corev1.Container) map[string]corev1.EnvVar {
	m := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		m[e.Name] = e
	}
	return m
}

func findSidecar(pod *corev1.Pod) (c *corev1.Container, init bool, n int) {
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == DefaultContainerName {
			c, init, n = &pod.Spec.InitContainers[i], true, n+1
		}
	}
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == DefaultContainerName {
			c, init, n = &pod.Spec.Containers[i], false, n+1
		}
	}
	return c, init, n
}

func TestInjectFixtures(t *testing.T) {
	for _, tc := range []struct {
		name, fixture, config string
		native                bool
		revision, target      string
		goMemLimit            string // "" = must be absent
		initBefore            int    // init containers of the pod itself, sidecar comes after them
		service               string // OPSIGHT_SERVICE_NAME of the sidecar and OTEL_SERVICE_NAME of the operator
	}{
		// The Deployment's name, from the ReplicaSet owner without its pod-template-hash.
		{"operator_native", "review_operator.json", "config.yaml", true, "v1.4.2", "manager", "120795955", 0, "widget-controller-manager"},
		{"operator_regular", "review_operator.json", "config.yaml", false, "v1.4.2", "manager", "120795955", 0, "widget-controller-manager"},
		{"revision_annotation_native", "review_revision_annotation.json", "config.yaml", true, "2026.11.3-rc1", "manager", "120795955", 1, "widget-controller-manager"},
		{"revision_annotation_regular", "review_revision_annotation.json", "config.yaml", false, "2026.11.3-rc1", "manager", "120795955", 1, "widget-controller-manager"},
		// No pod-template-hash label: a bare ReplicaSet, which is the workload itself.
		{"digest_port_native", "review_digest_port.json", "config.yaml", true, "sha256:0123456789ab", "manager", "120795955", 0, "widget-controller-manager-5b6c7d8e9f"},
		{"operator_api_regular", "review_operator.json", "config_api.yaml", false, "v1.4.2", "manager", "450000000", 0, "widget-controller-manager"},
		// The annotation beats the app.kubernetes.io/name label; the
		// operator's existing env gets OTEL_SERVICE_NAME appended.
		{"service_annotation_native", "review_service_annotation.json", "config.yaml", true, "v1.4.2", "manager", "120795955", 0, "widget-operator"},
		// The operator's own OTEL_SERVICE_NAME beats the label and is kept.
		{"otel_env_native", "review_otel_env.json", "config.yaml", true, "v1.4.2", "manager", "120795955", 0, "widget-operator"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := loadCfg(t, tc.config, tc.native)
			raw, req := readFixture(t, tc.fixture)
			resp := review(t, cfg, raw)
			if !resp.Allowed || resp.UID != req.Request.UID || len(resp.Warnings) != 0 {
				t.Fatalf("response: allowed=%t uid=%q warnings=%v", resp.Allowed, resp.UID, resp.Warnings)
			}
			golden(t, tc.name+".patch.json", resp.Patch)
			out, pod := applyPatch(t, req, resp)
			golden(t, tc.name+".pod.json", out)

			sc, isInit, n := findSidecar(pod)
			if n != 1 {
				t.Fatalf("%d sidecars, want 1", n)
			}
			if isInit != tc.native {
				t.Errorf("sidecar in initContainers = %t, want %t", isInit, tc.native)
			}
			if tc.native {
				if sc.RestartPolicy == nil || *sc.RestartPolicy != corev1.ContainerRestartPolicyAlways {
					t.Errorf("native sidecar restartPolicy = %v, want Always", sc.RestartPolicy)
				}
				if len(pod.Spec.InitContainers) != tc.initBefore+1 || pod.Spec.InitContainers[tc.initBefore].Name != DefaultContainerName {
					t.Errorf("sidecar is not after the pod's %d init containers", tc.initBefore)
				}
			} else if sc.RestartPolicy != nil {
				t.Errorf("regular container has restartPolicy %v", *sc.RestartPolicy)
			}
			env := envOf(sc)
			if got := env["OPSIGHT_REVISION"].Value; got != tc.revision {
				t.Errorf("OPSIGHT_REVISION = %q, want %q", got, tc.revision)
			}
			if got := env["CONTAINER_NAME"].Value; got != tc.target {
				t.Errorf("CONTAINER_NAME = %q, want %q", got, tc.target)
			}
			if got := env["OPSIGHT_SERVICE_NAME"].Value; got != tc.service {
				t.Errorf("OPSIGHT_SERVICE_NAME = %q, want %q", got, tc.service)
			}
			checkOTelServiceName(t, pod, tc.target, tc.service)
			if got, ok := env["GOMEMLIMIT"]; (tc.goMemLimit == "") == ok || got.Value != tc.goMemLimit {
				t.Errorf("GOMEMLIMIT = %q (set %t), want %q", got.Value, ok, tc.goMemLimit)
			}
			for name, path := range map[string]string{"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace",
				"POD_UID": "metadata.uid", "NODE_NAME": "spec.nodeName"} {
				if e := env[name]; e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != path {
					t.Errorf("%s not from the downward API %s: %+v", name, path, e)
				}
			}
			if env["OPSIGHT_STATE_DIR"].Value != "/var/lib/opsight" {
				t.Errorf("OPSIGHT_STATE_DIR = %q", env["OPSIGHT_STATE_DIR"].Value)
			}
			if got := env["OPSIGHT_STATE_LIMIT_BYTES"].Value; got != "268435456" { // stateSizeLimit 256Mi
				t.Errorf("OPSIGHT_STATE_LIMIT_BYTES = %q, want the emptyDir's sizeLimit 256Mi in bytes", got)
			}
			if pod.Labels[LabelInjected] != "true" {
				t.Errorf("label %s not set: %v", LabelInjected, pod.Labels)
			}
			// The PodMonitor's service_name: the sidecar's identity, exactly.
			if got := pod.Annotations[AnnotationServiceName]; got != tc.service {
				t.Errorf("annotation %s = %q, want the sidecar's OPSIGHT_SERVICE_NAME %q", AnnotationServiceName, got, tc.service)
			}
			checkLogAccess(t, cfg, pod, sc, env, tc.target)
		})
	}
}

// checkOTelServiceName: the operator container has exactly one
// OTEL_SERVICE_NAME, equal to the sidecar's service name, and keeps every
// variable it had.
func checkOTelServiceName(t *testing.T, pod *corev1.Pod, target, want string) {
	t.Helper()
	for _, c := range pod.Spec.Containers {
		if c.Name != target {
			continue
		}
		n := 0
		for _, e := range c.Env {
			if e.Name == EnvOTelServiceName {
				n++
				if e.Value != want {
					t.Errorf("%s: OTEL_SERVICE_NAME = %q, want %q", target, e.Value, want)
				}
			}
		}
		if n != 1 {
			t.Errorf("%s: %d OTEL_SERVICE_NAME entries, want 1: %+v", target, n, c.Env)
		}
		return
	}
	t.Errorf("no container %s", target)
}

func checkLogAccess(t *testing.T, cfg *Config, pod *corev1.Pod, sc *corev1.Container, env map[string]corev1.EnvVar, target string) {
	t.Helper()
	var logs, state *corev1.Volume
	for i := range pod.Spec.Volumes {
		switch pod.Spec.Volumes[i].Name {
		case VolumePodLogs:
			logs = &pod.Spec.Volumes[i]
		case VolumeState:
			state = &pod.Spec.Volumes[i]
		}
	}
	if state == nil || state.EmptyDir == nil {
		t.Errorf("state volume is not an emptyDir: %+v", state)
	}
	if env["OPSIGHT_LOG_SOURCE"].Value != cfg.LogSource {
		t.Errorf("OPSIGHT_LOG_SOURCE = %q, want %q", env["OPSIGHT_LOG_SOURCE"].Value, cfg.LogSource)
	}
	checkAPIAccess(t, cfg.LogSource == LogSourceAPI, pod, sc)
	if cfg.LogSource == LogSourceAPI {
		if logs != nil || env["OPSIGHT_LOG_INCLUDE"].Name != "" {
			t.Errorf("api mode must not mount host logs: volume %+v, include %q", logs, env["OPSIGHT_LOG_INCLUDE"].Value)
		}
		return
	}
	if logs == nil || logs.HostPath == nil || logs.HostPath.Path != "/var/log/pods" {
		t.Fatalf("log volume: %+v", logs)
	}
	var m *corev1.VolumeMount
	for i := range sc.VolumeMounts {
		if sc.VolumeMounts[i].Name == VolumePodLogs {
			m = &sc.VolumeMounts[i]
		}
	}
	if m == nil || !m.ReadOnly || m.SubPathExpr != "$(POD_NAMESPACE)_$(POD_NAME)_$(POD_UID)" {
		t.Fatalf("log mount must be read-only, the pod's own dir only: %+v", m)
	}
	if got, want := env["OPSIGHT_LOG_INCLUDE"].Value, m.MountPath+"/"+target+"/*.log*"; got != want {
		t.Errorf("OPSIGHT_LOG_INCLUDE = %q, want %q", got, want)
	}
	// subPathExpr may only use variables defined before... in the same container.
	pos := map[string]int{}
	for i, e := range sc.Env {
		pos[e.Name] = i
	}
	for _, v := range []string{"POD_NAMESPACE", "POD_NAME", "POD_UID"} {
		if _, ok := pos[v]; !ok {
			t.Errorf("subPathExpr uses %s, which the container does not define", v)
		}
	}
}

// checkAPIAccess: in api mode the pod has the sidecar's own token volume
// (a copy of kube-api-access-*) exactly once and only the sidecar mounts it,
// read-only at the service-account path; in file mode neither exists.
func checkAPIAccess(t *testing.T, api bool, pod *corev1.Pod, sc *corev1.Container) {
	t.Helper()
	var vol *corev1.Volume
	nVol := 0
	for i := range pod.Spec.Volumes {
		if pod.Spec.Volumes[i].Name == VolumeKubeAPIAccess {
			vol, nVol = &pod.Spec.Volumes[i], nVol+1
		}
	}
	var mount *corev1.VolumeMount
	nMount := 0
	for i := range sc.VolumeMounts {
		if sc.VolumeMounts[i].Name == VolumeKubeAPIAccess {
			mount, nMount = &sc.VolumeMounts[i], nMount+1
		}
	}
	checkNoSATokenShadow(t, !api, pod, sc)
	if !api {
		if nVol != 0 || nMount != 0 {
			t.Errorf("file mode: %d %s volumes and %d mounts, want none", nVol, VolumeKubeAPIAccess, nMount)
		}
		return
	}
	if nVol != 1 || nMount != 1 {
		t.Fatalf("api mode: %d %s volumes and %d mounts in the sidecar, want 1 each", nVol, VolumeKubeAPIAccess, nMount)
	}
	if !mount.ReadOnly || mount.MountPath != "/var/run/secrets/kubernetes.io/serviceaccount" || mount.SubPath != "" || mount.SubPathExpr != "" {
		t.Errorf("token mount: %+v", mount)
	}
	for _, cs := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for i := range cs {
			for _, m := range cs[i].VolumeMounts {
				if m.Name == VolumeKubeAPIAccess && cs[i].Name != sc.Name {
					t.Errorf("container %s mounts the sidecar's token volume", cs[i].Name)
				}
			}
		}
	}
	want := `{"name":"opsight-kube-api-access","projected":{"sources":[` +
		`{"serviceAccountToken":{"expirationSeconds":3607,"path":"token"}},` +
		`{"configMap":{"name":"kube-root-ca.crt","items":[{"key":"ca.crt","path":"ca.crt"}]}},` +
		`{"downwardAPI":{"items":[{"path":"namespace","fieldRef":{"apiVersion":"v1","fieldPath":"metadata.namespace"}}]}}],` +
		`"defaultMode":420}}`
	if got, _ := json.Marshal(vol); string(got) != want {
		t.Errorf("token volume:\n got %s\nwant %s", got, want)
	}
}

// checkNoSATokenShadow: in file mode the pod has the opsight-no-sa-token
// volume exactly once (a memory-backed emptyDir of 1Ki, a volume type every
// Pod Security level allows) and only the sidecar mounts it, read-only at the
// service-account path; in api mode neither exists.
func checkNoSATokenShadow(t *testing.T, want bool, pod *corev1.Pod, sc *corev1.Container) {
	t.Helper()
	var vol *corev1.Volume
	nVol := 0
	for i := range pod.Spec.Volumes {
		if pod.Spec.Volumes[i].Name == VolumeNoSAToken {
			vol, nVol = &pod.Spec.Volumes[i], nVol+1
		}
	}
	var mounts []corev1.VolumeMount
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range cs {
			for _, m := range cs[i].VolumeMounts {
				if m.Name != VolumeNoSAToken {
					continue
				}
				if cs[i].Name != sc.Name {
					t.Errorf("container %s mounts %s", cs[i].Name, VolumeNoSAToken)
				}
				mounts = append(mounts, m)
			}
		}
	}
	if !want {
		if nVol != 0 || len(mounts) != 0 {
			t.Errorf("api mode: %d %s volumes and %d mounts, want none", nVol, VolumeNoSAToken, len(mounts))
		}
		return
	}
	if nVol != 1 || len(mounts) != 1 {
		t.Fatalf("file mode: %d %s volumes and %d mounts, want 1 each", nVol, VolumeNoSAToken, len(mounts))
	}
	if m := mounts[0]; !m.ReadOnly || m.MountPath != "/var/run/secrets/kubernetes.io/serviceaccount" || m.SubPath != "" || m.SubPathExpr != "" {
		t.Errorf("shadow mount: %+v", m)
	}
	if got, _ := json.Marshal(vol); string(got) != `{"name":"opsight-no-sa-token","emptyDir":{"medium":"Memory","sizeLimit":"1Ki"}}` {
		t.Errorf("shadow volume: %s", got)
	}
}

// saPluginMount applies the ServiceAccount admission plugin's mount rule, as
// the API server does when it re-runs its built-in plugins after the
// webhook's patch (k8s.io/kubernetes plugin/pkg/admission/serviceaccount,
// mountServiceAccountToken): every init and regular container without a
// volumeMount at exactly /var/run/secrets/kubernetes.io/serviceaccount gets
// the pod's kube-api-access-* volume there. It returns the containers that
// got it.
func saPluginMount(pod *corev1.Pod) []string {
	const path = "/var/run/secrets/kubernetes.io/serviceaccount"
	var got []string
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range cs {
			has := false
			for _, m := range cs[i].VolumeMounts {
				has = has || m.MountPath == path
			}
			if !has {
				cs[i].VolumeMounts = append(cs[i].VolumeMounts, corev1.VolumeMount{Name: "kube-api-access-abcde", MountPath: path, ReadOnly: true})
				got = append(got, cs[i].Name)
			}
		}
	}
	return got
}

// TestSidecarGetsNoPodToken: after injection, the ServiceAccount plugin's
// second pass mounts the pod's token into none of the sidecar's modes: file
// mode shadows the path with an empty volume, api mode with the sidecar's own
// token volume; an operator container without a token mount still gets one.
func TestSidecarGetsNoPodToken(t *testing.T) {
	_, req := readFixture(t, "review_operator.json")
	var pod corev1.Pod
	if err := json.Unmarshal(req.Request.Object.Raw, &pod); err != nil {
		t.Fatal(err)
	}
	// A container the plugin has not seen yet (as if added by another webhook).
	pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: "late", Image: "busybox:1"})
	req.Request.Object.Raw, _ = json.Marshal(&pod)
	body, _ := json.Marshal(req)
	for _, tc := range []struct {
		config string
		native bool
		shadow string // volume mounted by the sidecar at the service-account path
	}{
		{"config.yaml", true, VolumeNoSAToken},
		{"config.yaml", false, VolumeNoSAToken},
		{"config_api.yaml", true, VolumeKubeAPIAccess},
		{"config_api.yaml", false, VolumeKubeAPIAccess},
	} {
		resp := review(t, loadCfg(t, tc.config, tc.native), body)
		_, out := applyPatch(t, req, resp)
		sc, isInit, n := findSidecar(out)
		if n != 1 || isInit != tc.native {
			t.Fatalf("%s native=%t: %d sidecars, in initContainers %t", tc.config, tc.native, n, isInit)
		}
		var at []string
		for _, m := range sc.VolumeMounts {
			if m.MountPath == ServiceAccountMountPath {
				at = append(at, m.Name)
			}
		}
		if len(at) != 1 || at[0] != tc.shadow {
			t.Errorf("%s native=%t: sidecar mounts %v at %s, want only %s", tc.config, tc.native, at, ServiceAccountMountPath, tc.shadow)
		}
		if got := saPluginMount(out); len(got) != 1 || got[0] != "late" {
			t.Errorf("%s native=%t: the ServiceAccount plugin would mount the pod's token into %v, want only [late]", tc.config, tc.native, got)
		}
	}
}

func TestInjectTwiceGivesOneSidecar(t *testing.T) {
	for _, tc := range []struct {
		config string
		native bool
	}{
		{"config.yaml", true},
		{"config.yaml", false},
		{"config_api.yaml", true},
		{"config_api.yaml", false},
	} {
		cfg := loadCfg(t, tc.config, tc.native)
		raw, req := readFixture(t, "review_revision_annotation.json")
		resp := review(t, cfg, raw)
		once, _ := applyPatch(t, req, resp)

		// Same request again, now carrying the injected pod (a reinvocation,
		// or a pod created from an already injected spec).
		req.Request.Object.Raw = once
		again, _ := json.Marshal(req)
		resp2 := review(t, cfg, again)
		if !resp2.Allowed || resp2.Patch != nil || resp2.PatchType != nil {
			t.Fatalf("%s native=%t: second injection patched: %s", tc.config, tc.native, resp2.Patch)
		}
		var pod corev1.Pod
		if err := json.Unmarshal(once, &pod); err != nil {
			t.Fatal(err)
		}
		sc, _, n := findSidecar(&pod)
		if n != 1 {
			t.Fatalf("%s native=%t: %d sidecars", tc.config, tc.native, n)
		}
		checkAPIAccess(t, cfg.LogSource == LogSourceAPI, &pod, sc)
		checkOTelServiceName(t, &pod, "manager", envOf(sc)["OPSIGHT_SERVICE_NAME"].Value)
	}
}

// TestAPIModeIgnoresAutomountFalse: automountServiceAccountToken: false stops
// the ServiceAccount admission plugin's mount, not the sidecar's own volume,
// without which api mode cannot work.
func TestAPIModeIgnoresAutomountFalse(t *testing.T) {
	_, req := readFixture(t, "review_operator.json")
	var pod corev1.Pod
	if err := json.Unmarshal(req.Request.Object.Raw, &pod); err != nil {
		t.Fatal(err)
	}
	// As the API server sends it: no kube-api-access-* volume or mounts.
	pod.Spec.AutomountServiceAccountToken = ptr(false)
	pod.Spec.Volumes = nil
	for i := range pod.Spec.Containers {
		pod.Spec.Containers[i].VolumeMounts = nil
	}
	req.Request.Object.Raw, _ = json.Marshal(&pod)
	body, _ := json.Marshal(req)
	for _, tc := range []struct {
		config string
		api    bool
	}{{"config_api.yaml", true}, {"config.yaml", false}} {
		resp := review(t, loadCfg(t, tc.config, true), body)
		_, out := applyPatch(t, req, resp)
		sc, _, n := findSidecar(out)
		if n != 1 {
			t.Fatalf("%s: %d sidecars", tc.config, n)
		}
		checkAPIAccess(t, tc.api, out, sc)
		if *out.Spec.AutomountServiceAccountToken {
			t.Errorf("%s: automountServiceAccountToken changed", tc.config)
		}
	}
}

func TestNoPatch(t *testing.T) {
	for _, tc := range []struct {
		fixture string
		warning string // "" = no warning expected
	}{
		{"review_unannotated.json", ""},
		{"review_inject_false.json", ""},
		{"review_inject_invalid.json", `opsight.dev/inject="yes please" is not true/false`},
		{"review_missing_container.json", `opsight.dev/container="manger" names no container of this pod (containers: manager, kube-rbac-proxy)`},
		{"review_webhook_self.json", ""},
		{"review_update.json", ""},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			raw, req := readFixture(t, tc.fixture)
			resp := review(t, loadCfg(t, "config.yaml", true), raw)
			if !resp.Allowed || resp.Patch != nil || resp.PatchType != nil || resp.UID != req.Request.UID {
				t.Fatalf("want allowed without patch, got allowed=%t uid=%q patch=%s", resp.Allowed, resp.UID, resp.Patch)
			}
			if tc.warning == "" && len(resp.Warnings) != 0 || tc.warning != "" && (len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], tc.warning)) {
				t.Errorf("warnings = %q, want %q", resp.Warnings, tc.warning)
			}
		})
	}
}

func TestWebhookSelfOnlyInOwnNamespace(t *testing.T) {
	// A pod elsewhere that happens to carry the webhook role label is an
	// operator like any other.
	_, req := readFixture(t, "review_webhook_self.json")
	req.Request.Namespace = "widget-system"
	body, _ := json.Marshal(req)
	if resp := review(t, loadCfg(t, "config.yaml", true), body); resp.Patch == nil {
		t.Errorf("pod outside the webhook namespace was not injected")
	}
}

func TestMalformedPodDenied(t *testing.T) {
	raw, _ := readFixture(t, "review_malformed_pod.json")
	resp := review(t, loadCfg(t, "config.yaml", true), raw)
	if resp.Allowed || resp.Result == nil || !strings.Contains(resp.Result.Message, "request.object is not a Pod") {
		t.Fatalf("want a denial naming the problem, got %+v", resp)
	}
}

func TestHandlerRejectsBadBodies(t *testing.T) {
	srv := httptest.NewServer(NewHandler(loadCfg(t, "config.yaml", true), slog.New(slog.NewTextHandler(io.Discard, nil))))
	defer srv.Close()
	for body, want := range map[string]string{
		`{`: "body is not an AdmissionReview",
		`{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{}}`: "set admissionReviewVersions: [v1]",
		`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`:                   "no request",
	} {
		resp, err := http.Post(srv.URL+"/mutate", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(string(b), want) {
			t.Errorf("%s: status %d %q, want 400 %q", body, resp.StatusCode, b, want)
		}
	}
	resp, err := http.Get(srv.URL + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()
}

func TestGoMemLimit(t *testing.T) {
	for _, tc := range []struct {
		limit   string
		percent int
		want    string
	}{
		{"128Mi", 90, "120795955"}, // 134217728 * 0.9 = 120795955.2
		{"500M", 90, "450000000"},
		{"1Gi", 100, "1073741824"},
		{"1.5Gi", 50, "805306368"},
		{"100", 90, "90"},
		{"", 90, ""},
	} {
		cfg := Config{GoMemLimitPercent: tc.percent, Resources: &corev1.ResourceRequirements{}}
		if tc.limit != "" {
			cfg.Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(tc.limit)}
		}
		got, ok := goMemLimit(&cfg)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("goMemLimit(%s, %d%%) = %q,%t want %q", tc.limit, tc.percent, got, ok, tc.want)
		}
	}
}

func FuzzMutate(f *testing.F) {
	for _, name := range []string{"review_operator.json", "review_revision_annotation.json", "review_malformed_pod.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	cfg, err := LoadConfig(filepath.Join("testdata", "config.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		review, _, err := decodeReview(bytes.NewReader(b))
		if err != nil {
			return
		}
		resp := Mutate(&cfg, review.Request)
		if resp.Patch == nil {
			return
		}
		p, err := jsonpatch.DecodePatch(resp.Patch)
		if err != nil {
			t.Fatalf("invalid patch: %v", err)
		}
		if _, err := p.Apply(review.Request.Object.Raw); err != nil {
			t.Fatalf("patch does not apply to its own pod: %v\n%s", err, resp.Patch)
		}
	})
}

// BenchmarkMutate measures one admission decision (decode pod, plan, encode
// patch) for a typical operator pod.
func BenchmarkMutate(b *testing.B) {
	cfg, err := LoadConfig(filepath.Join("testdata", "config.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join("testdata", "review_operator.json"))
	if err != nil {
		b.Fatal(err)
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(raw, &review); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if resp := Mutate(&cfg, review.Request); resp.Patch == nil {
			b.Fatal("no patch")
		}
	}
}

// TestMutateAPIPath: /mutate/api injects in api mode whatever the config's
// log source (the chart routes namespaces that enforce Pod Security
// baseline/restricted there, where a hostPath would get the pod rejected).
func TestMutateAPIPath(t *testing.T) {
	for _, tc := range []struct {
		name      string
		configure func(*Config)
		wantGroup int64
	}{
		{"default securityContext follows the log source", func(*Config) {}, 65532},
		{"configured securityContext is kept", func(c *Config) {
			c.SecurityContext = c.SecurityContext.DeepCopy()
			c.SecurityContext.RunAsGroup = ptr(int64(1234))
			c.defaultSecurityContext = false
		}, 1234},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := loadCfg(t, "config.yaml", true)
			tc.configure(cfg)
			srv := httptest.NewServer(NewHandler(cfg, slog.New(slog.NewTextHandler(io.Discard, nil))))
			defer srv.Close()
			raw, req := readFixture(t, "review_operator.json")
			resp, err := http.Post(srv.URL+"/mutate/api", "application/json", bytes.NewReader(raw))
			if err != nil {
				t.Fatal(err)
			}
			var out admissionv1.AdmissionReview
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			_, pod := applyPatch(t, req, out.Response)
			sc, _, n := findSidecar(pod)
			if n != 1 {
				t.Fatalf("%d sidecars", n)
			}
			apiCfg := cfg.WithLogSource(LogSourceAPI)
			checkLogAccess(t, &apiCfg, pod, sc, envOf(sc), "manager")
			if got := *sc.SecurityContext.RunAsGroup; got != tc.wantGroup {
				t.Errorf("runAsGroup = %d, want %d", got, tc.wantGroup)
			}
			if cfg.LogSource != LogSourceFile {
				t.Errorf("WithLogSource changed the original config")
			}
		})
	}
}

// TestServiceWarningInResponse: an operator whose own OTEL_SERVICE_NAME the
// annotation overrides is still injected, its OTEL_SERVICE_NAME untouched,
// and the user is told its spans will be renamed.
func TestServiceWarningInResponse(t *testing.T) {
	_, req := readFixture(t, "review_otel_env.json")
	var pod corev1.Pod
	if err := json.Unmarshal(req.Request.Object.Raw, &pod); err != nil {
		t.Fatal(err)
	}
	pod.Annotations[AnnotationService] = "widget"
	req.Request.Object.Raw, _ = json.Marshal(&pod)
	body, _ := json.Marshal(req)
	resp := review(t, loadCfg(t, "config.yaml", true), body)
	if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], `names its spans "widget-operator"`) {
		t.Errorf("warnings = %q, want one about the renamed spans", resp.Warnings)
	}
	_, out := applyPatch(t, req, resp)
	sc, _, n := findSidecar(out)
	if n != 1 || envOf(sc)["OPSIGHT_SERVICE_NAME"].Value != "widget" {
		t.Fatalf("%d sidecars, OPSIGHT_SERVICE_NAME %q; want 1, widget", n, envOf(sc)["OPSIGHT_SERVICE_NAME"].Value)
	}
	checkOTelServiceName(t, out, "manager", "widget-operator") // the operator's own value is kept
}
