package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/opsight/opsight/internal/conventions"
	"github.com/opsight/opsight/internal/jsonlines"
	"github.com/opsight/opsight/internal/simoperator"
	"github.com/opsight/opsight/internal/testservers"
	"github.com/opsight/opsight/operator-sidecar/webhook"
)

const (
	// exampleOperatorPkg is the real controller-runtime operator these
	// tests run, in the instrument module.
	exampleOperatorPkg = "./example/widget-operator"
	// slowBuildDelay is what the second build of it sleeps in every
	// reconcile: the regression the release gate must catch.
	slowBuildDelay = "50ms"
	operatorNS     = "widget-system"
	operatorName   = "widget-operator"
	// widgetsPerBuild: each makes about two reconciles, so each build's
	// Reconcile spans pass the 299 a distribution-free p99 bound needs.
	widgetsPerBuild = 160
)

// operatorPod is one running pod of the operator's Deployment: the real
// operator binary as its "manager" container (stdout and stderr into the
// kubelet-layout CRI file) and the injected sidecar tailing that file.
type operatorPod struct {
	pod      *corev1.Pod
	manager  *container
	sidecar  *container
	criFile  *simoperator.CRIWriter
	stateDir string
}

// TestRealOperator runs a controller-runtime operator (instrument/example/
// widget-operator) against the real API server, as the chart's webhook
// injects it: its own service account and RBAC, its JSON logs through a CRI
// file to the sidecar and on to Loki, its spans over OTLP to the sidecar.
// Then a rollout to a build that sleeps 50 ms longer in every reconcile,
// and the release gate on the spans the sidecar kept.
func TestRealOperator(t *testing.T) {
	cs, _ := client(t)
	ctx := context.Background()
	root, err := testservers.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if err := plane.ApplyCRDs(filepath.Join(root, "instrument", exampleOperatorPkg, "crd.yaml")); err != nil {
		t.Fatal(err)
	}
	loki := testservers.StartStrictLoki(t)
	const rel = "op"
	mustHelm(t, "install", rel, chartDir(t), "-n", releaseNS, "--create-namespace", "--wait", "--timeout", "3m",
		"--set", "sidecar.lokiURL="+loki.PushURL)
	t.Cleanup(func() { _, _ = helm(t, "uninstall", rel, "-n", releaseNS, "--wait") })
	runWebhook(t, cs, rel)
	namespace(t, cs, operatorNS, map[string]string{podSecurityEnforce: "privileged"})
	grantOperator(t, cs)

	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: operatorName, Namespace: operatorNS},
		Spec: appsv1.DeploymentSpec{Replicas: ptrTo(int32(1)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": operatorName}},
			Template: operatorPodSpec(map[string]string{webhook.AnnotationInject: "true"}, map[string]string{"app": operatorName})}}
	dep.Spec.Template.Spec.Containers[0].Image = "registry.example.com/acme/widget-operator:v1.0.0"
	dep.Spec.Template.Spec.Containers[0].Args = nil
	if _, err := cs.AppsV1().Deployments(operatorNS).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	hostRoot := t.TempDir()

	// v1.0.0: the operator as built.
	p1 := startOperatorPod(t, cs, bins.operator, hostRoot, "")
	createWidgets(t, "v1", widgetsPerBuild)
	waitChildren(t, cs, "v1", widgetsPerBuild)
	p1.stop(t)
	t.Run("logs-carry-reconcile-trace", func(t *testing.T) { checkTraceJoin(t, p1, loki) })

	// v1.1.0: the rollout of a build that sleeps longer in every reconcile.
	dep, err = cs.AppsV1().Deployments(operatorNS).Get(ctx, operatorName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dep.Spec.Template.Spec.Containers[0].Image = "registry.example.com/acme/widget-operator:v1.1.0"
	if _, err := cs.AppsV1().Deployments(operatorNS).Update(ctx, dep, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	p2 := startOperatorPod(t, cs, bins.operatorSlow, hostRoot, p1.pod.Labels["pod-template-hash"])
	createWidgets(t, "v2", widgetsPerBuild)
	waitChildren(t, cs, "v2", widgetsPerBuild)
	p2.stop(t)

	t.Run("release-gate", func(t *testing.T) {
		glob1 := filepath.Join(p1.stateDir, "out", "traces-*.jsonl")
		glob2 := filepath.Join(p2.stateDir, "out", "traces-*.jsonl")
		out, code := releasegate(t, "--otlp-file", glob1, "--otlp-file", glob2, "--baseline", "v1.0.0", "--candidate", "v1.1.0", "--span-kind", "server")
		t.Logf("releasegate v1.0.0 → v1.1.0 (+%s per reconcile), exit %d:\n%s", slowBuildDelay, code, out)
		if code != 1 || !strings.Contains(out, "Reconcile") {
			t.Errorf("the gate must fail the slow build on its Reconcile spans (exit 1), got exit %d", code)
		}
		out, code = releasegate(t, "--otlp-file", glob1, "--otlp-file", glob2, "--baseline", "v1.0.0", "--candidate", "v1.0.0", "--span-kind", "server")
		if code == 1 {
			t.Errorf("the gate fails a build against itself:\n%s", out)
		}
	})
}

// grantOperator gives the operator's service account what a kubebuilder
// project's RBAC gives: its CRD, ConfigMaps, events and leader election.
func grantOperator(t *testing.T, cs *kubernetes.Clientset) {
	t.Helper()
	ctx := context.Background()
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "widget-operator-manager"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{"demo.opsight.dev"}, Resources: []string{"widgets"}, Verbs: []string{"get", "list", "watch", "update", "patch"}},
		{APIGroups: []string{"demo.opsight.dev"}, Resources: []string{"widgets/status"}, Verbs: []string{"get", "update", "patch"}},
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
		{APIGroups: []string{"", "events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch"}},
	}}
	if _, err := cs.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "widget-operator-manager"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "default", Namespace: operatorNS}}}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cs.RbacV1().ClusterRoleBindings().Delete(ctx, rb.Name, metav1.DeleteOptions{})
		_ = cs.RbacV1().ClusterRoles().Delete(ctx, role.Name, metav1.DeleteOptions{})
	})
}

// startOperatorPod waits for the Deployment's pod whose template hash is not
// notHash, then runs its manager (bin) and its sidecar as the kubelet would.
func startOperatorPod(t *testing.T, cs *kubernetes.Clientset, bin, hostRoot, notHash string) *operatorPod {
	t.Helper()
	var pod *corev1.Pod
	eventually(t, 90*time.Second, "the operator's new pod running", func() (bool, error) {
		for _, p := range podsWithLabel(t, cs, operatorNS, "app="+operatorName) {
			if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && p.Labels["pod-template-hash"] != notHash {
				pod = &p
				return true, nil
			}
		}
		return false, nil
	})
	if side, _ := sidecarOf(pod); side == nil {
		t.Fatalf("pod %s: no sidecar injected", pod.Name)
	}
	op := &operatorPod{pod: pod}
	dir := simoperator.PodLogDir(filepath.Join(hostRoot, "var/log/pods"), pod.Namespace, pod.Name, string(pod.UID), "manager")
	var err error
	if op.criFile, err = simoperator.NewCRIWriter(dir, 10<<20, 5); err != nil {
		t.Fatal(err)
	}
	op.sidecar = kubeletFor(t, cs, pod, conventions.SidecarContainer, bins.sidecar, hostRoot)
	op.stateDir = op.sidecar.HostPath[stateVolume(t, pod)]
	op.sidecar.start()
	op.manager = kubeletFor(t, cs, pod, "manager", bin, hostRoot)
	op.manager.Stdout = &criStream{w: op.criFile, stream: "stdout"}
	op.manager.Stderr = &criStream{w: op.criFile, stream: "stderr"}
	op.manager.start()
	return op
}

// stateVolume names the sidecar's state emptyDir.
func stateVolume(t *testing.T, pod *corev1.Pod) string {
	t.Helper()
	side, _ := sidecarOf(pod)
	for _, m := range side.VolumeMounts {
		if m.MountPath == conventions.DefaultStateDir {
			return m.Name
		}
	}
	t.Fatalf("the sidecar mounts nothing at %s", conventions.DefaultStateDir)
	return ""
}

// stop ends the pod as the kubelet does on a rollout: SIGTERM to both
// containers (the operator first flushes its spans to the sidecar).
func (op *operatorPod) stop(t *testing.T) {
	t.Helper()
	op.manager.stop(10 * time.Second)
	time.Sleep(2 * time.Second) // the sidecar's batches leave before it is told to stop
	op.sidecar.stop(20 * time.Second)
	if err := op.criFile.Close(); err != nil {
		t.Fatal(err)
	}
}

// createWidgets creates n Widgets named <prefix>-<i> in the operator's
// namespace at 25 per second: the same steady load for both builds (a burst
// would measure the API server's queue as much as the operator).
func createWidgets(t *testing.T, prefix string, n int) {
	t.Helper()
	tick := time.NewTicker(40 * time.Millisecond)
	defer tick.Stop()
	for i := 0; i < n; i++ {
		<-tick.C
		w := fmt.Sprintf(`{"apiVersion":"demo.opsight.dev/v1alpha1","kind":"Widget","metadata":{"name":"%s-%d","namespace":%q},"spec":{"size":%d,"message":"hello"}}`,
			prefix, i, operatorNS, i%5+1)
		if _, err := plane.Do("POST", "/apis/demo.opsight.dev/v1alpha1/namespaces/"+operatorNS+"/widgets", []byte(w)); err != nil {
			t.Fatal(err)
		}
	}
}

// waitChildren waits until the operator made every Widget's ConfigMap.
func waitChildren(t *testing.T, cs *kubernetes.Clientset, prefix string, n int) {
	t.Helper()
	ctx := context.Background()
	eventually(t, 120*time.Second, fmt.Sprintf("%d child ConfigMaps of %s-*", n, prefix), func() (bool, error) {
		cms, err := cs.CoreV1().ConfigMaps(operatorNS).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		got := 0
		for _, cm := range cms.Items {
			if strings.HasPrefix(cm.Name, prefix+"-") && strings.HasSuffix(cm.Name, "-widget") && len(cm.OwnerReferences) == 1 {
				got++
			}
		}
		return got >= n, fmt.Errorf("%d so far", got)
	})
}

// otlpSpan is what these checks read of a span in the sidecar's OTLP JSON.
type otlpSpan struct {
	Service                             string // the sender's service.name
	TraceID, SpanID, ParentSpanID, Name string
	Kind                                ptrace.SpanKind
	Start                               time.Time
}

// readSpans reads the sidecar's OTLP JSON trace files.
func readSpans(t *testing.T, stateDir string) []otlpSpan {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(stateDir, "out", "traces-*.jsonl"))
	var spans []otlpSpan
	decode := func(line []byte) (ptrace.Traces, error) { return (&ptrace.JSONUnmarshaler{}).UnmarshalTraces(line) }
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		err = jsonlines.Each(fh, f, 64<<20, decode, func(_ int, td ptrace.Traces) {
			for _, rs := range td.ResourceSpans().All() {
				// The sidecar gives every span its pod's service identity and
				// keeps what the sender said in opsight.original_service_name.
				attrs := rs.Resource().Attributes()
				service, _ := attrs.Get("service.name")
				if orig, ok := attrs.Get(conventions.AttrOriginalServiceName); ok {
					service = orig
				}
				for _, ss := range rs.ScopeSpans().All() {
					for _, sp := range ss.Spans().All() {
						spans = append(spans, otlpSpan{Service: service.Str(), TraceID: sp.TraceID().String(), SpanID: sp.SpanID().String(),
							ParentSpanID: sp.ParentSpanID().String(), Name: sp.Name(), Kind: sp.Kind(), Start: sp.StartTimestamp().AsTime()})
					}
				}
			}
		})
		fh.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	return spans
}

// checkTraceJoin: every reconcile's log lines carry its span's trace_id,
// and client-go's calls are child spans of the reconcile.
func checkTraceJoin(t *testing.T, op *operatorPod, loki *testservers.StrictLoki) {
	spans := readSpans(t, op.stateDir)
	reconciles := map[string]otlpSpan{} // by span id
	traces := map[string]bool{}
	for _, s := range spans {
		if s.Name == "Reconcile" {
			reconciles[s.SpanID] = s
			traces[s.TraceID] = true
		}
	}
	children := map[string]int{}
	for _, s := range spans {
		if p, ok := reconciles[s.ParentSpanID]; ok && s.TraceID == p.TraceID && s.Kind == ptrace.SpanKindClient {
			children[s.Name]++
		}
	}
	services := map[string]int{}
	for _, s := range spans {
		services[s.Service]++
	}
	t.Logf("%d spans (by sender: %v), %d Reconcile spans; client children by name: %v", len(spans), services, len(reconciles), children)
	if len(children) == 0 {
		t.Error("no client-go call is a child span of a Reconcile span")
	}

	// The operator's lines in Loki, by the trace id they carry.
	var lines, withTrace, unknown int
	var logged map[string]bool
	deadline := time.Now().Add(60 * time.Second)
	for {
		lines, withTrace, unknown = 0, 0, 0
		logged = map[string]bool{}
		for _, e := range loki.Entries() {
			if !strings.Contains(e.Line, "reconcil") || !strings.Contains(e.Line, `"controller"`) {
				continue
			}
			lines++
			id := e.StructuredMetadata[conventions.LogTraceID]
			if id == "" {
				continue
			}
			withTrace++
			if traces[id] {
				logged[id] = true
			} else {
				unknown++
			}
		}
		if len(logged) >= len(traces) || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	t.Logf("controller-runtime reconcile lines in Loki: %d, with trace_id %d, of an unknown trace %d; traces with lines %d of %d",
		lines, withTrace, unknown, len(logged), len(traces))
	if lines == 0 {
		t.Fatal("no reconcile line of the operator reached Loki")
	}
	if withTrace != lines || unknown > 0 {
		t.Errorf("%d of %d reconcile lines without a trace_id, %d with one no Reconcile span has", lines-withTrace, lines, unknown)
	}
	if len(logged) < len(traces) {
		var last time.Time
		for _, s := range reconciles {
			if s.Start.After(last) {
				last = s.Start
			}
		}
		var missing []string
		for _, s := range reconciles {
			if !logged[s.TraceID] {
				missing = append(missing, fmt.Sprintf("%s (%v before the last)", s.TraceID, last.Sub(s.Start)))
			}
		}
		t.Errorf("%d of %d reconciles have no log line carrying their trace_id: %s; Loki discarded %v",
			len(missing), len(traces), strings.Join(missing, ", "), loki.Discarded())
	}
}

// releasegate runs the gate and returns its output and exit code.
func releasegate(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(bins.releasegate, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		}
		t.Fatal(err)
	}
	return string(out), 0
}
