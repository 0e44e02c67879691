package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/opsight/opsight/internal/conventions"
	"github.com/opsight/opsight/internal/simoperator"
	"github.com/opsight/opsight/internal/testservers"
	"github.com/opsight/opsight/operator-sidecar/webhook"
)

// TestAPILogSource: the chart with logSource api, an operator pod in a
// namespace enforcing Pod Security "restricted", its sidecar as injected
// streaming pods/log through the real API server, which proxies to the
// node (kwok, serving a CRI file with the kubelet's own log reader). The
// sidecar's token, from the chart's RBAC, reads its own pod's log and is
// refused another pod's. kill -9 of the sidecar and kubelet-style rotation
// of the CRI file while it follows: every line arrives exactly once.
func TestAPILogSource(t *testing.T) {
	cs, _ := client(t)
	ctx := context.Background()
	const rel, ns = "apilogs", "api-op"
	namespace(t, cs, ns, map[string]string{podSecurityEnforce: "restricted"})
	loki := testservers.StartStrictLoki(t)
	mustHelm(t, "install", rel, chartDir(t), "-n", releaseNS, "--create-namespace", "--wait", "--timeout", "3m",
		"--set", "sidecar.logSource=api",
		"--set", "sidecar.lokiURL="+loki.PushURL,
		"--set", "sidecar.apiLogAccess[0].namespace="+ns,
		"--set", "sidecar.apiLogAccess[0].serviceAccounts[0]=default")
	t.Cleanup(func() { _, _ = helm(t, "uninstall", rel, "-n", releaseNS, "--wait") })
	runWebhook(t, cs, rel)

	pod, err := cs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "widget-operator-0", Namespace: ns,
		Annotations: map[string]string{webhook.AnnotationInject: "true"}}, Spec: operatorPodSpec(nil, nil).Spec}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("Pod Security restricted refused the injected pod: %v", err)
	}
	side, _ := sidecarOf(pod)
	if side == nil || envOf(side, conventions.EnvLogSource) != "api" {
		t.Fatalf("no api-mode sidecar injected: %+v", side)
	}
	eventually(t, 60*time.Second, "pod running on the kwok node", func() (bool, error) {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
		if err == nil && p.Status.Phase == corev1.PodRunning {
			pod = p
		}
		return err == nil && p.Status.Phase == corev1.PodRunning, err
	})

	// The node's CRI file of container manager, served by kwok as its log.
	logDir := filepath.Join(t.TempDir(), "manager")
	w, err := simoperator.NewCRIWriter(logDir, 256<<10, 5)
	if err != nil {
		t.Fatal(err)
	}
	logsObj := fmt.Sprintf(`{"apiVersion":"kwok.x-k8s.io/v1alpha1","kind":"Logs","metadata":{"name":%q,"namespace":%q},
		"spec":{"logs":[{"containers":["manager"],"logsFile":%q,"follow":true}]}}`, pod.Name, ns, filepath.Join(logDir, "0.log"))
	if _, err := plane.Do("POST", "/apis/kwok.x-k8s.io/v1alpha1/namespaces/"+ns+"/logs", []byte(logsObj)); err != nil {
		t.Fatal(err)
	}

	sc := kubeletFor(t, cs, pod, conventions.SidecarContainer, bins.sidecar, t.TempDir())
	token := filepath.Join(sc.Mounts[webhook.ServiceAccountMountPath], "token")
	t.Run("rbac", func(t *testing.T) {
		// The token the kubelet gives the sidecar, with the chart's Role:
		// get pods/log in the granted namespace, nothing else. RBAC cannot
		// name a generated pod, so within that namespace the token reads
		// any pod's log (docs/helm.md says so).
		elsewhere := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "elsewhere", Namespace: "api-other"}, Spec: operatorPodSpec(nil, nil).Spec}
		namespace(t, cs, elsewhere.Namespace, nil)
		if _, err := cs.CoreV1().Pods(elsewhere.Namespace).Create(ctx, elsewhere, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			what, path string
			want       int
		}{
			{"its own pod's log", "/api/v1/namespaces/" + ns + "/pods/" + pod.Name + "/log?container=manager&limitBytes=1", http.StatusOK},
			{"a pod's log in another namespace", "/api/v1/namespaces/api-other/pods/elsewhere/log?container=manager&limitBytes=1", http.StatusForbidden},
			{"the pods of its namespace", "/api/v1/namespaces/" + ns + "/pods", http.StatusForbidden},
			{"its own pod", "/api/v1/namespaces/" + ns + "/pods/" + pod.Name, http.StatusForbidden},
			{"the secrets of its namespace", "/api/v1/namespaces/" + ns + "/secrets", http.StatusForbidden},
		} {
			if code := tokenGet(t, token, c.path); code != c.want {
				t.Errorf("the sidecar's token reading %s: HTTP %d, want %d", c.what, code, c.want)
			}
		}
	})

	sc.start()
	const n, rate = 6000, 600 // 10 s of lines, a rotation every ~256 KiB
	line := func(i int) string {
		return fmt.Sprintf(`{"level":"info","ts":"%s","msg":"reconciled","seq":%d,"pad":"%s"}`,
			time.Now().UTC().Format(time.RFC3339Nano), i, strings.Repeat("x", 120))
	}
	tick := time.NewTicker(time.Second / rate)
	for i := 0; i < n; i++ {
		<-tick.C
		if err := w.WriteLine(time.Now(), "stdout", line(i)); err != nil {
			t.Fatal(err)
		}
		switch i {
		case n / 3, 2 * n / 3:
			sc.kill() // kill -9 while following
			time.Sleep(500 * time.Millisecond)
			sc.start()
		}
	}
	tick.Stop()
	seen := map[int]int{}
	eventually(t, 120*time.Second, fmt.Sprintf("all %d lines in Loki", n), func() (bool, error) {
		seen = seqs(loki.Entries())
		return len(seen) >= n, nil
	})
	dups := 0
	for _, c := range seen {
		dups += c - 1
	}
	t.Logf("%d lines through pods/log, %d rotations, 2 kill -9: %d distinct in Loki, %d duplicates", n, w.Rotations(), len(seen), dups)
	if w.Rotations() < 2 {
		t.Errorf("only %d rotations: the test did not rotate while following", w.Rotations())
	}
	if dups > 0 {
		t.Errorf("%d duplicate lines", dups)
	}
	if d := loki.Discarded(); len(d) > 0 {
		t.Errorf("Loki discarded %v", d)
	}
	if t.Failed() {
		t.Logf("sidecar log:\n%s", sc.logs())
	}
}

// seqs counts each "seq" value of the entries' JSON lines.
func seqs(entries []testservers.LokiEntry) map[int]int {
	seen := map[int]int{}
	for _, e := range entries {
		var v struct {
			Seq *int `json:"seq"`
		}
		if json.Unmarshal([]byte(e.Line), &v) == nil && v.Seq != nil {
			seen[*v.Seq]++
		}
	}
	return seen
}

// tokenGet GETs an API path with a bearer token, as the sidecar does.
func tokenGet(t *testing.T, tokenFile, path string) int {
	t.Helper()
	tok, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(plane.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, _ := http.NewRequest("GET", plane.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
