package cluster

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/opsight/opsight/alerts"
	"github.com/opsight/opsight/internal/conventions"
	"github.com/opsight/opsight/operator-sidecar/webhook"
)

const podSecurityEnforce = "pod-security.kubernetes.io/enforce"

// runWebhook runs the chart's webhook pod of release rel as this test's
// process (the pod's IP is on this namespace's loopback, so the API server
// reaches it through the Service's EndpointSlice) and waits until it serves.
func runWebhook(t *testing.T, cs *kubernetes.Clientset, rel string) *container {
	t.Helper()
	var pod corev1.Pod
	eventually(t, 60*time.Second, "a running webhook pod", func() (bool, error) {
		for _, p := range podsWithLabel(t, cs, releaseNS, "app.kubernetes.io/instance="+rel+",app.kubernetes.io/component=webhook") {
			if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" {
				pod = p
				return true, nil
			}
		}
		return false, nil
	})
	c := kubeletFor(t, cs, &pod, "webhook", bins.sidecar, t.TempDir())
	c.start()
	eventually(t, 30*time.Second, "the webhook listening on its pod IP", func() (bool, error) {
		conn, err := net.DialTimeout("tcp", net.JoinHostPort(pod.Status.PodIP, "8443"), time.Second)
		if err == nil {
			conn.Close()
		}
		return err == nil, err
	})
	return c
}

// operatorPodSpec is a kubebuilder operator's pod: container "manager",
// compliant with Pod Security "restricted" so every level admits it, and
// kubebuilder's 10 s termination grace.
func operatorPodSpec(annotations map[string]string, labels map[string]string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: annotations},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: ptrTo(int64(10)),
			SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptrTo(true), RunAsUser: ptrTo(int64(65532)),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
			Containers: []corev1.Container{{
				Name: "manager", Image: "registry.example.com/acme/widget-operator:v1.5.0", Args: []string{"--leader-elect"},
				SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ptrTo(false),
					Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}},
			}},
		},
	}
}

// admittedPods waits for n pods with the selector in ns and returns them as
// the API server stored them (after every admission plugin).
func admittedPods(t *testing.T, cs *kubernetes.Clientset, ns, sel string, n int) []corev1.Pod {
	t.Helper()
	var pods []corev1.Pod
	eventually(t, 60*time.Second, fmt.Sprintf("%d pods %s in %s", n, sel, ns), func() (bool, error) {
		pods = podsWithLabel(t, cs, ns, sel)
		return len(pods) >= n, nil
	})
	return pods
}

// sidecarOf returns the injected container, whether it is native (an init
// container with restartPolicy Always).
func sidecarOf(pod *corev1.Pod) (c *corev1.Container, native bool) {
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == conventions.SidecarContainer {
			c = &pod.Spec.InitContainers[i]
			return c, c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
		}
	}
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == conventions.SidecarContainer {
			return &pod.Spec.Containers[i], false
		}
	}
	return nil, false
}

// tokenMount names the volume mounted at the service-account path, if any.
func tokenMount(c *corev1.Container) string {
	for _, m := range c.VolumeMounts {
		if m.MountPath == webhook.ServiceAccountMountPath {
			return m.Name
		}
	}
	return ""
}

func envOf(c *corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// checkFileModeSidecar: the pod got the file-mode sidecar, and the API
// server's ServiceAccount plugin, re-run after the webhook's patch, gave its
// token to the operator but not to the sidecar.
func checkFileModeSidecar(t *testing.T, pod *corev1.Pod, wantNative bool, service string) {
	t.Helper()
	side, native := sidecarOf(pod)
	if side == nil {
		t.Errorf("pod %s/%s: no sidecar injected", pod.Namespace, pod.Name)
		return
	}
	if native != wantNative {
		t.Errorf("pod %s: native sidecar %v, want %v", pod.Name, native, wantNative)
	}
	if m := tokenMount(side); strings.HasPrefix(m, "kube-api-access-") {
		t.Errorf("pod %s: the file-mode sidecar has the pod's service-account token (%s) mounted: it needs none", pod.Name, m)
	} else if m == "" {
		t.Errorf("pod %s: the sidecar has no mount at %s: the ServiceAccount plugin would add the token", pod.Name, webhook.ServiceAccountMountPath)
	}
	for _, c := range pod.Spec.Containers {
		if c.Name == "manager" && !strings.HasPrefix(tokenMount(&c), "kube-api-access-") {
			t.Errorf("pod %s: the operator lost its own token mount (%q)", pod.Name, tokenMount(&c))
		}
	}
	if got := envOf(side, conventions.EnvLogSource); got != "" && got != "file" {
		t.Errorf("pod %s: log source %q, want file", pod.Name, got)
	}
	if got := envOf(side, conventions.EnvServiceName); got != service {
		t.Errorf("pod %s: service name %q, want the workload's name %q", pod.Name, got, service)
	}
}

// TestInjection creates operators the ways users do (Deployment, Job,
// StatefulSet, bare Pod) in namespaces at each Pod Security level, with the
// chart's defaults and its documented variants, through the real admission
// chain, and checks the pods the API server stored.
func TestInjection(t *testing.T) {
	cs, warns := client(t)
	ctx := context.Background()
	const rel = "inj"
	start := time.Now()
	mustHelm(t, "install", rel, chartDir(t), "-n", releaseNS, "--create-namespace", "--wait", "--timeout", "3m")
	t.Cleanup(func() { _, _ = helm(t, "uninstall", rel, "-n", releaseNS, "--wait") })
	t.Logf("helm install --wait: %s", time.Since(start).Round(100*time.Millisecond))
	wh := runWebhook(t, cs, rel)

	levels := map[string]string{"op-privileged": "privileged", "op-baseline": "baseline", "op-restricted": "restricted"}
	for ns, level := range levels {
		namespace(t, cs, ns, map[string]string{podSecurityEnforce: level})
	}
	inject := map[string]string{webhook.AnnotationInject: "true"}

	t.Run("workloads", func(t *testing.T) {
		ns := "op-privileged"
		dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "widget-operator", Namespace: ns},
			Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "widget-operator"}},
				Template: operatorPodSpec(inject, map[string]string{"app": "widget-operator"})}}
		if _, err := cs.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "widget-migrate", Namespace: ns},
			Spec: batchv1.JobSpec{Template: operatorPodSpec(inject, map[string]string{"app": "widget-migrate"})}}
		job.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyNever
		if _, err := cs.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		sts := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "gadget-operator", Namespace: ns},
			Spec: appsv1.StatefulSetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "gadget-operator"}},
				Template: operatorPodSpec(inject, map[string]string{"app": "gadget-operator"})}}
		if _, err := cs.AppsV1().StatefulSets(ns).Create(ctx, sts, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		for _, w := range []string{"widget-operator", "widget-migrate", "gadget-operator"} {
			for _, p := range admittedPods(t, cs, ns, "app="+w, 1) {
				checkFileModeSidecar(t, &p, true, w)
			}
		}
	})

	t.Run("restricted-namespaces-skipped", func(t *testing.T) {
		// Default webhook.restrictedNamespaces=skip: a hostPath sidecar
		// would be refused there; the pod is created without one.
		for _, ns := range []string{"op-baseline", "op-restricted"} {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "op", Namespace: ns}, Spec: operatorPodSpec(nil, nil).Spec}
			pod.Annotations = inject
			got, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("%s: an annotated pod must still be created: %v", ns, err)
			}
			if side, _ := sidecarOf(got); side != nil {
				t.Errorf("%s: sidecar injected into a %s namespace with restrictedNamespaces=skip", ns, levels[ns])
			}
		}
	})

	t.Run("not-a-boolean", func(t *testing.T) {
		// Issue 13, defect 3: the matchCondition must let "yes" through so
		// the webhook warns; "false" and "0" never reach it.
		ns := "op-privileged"
		warns.take()
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "yes-pod", Namespace: ns,
			Annotations: map[string]string{webhook.AnnotationInject: "yes"}}, Spec: operatorPodSpec(nil, nil).Spec}
		got, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if side, _ := sidecarOf(got); side != nil {
			t.Errorf(`opsight.dev/inject: "yes" injected a sidecar`)
		}
		w := strings.Join(warns.take(), "\n")
		if !strings.Contains(w, "is not true/false") {
			t.Errorf(`creating a pod with opsight.dev/inject: "yes" gave no warning from the webhook (warnings: %q)`, w)
		}
		namespace(t, cs, "op-off", map[string]string{podSecurityEnforce: "privileged"})
		for i, v := range []string{"false", "0", "False"} {
			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("off-%d", i), Namespace: "op-off",
				Annotations: map[string]string{webhook.AnnotationInject: v}}, Spec: operatorPodSpec(nil, nil).Spec}
			if _, err := cs.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		if n := admissionLines(wh, "op-off"); n != 0 {
			t.Errorf("pods annotated false reached the webhook %d times: the matchCondition must keep them away", n)
		}
		if n := admissionLines(wh, "op-privileged"); n == 0 {
			t.Errorf("the webhook logged no admission for op-privileged: the log check above proves nothing\n%s", wh.logs())
		}
	})

	t.Run("api-mode-in-restricted", func(t *testing.T) {
		mustHelm(t, "upgrade", rel, chartDir(t), "-n", releaseNS, "--wait", "--timeout", "3m",
			"--set", "webhook.restrictedNamespaces=api",
			"--set", "sidecar.apiLogAccess[0].namespace=op-restricted",
			"--set", "sidecar.apiLogAccess[0].serviceAccounts[0]=default")
		wh.kill()
		wh = runWebhook(t, cs, rel)
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "op-api", Namespace: "op-restricted", Annotations: inject},
			Spec: operatorPodSpec(nil, nil).Spec}
		got, err := cs.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("Pod Security restricted refused the pod with the api-mode sidecar: %v", err)
		}
		side, _ := sidecarOf(got)
		if side == nil {
			t.Fatal("no sidecar in the restricted namespace with restrictedNamespaces=api")
		}
		if got := envOf(side, conventions.EnvLogSource); got != "api" {
			t.Errorf("log source %q, want api", got)
		}
		if m := tokenMount(side); m == "" || strings.HasPrefix(m, "kube-api-access-") {
			t.Errorf("api-mode sidecar token mount %q, want its own token volume", m)
		}
	})

	t.Run("regular-sidecar", func(t *testing.T) {
		mustHelm(t, "upgrade", rel, chartDir(t), "-n", releaseNS, "--wait", "--timeout", "3m", "--reuse-values",
			"--set", "sidecar.nativeSidecar=false")
		wh.kill()
		wh = runWebhook(t, cs, rel)
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "op-regular", Namespace: "op-privileged", Annotations: inject,
			Labels: map[string]string{"app.kubernetes.io/name": "widget-operator"}}, Spec: operatorPodSpec(nil, nil).Spec}
		got, err := cs.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		checkFileModeSidecar(t, got, false, "widget-operator")
	})

	t.Run("webhook-down", func(t *testing.T) {
		// failurePolicy Ignore: pods are still created, without the
		// sidecar; the miss shows in the API server's fail-open counter,
		// which alert OpsightSidecarInjectionFailOpen watches.
		before := failOpenCount(t)
		wh.kill()
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "op-down", Namespace: "op-privileged", Annotations: inject},
			Spec: operatorPodSpec(nil, nil).Spec}
		start := time.Now()
		got, err := cs.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("with the webhook down a pod must still be created (failurePolicy Ignore): %v", err)
		}
		t.Logf("pod created %s after the webhook went down", time.Since(start).Round(time.Millisecond))
		if side, _ := sidecarOf(got); side != nil {
			t.Error("sidecar injected with the webhook down?")
		}
		if after := failOpenCount(t); after <= before {
			t.Errorf("apiserver_admission_webhook_fail_open_count for opsight's webhook: %v before, %v after a missed injection", before, after)
		}
	})
}

// admissionLines counts the webhook's "admission" log lines for namespace ns.
func admissionLines(c *container, ns string) int {
	n := 0
	sc := bufio.NewScanner(strings.NewReader(c.logs()))
	for sc.Scan() {
		if strings.Contains(sc.Text(), `"msg":"admission"`) && strings.Contains(sc.Text(), `"namespace":"`+ns+`"`) {
			n++
		}
	}
	return n
}

// failOpenCount is the API server's count of admission calls to opsight's
// webhooks that failed and were ignored.
func failOpenCount(t *testing.T) float64 {
	t.Helper()
	body, err := plane.Do("GET", "/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, alerts.APIServerWebhookFailOpen+"{") && strings.Contains(line, `name="inject.opsight.dev"`) {
			var v float64
			if _, err := fmt.Sscan(line[strings.LastIndex(line, " ")+1:], &v); err == nil {
				sum += v
			}
		}
	}
	return sum
}
