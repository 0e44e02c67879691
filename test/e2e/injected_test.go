package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	"github.com/opsight/opsight/internal/conventions"
	"github.com/opsight/opsight/internal/simoperator"
	"github.com/opsight/opsight/internal/testservers"
	"github.com/opsight/opsight/operator-sidecar/webhook"
)

// injectedPod is one operator pod as a user gets it: the chart rendered with
// the user's values, the webhook's real mutation applied to a kubebuilder
// operator's pod, and the sidecar started with exactly that container's
// environment. Its volumes are where the kubelet would put them, emulated in
// a private mount namespace (unshare -m): the pod's own log directory
// (hostPath + subPathExpr) and the state emptyDir appear at the container's
// mount paths. Only listen addresses are moved to free loopback ports, since
// tests run side by side on one machine.
type injectedPod struct {
	pod      *corev1.Pod
	env      map[string]string // the sidecar container's env, resolved
	podLogs  string            // this machine's /var/log/pods/<ns>_<pod>_<uid>
	state    string            // this machine's directory behind the state emptyDir
	limit    int64             // the emptyDir's sizeLimit in bytes
	sc       *sidecar
	hostRoot string // stands for the node's / (var/log/pods lives below it)
}

const (
	injNamespace = "etcd-system"
	injPod       = "etcd-operator-7d9f8c6b5d-x2x4z"
	injUID       = "5b1f7c1e-0d6a-4a53-9e8e-1f2a3b4c5d6e"
	injImage     = "registry.example.com/acme/etcd-operator:v1.5.0"
)

// injectSidecar renders the chart with helm --set values, mutates a
// kubebuilder operator pod with the webhook configuration the chart renders,
// and prepares (does not start) its sidecar.
func injectSidecar(t *testing.T, values ...string) *injectedPod {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the injected-environment tests emulate the pod's volumes with mount namespaces and need root, as CI and the dev machines have")
	}
	cfg := chartWebhookConfig(t, values...)
	pod := kubebuilderPod()
	patched := mutate(t, &cfg, pod)

	var side *corev1.Container
	for _, cs := range [][]corev1.Container{patched.Spec.InitContainers, patched.Spec.Containers} {
		for i := range cs {
			if cs[i].Name == conventions.SidecarContainer {
				side = &cs[i]
			}
		}
	}
	if side == nil {
		t.Fatalf("the webhook injected no %s container", conventions.SidecarContainer)
	}
	ip := &injectedPod{pod: patched, env: map[string]string{}, hostRoot: t.TempDir(), state: t.TempDir()}
	ip.podLogs = filepath.Join(ip.hostRoot, "var/log/pods", fmt.Sprintf("%s_%s_%s", injNamespace, injPod, injUID))
	fields := map[string]string{"metadata.name": injPod, "metadata.namespace": injNamespace, "metadata.uid": injUID, "spec.nodeName": "node-1"}
	for _, e := range side.Env {
		v := e.Value
		if e.ValueFrom != nil {
			if e.ValueFrom.FieldRef == nil {
				t.Fatalf("env %s: only fieldRef values are resolved by this test", e.Name)
			}
			var ok bool
			if v, ok = fields[e.ValueFrom.FieldRef.FieldPath]; !ok {
				t.Fatalf("env %s: field %s not resolved by this test", e.Name, e.ValueFrom.FieldRef.FieldPath)
			}
		}
		ip.env[e.Name] = testservers.KubeExpand(v, ip.env)
	}
	for _, k := range []string{conventions.EnvMetricsAddr, conventions.EnvOTLPGRPCAddr, conventions.EnvOTLPHTTPAddr} {
		ip.env[k] = testservers.FreeAddr(t)
	}

	// The kubelet's side of the volumes: where each mount comes from here.
	var mounts []testservers.BindMount
	for _, m := range side.VolumeMounts {
		vol := testservers.PodVolume(patched, m.Name)
		if vol == nil {
			t.Fatalf("mount %s names no volume", m.Name)
		}
		var src string
		switch {
		case vol.HostPath != nil:
			src = testservers.MountSubPath(filepath.Join(ip.hostRoot, vol.HostPath.Path), m, ip.env)
			if err := os.MkdirAll(src, 0o755); err != nil {
				t.Fatal(err)
			}
		case vol.EmptyDir != nil && m.MountPath == conventions.DefaultStateDir:
			src = ip.state
			if vol.EmptyDir.SizeLimit != nil {
				ip.limit = vol.EmptyDir.SizeLimit.Value()
			}
		case vol.EmptyDir != nil: // e.g. the empty one over the service-account path
			src = t.TempDir()
		default:
			t.Fatalf("volume %s: only hostPath and emptyDir are emulated", vol.Name)
		}
		mounts = append(mounts, testservers.BindMount{Source: src, Target: m.MountPath, ReadOnly: m.ReadOnly})
	}
	script, err := testservers.MountScript(mounts)
	if err != nil {
		t.Fatal(err)
	}
	ip.sc = newSidecar(t, ip.env)
	// Only what the pod gives: no variable of this machine may help.
	ip.sc.env = []string{"PATH=" + os.Getenv("PATH"), "GOMAXPROCS=1"}
	for k, v := range ip.env {
		ip.sc.env = append(ip.sc.env, k+"="+v)
	}
	ip.sc.wrap = []string{"unshare", "-m", "--propagation", "private", "sh", "-ec", script + "\nexec \"$0\""}
	return ip
}

// stateBytes is what the state volume holds, as the kubelet measures an
// emptyDir for its sizeLimit (du: allocated blocks).
func (ip *injectedPod) stateBytes(t *testing.T) int64 {
	t.Helper()
	out, err := exec.Command("du", "-s", "-B1", ip.state).Output()
	if err != nil {
		t.Fatalf("du %s: %v", ip.state, err)
	}
	n, err := strconv.ParseInt(strings.Fields(string(out))[0], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// chartConfigMaps renders the chart (helm template, offline, with args such
// as -f and --set) and returns its ConfigMaps.
func chartConfigMaps(t *testing.T, args ...string) []corev1.ConfigMap {
	t.Helper()
	root, err := testservers.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	args = append([]string{"template", "rel", filepath.Join(root, "deploy/helm/opsight"), "--namespace", "opsight-system"}, args...)
	cmd := exec.Command(testservers.Helm.MustPath(t), args...)
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CONFIG_HOME="+home, "HELM_CACHE_HOME="+home, "HELM_DATA_HOME="+home, "KUBECONFIG="+filepath.Join(home, "none"))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	var cms []corev1.ConfigMap
	for _, doc := range strings.Split(out.String(), "\n---") {
		var cm corev1.ConfigMap
		if err := yaml.Unmarshal([]byte(doc), &cm); err == nil && cm.Kind == "ConfigMap" {
			cms = append(cms, cm)
		}
	}
	return cms
}

// setArgs turns helm --set values into arguments.
func setArgs(values []string) []string {
	var args []string
	for _, v := range values {
		args = append(args, "--set", v)
	}
	return args
}

// chartWebhookConfig renders the chart and parses the injection settings its
// ConfigMap gives the webhook.
func chartWebhookConfig(t *testing.T, values ...string) webhook.Config {
	t.Helper()
	for _, cm := range chartConfigMaps(t, setArgs(values)...) {
		raw, ok := cm.Data["inject.yaml"]
		if !ok {
			continue
		}
		cfg, err := webhook.ParseConfig([]byte(raw))
		if err != nil {
			t.Fatalf("the chart's webhook configuration does not load: %v\n%s", err, raw)
		}
		return cfg
	}
	t.Fatal("the rendered chart has no ConfigMap with inject.yaml")
	return webhook.Config{}
}

// kubebuilderPod is what a kubebuilder operator's Deployment creates:
// container "manager", no service name anywhere but the workload's name.
func kubebuilderPod() *corev1.Pod {
	return &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: "etcd-operator-7d9f8c6b5d-",
			Namespace:    injNamespace,
			Labels:       map[string]string{"control-plane": "controller-manager", "pod-template-hash": "7d9f8c6b5d"},
			Annotations:  map[string]string{"opsight.dev/inject": "true"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: appsv1.SchemeGroupVersion.String(), Kind: "ReplicaSet",
				Name: "etcd-operator-7d9f8c6b5d", UID: "11111111-2222-3333-4444-555555555555", Controller: ptrTo(true)}},
		},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "manager", Image: injImage, Args: []string{"--leader-elect"}}}},
	}
}

func ptrTo[T any](v T) *T { return &v }

// mutate runs the webhook's admission on pod and applies its JSON patch.
func mutate(t *testing.T, cfg *webhook.Config, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	req := &admissionv1.AdmissionRequest{
		UID: types.UID("req-1"), Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
		Namespace: pod.Namespace, Operation: admissionv1.Create,
	}
	req.Object.Raw = raw
	resp := webhook.Mutate(cfg, req)
	if !resp.Allowed || len(resp.Patch) == 0 {
		t.Fatalf("the webhook did not inject: allowed=%v result=%v warnings=%v", resp.Allowed, resp.Result, resp.Warnings)
	}
	p, err := jsonpatch.DecodePatch(resp.Patch)
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.Apply(raw)
	if err != nil {
		t.Fatalf("applying the webhook's patch: %v", err)
	}
	var patched corev1.Pod
	if err := json.Unmarshal(out, &patched); err != nil {
		t.Fatal(err)
	}
	patched.Name, patched.UID = injPod, injUID // set by the API server
	return &patched
}

var quantityRE = regexp.MustCompile(`^[0-9]+$`)

func TestInjectedHarness(t *testing.T) {
	// The harness itself: the env and mounts come from the webhook, not
	// from this file. A change in the chart's defaults shows here first.
	ip := injectSidecar(t, "sidecar.lokiURL=http://127.0.0.1:9/loki/api/v1/push", "sidecar.stateSizeLimit=48Mi")
	for _, k := range []string{conventions.EnvPodName, conventions.EnvPodNamespace, conventions.EnvContainer, conventions.EnvStateDir, conventions.EnvServiceName, conventions.EnvStateLimitBytes} {
		if ip.env[k] == "" {
			t.Errorf("the webhook's environment has no %s: %v", k, ip.env)
		}
	}
	if ip.limit != 48<<20 || ip.env[conventions.EnvStateLimitBytes] != strconv.FormatInt(ip.limit, 10) {
		t.Errorf("state volume limit %d, %s=%q: the sidecar must be told the emptyDir's sizeLimit", ip.limit, conventions.EnvStateLimitBytes, ip.env[conventions.EnvStateLimitBytes])
	}
	if !quantityRE.MatchString(ip.env[conventions.EnvStateLimitBytes]) {
		t.Errorf("%s=%q is not a byte count", conventions.EnvStateLimitBytes, ip.env[conventions.EnvStateLimitBytes])
	}
	if got := ip.env[conventions.EnvServiceName]; got != "etcd-operator" {
		t.Errorf("service name %q, want the Deployment's name etcd-operator (never the container name manager)", got)
	}
}

// TestInjectedStateLimitBackendDown: the sidecar as injected, with a small
// state volume (sizeLimit 32Mi) and Loki down while the operator writes more
// than the volume holds. kubelet evicts a pod (operator included) whose
// emptyDir passes its sizeLimit, so the state directory must never pass it:
// the queue fills, the receiver stops reading, the backlog waits in the
// node's log files (kubelet's defaults: 10Mi files, 5 kept, older ones
// gzipped), and once Loki is back every line arrives exactly once.
func TestInjectedStateLimitBackendDown(t *testing.T) {
	eachLogStore(t, testInjectedStateLimitBackendDown)
}

func testInjectedStateLimitBackendDown(t *testing.T, storeName string) {
	store := startLogStore(t, storeName)
	proxy := newFaultProxy(t, store.baseURL())
	ip := injectSidecar(t, "sidecar.lokiURL="+proxy.URL()+store.pushPath(), "sidecar.stateSizeLimit=32Mi")
	w, err := simoperator.NewCRIWriter(filepath.Join(ip.podLogs, "manager"), 10<<20, 5)
	if err != nil {
		t.Fatal(err)
	}
	proxy.set(modeRefuse)
	ip.sc.start()

	var peak atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() { // the kubelet measures periodically; sample more often than it does
		defer close(sampled)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if n := ip.stateBytes(t); n > peak.Load() {
					peak.Store(n)
				}
			}
		}
	}()

	const n, rate = 110_000, 6000 // ~37 MB of CRI lines: more than the volume, less than the node keeps
	if err := writeSeq(w, 0, n, rate); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	read, _ := ip.sc.metricValue(conventions.MetricLogRecords, "")
	t.Logf("Loki down: the sidecar read %.0f of %d lines; state volume peak %d of %d bytes", read, n, peak.Load(), ip.limit)
	if read >= n {
		t.Errorf("the sidecar read all %d lines with Loki down and a volume that cannot hold them: no backpressure", n)
	}
	proxy.set(modePass)
	seen, complete := waitSeqs(t, store, injPod, n, 300*time.Second)
	close(stop)
	<-sampled
	rep := checkSeqs(seen, n)
	rotations, _ := ip.sc.metricValue(conventions.MetricTailRotations, "")
	dropped, _ := ip.sc.metricValue(conventions.MetricExportDropped, "")
	t.Logf("after the outage: missing %d, duplicates %d, unexpected %d; rotations written %d, counted %.0f; dropped %.0f; state volume peak %d bytes (limit %d)",
		rep.missing, rep.dups, rep.extra, w.Rotations(), rotations, dropped, peak.Load(), ip.limit)
	if p := peak.Load(); p > ip.limit {
		t.Errorf("the state volume reached %d bytes, past its sizeLimit %d: kubelet would evict the operator's pod", p, ip.limit)
	}
	if rep.missing > 0 || !complete {
		t.Errorf("%d of %d lines never reached the backend\n%s", rep.missing, n, ip.sc.logs())
	}
	if rep.dups > 0 || rep.extra > 0 {
		t.Errorf("%d duplicate and %d unexpected lines; every line must arrive exactly once", rep.dups, rep.extra)
	}
	if dropped != 0 {
		t.Errorf("%s = %v, want 0", conventions.MetricExportDropped, dropped)
	}
	if d := store.discarded(); len(d) > 0 {
		t.Errorf("Loki discarded %v: the sidecar sent what Loki refuses", d)
	}
	if int(rotations) < w.Rotations() {
		t.Errorf("%s = %.0f after %d kubelet-style rotations: every rotation must be counted", conventions.MetricTailRotations, rotations, w.Rotations())
	}
}

// TestInjectedKillOutageGzippedRotations: the sidecar as injected falls
// behind (two kill -9 with a few seconds down each, and a 20 s Loki outage
// between them) while kubelet rotates at 1 MiB and gzips every rotated file
// but the newest. Lines that were compressed while the sidecar was behind are
// still on the node, so none may be missing.
func TestInjectedKillOutageGzippedRotations(t *testing.T) {
	eachLogStore(t, testInjectedKillOutageGzippedRotations)
}

func testInjectedKillOutageGzippedRotations(t *testing.T, storeName string) {
	store := startLogStore(t, storeName)
	proxy := newFaultProxy(t, store.baseURL())
	ip := injectSidecar(t, "sidecar.lokiURL="+proxy.URL()+store.pushPath())
	w, err := simoperator.NewCRIWriter(filepath.Join(ip.podLogs, "manager"), 1<<20, 0)
	if err != nil {
		t.Fatal(err)
	}
	ip.sc.start()
	const n, rate = 150_000, 5000
	done := make(chan error, 1)
	go func() { done <- writeSeq(w, 0, n, rate) }()

	down := func(d time.Duration) {
		ip.sc.stop(syscall.SIGKILL)
		time.Sleep(d)
		ip.sc.start()
	}
	time.Sleep(4 * time.Second)
	down(4 * time.Second)
	time.Sleep(2 * time.Second)
	proxy.set(modeRefuse)
	time.Sleep(10 * time.Second)
	down(5 * time.Second) // killed in the middle of the outage, queue on disk
	time.Sleep(10 * time.Second)
	proxy.set(modePass)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	gz, _ := filepath.Glob(filepath.Join(ip.podLogs, "manager", "*.gz"))
	seen, complete := waitSeqs(t, store, injPod, n, 300*time.Second)
	missing, dups, gaps := tally(seen, n)
	rotations, _ := ip.sc.metricValue(conventions.MetricTailRotations, "")
	t.Logf("%d lines, %d rotations (%d gzipped files on the node), 2 kill -9, 20 s outage: missing %d, duplicates %d; rotations counted %.0f",
		n, w.Rotations(), len(gz), missing, dups, rotations)
	if missing > 0 || !complete {
		t.Errorf("%d lines missing (ranges %v): they were in rotated files still on the node\n%s", missing, gaps, ip.sc.logs())
	}
	// At least once: a kill between the queue write and the checkpoint
	// re-reads that one batch (the receiver's max_batch_lines, 1000).
	const kills, batch = 2, 1000
	if dups > kills*batch {
		t.Errorf("%d lines arrived twice, more than one batch per kill (%d)", dups, kills*batch)
	}
	if d := store.discarded(); len(d) > 0 {
		t.Errorf("Loki discarded %v: the sidecar sent what Loki refuses", d)
	}
	if len(gz) == 0 {
		t.Errorf("no rotated file was gzipped: the test did not exercise compressed rotations")
	}
}
