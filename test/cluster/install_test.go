package cluster

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/opsight/opsight/internal/conventions"
	"github.com/opsight/opsight/internal/testservers"
)

var installStepRE = regexp.MustCompile("(?s)<!-- install-step -->\n```sh\n(.*?)```")

// TestInstallDoc runs docs/install.md's command blocks verbatim, with the
// real helm and kubectl, on a cluster that runs an operator Deployment, as
// a user's does.
func TestInstallDoc(t *testing.T) {
	root, err := testservers.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(root, "docs/install.md"))
	if err != nil {
		t.Fatal(err)
	}
	var steps []string
	for _, m := range installStepRE.FindAllSubmatch(doc, -1) {
		steps = append(steps, string(m[1]))
	}
	if len(steps) != 4 {
		t.Fatalf("docs/install.md has %d install-step blocks, this test runs 4 (install, inject, check, remove)", len(steps))
	}
	cs, _ := client(t)
	namespace(t, cs, operatorNS, nil)
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: operatorName, Namespace: operatorNS},
		Spec: appsv1.DeploymentSpec{Replicas: ptrTo(int32(2)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": operatorName}},
			Template: operatorPodSpec(nil, map[string]string{"app": operatorName})}}
	if _, err := cs.AppsV1().Deployments(operatorNS).Create(t.Context(), dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// The user's PATH: helm and kubectl of the pinned releases.
	pathDir := t.TempDir()
	kubectl, err := testservers.Kubectl.Path()
	if err != nil {
		t.Fatal(err)
	}
	for name, bin := range map[string]string{"helm": bins.helm, "kubectl": kubectl} {
		if err := os.Symlink(bin, filepath.Join(pathDir, name)); err != nil {
			t.Fatal(err)
		}
	}
	home := t.TempDir()
	run := func(step string) string {
		t.Helper()
		cmd := exec.Command("sh", "-ec", step)
		cmd.Dir = root
		cmd.Env = []string{"PATH=" + pathDir + ":/usr/bin:/bin", "HOME=" + home, "KUBECONFIG=" + plane.Kubeconfig}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("docs/install.md step failed: %v\n%s\n%s", err, step, out.String())
		}
		return out.String()
	}

	run(steps[0])
	wh := runWebhook(t, cs, "opsight")
	run(steps[1])
	var out string
	eventually(t, 60*time.Second, "every pod of the operator listing the sidecar", func() (bool, error) {
		out = run(steps[2])
		lines := strings.Split(strings.TrimSpace(out), "\n")
		for _, l := range lines {
			if !strings.Contains(l, conventions.SidecarContainer) {
				return false, nil
			}
		}
		return len(lines) == 2, nil
	})
	t.Logf("step 3 prints:\n%s", out)
	wh.kill()
	run(steps[3])
	if left := releaseObjects(t, "opsight"); len(left) > 0 {
		t.Errorf("after the doc's helm uninstall, left behind:\n  %s", strings.Join(left, "\n  "))
	}
}
