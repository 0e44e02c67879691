package cluster

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/opsight/opsight/internal/testservers"
)

// crdSource is a set of third-party CRDs, read from the module that ships
// them (pinned here: these modules are not dependencies, only their YAML is
// used).
type crdSource struct {
	name, mod, version, sub string
}

var crdSources = []crdSource{
	{"prometheus-operator", "github.com/prometheus-operator/prometheus-operator", "v0.94.0", "example/prometheus-operator-crd"},
	{"cert-manager", "github.com/cert-manager/cert-manager", "v1.19.1", "deploy/crds"},
}

func (c crdSource) dir() (string, error) {
	root, err := testservers.RepoRoot()
	if err != nil {
		return "", err
	}
	d, err := testservers.ModuleDir(root, c.mod+"@"+c.version)
	return filepath.Join(d, c.sub), err
}

func (c crdSource) apply(t *testing.T) {
	t.Helper()
	dir, err := c.dir()
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("%s: no CRD files in %s (%v)", c.name, dir, err)
	}
	for _, f := range files {
		if err := plane.ApplyCRDs(f); err != nil {
			t.Fatalf("%s CRDs: %v", c.name, err)
		}
	}
	t.Logf("%s %s: %d CRD files applied", c.name, c.version, len(files))
}

const releaseNS = "opsight-system"

// TestChart installs every ci/*.yaml values file with the real Helm on the
// real API server, upgrades each to the next, rolls back and uninstalls,
// first on a bare cluster, then with the prometheus-operator and
// cert-manager CRDs (and no cert-manager running). Helm waits for every
// Deployment to be available, so each object passed the API server's
// validation, admission (Pod Security included) and CRD schemas. After each
// uninstall nothing labelled with the release is left, in any namespace or
// at cluster scope.
func TestChart(t *testing.T) {
	cs, _ := client(t)
	for _, ns := range []string{"widget-system", "gadget-system"} { // named by ci/*.yaml apiLogAccess
		namespace(t, cs, ns, nil)
	}
	files, err := filepath.Glob(filepath.Join(chartDir(t), "ci", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no ci values files: %v", err)
	}
	sort.Strings(files)
	needsCertManager := func(f string) bool {
		raw, _ := os.ReadFile(f)
		return bytes.Contains(raw, []byte("certManager:\n    enabled: true"))
	}
	lifecycle := func(t *testing.T, files []string) {
		for i, f := range files {
			next := files[(i+1)%len(files)]
			rel := "rel" + fmt.Sprint(i)
			t.Run(filepath.Base(f), func(t *testing.T) {
				start := time.Now()
				mustHelm(t, "install", rel, chartDir(t), "-n", releaseNS, "--create-namespace", "-f", f, "--wait", "--timeout", "3m")
				mustHelm(t, "upgrade", rel, chartDir(t), "-n", releaseNS, "-f", next, "--wait", "--timeout", "3m")
				mustHelm(t, "rollback", rel, "1", "-n", releaseNS, "--wait", "--timeout", "3m")
				out := mustHelm(t, "history", rel, "-n", releaseNS)
				if !strings.Contains(out, "Rollback to 1") {
					t.Errorf("helm history after rollback:\n%s", out)
				}
				mustHelm(t, "uninstall", rel, "-n", releaseNS, "--wait", "--timeout", "3m")
				if left := releaseObjects(t, rel); len(left) > 0 {
					t.Errorf("after helm uninstall %s, left behind:\n  %s", rel, strings.Join(left, "\n  "))
				}
				t.Logf("install %s, upgrade to %s, rollback, uninstall: %s", filepath.Base(f), filepath.Base(next), time.Since(start).Round(100*time.Millisecond))
			})
		}
	}

	var bare []string
	for _, f := range files {
		if !needsCertManager(f) {
			bare = append(bare, f)
		}
	}
	t.Run("bare", func(t *testing.T) { lifecycle(t, bare) })

	// Issue 13, defect 1: the cert-manager CRDs arrive (no cert-manager
	// runs) under a release that serves the Helm-generated certificate.
	t.Run("cert-manager-crds-arrive", func(t *testing.T) {
		mustHelm(t, "install", "crds", chartDir(t), "-n", releaseNS, "--create-namespace", "--wait", "--timeout", "3m")
		defer mustHelm(t, "uninstall", "crds", "-n", releaseNS, "--wait")
		before := webhookTLS(t, cs, "crds")
		for _, c := range crdSources {
			c.apply(t)
		}
		mustHelm(t, "upgrade", "crds", chartDir(t), "-n", releaseNS, "--wait", "--timeout", "3m")
		if after := webhookTLS(t, cs, "crds"); after != before {
			t.Errorf("helm upgrade after the cert-manager CRDs arrived changed the webhook's TLS: before %+v, after %+v", before, after)
		}
		out, err := helm(t, "upgrade", "crds", chartDir(t), "-n", releaseNS, "--set", "webhook.certManager.enabled=true")
		if err == nil || !strings.Contains(out, "serves the Helm-generated certificate") {
			t.Errorf("switching a live release to cert-manager must be refused with what to do; got err=%v\n%s", err, out)
		}
		if after := webhookTLS(t, cs, "crds"); after != before {
			t.Errorf("the refused upgrade changed the webhook's TLS: before %+v, after %+v", before, after)
		}
		if out, err := helm(t, "upgrade", "crds", chartDir(t), "-n", releaseNS, "--set", "webhook.certManager.enabled=auto"); err == nil {
			t.Errorf("certManager.enabled=auto must be refused:\n%s", out)
		}
	})
	t.Run("with-crds", func(t *testing.T) { lifecycle(t, files) })
}

// tlsState is what the API server needs to call the webhook: the serving
// Secret and the caBundle it trusts.
type tlsState struct {
	SecretCA, SecretCert string // sha-free: base64 prefixes are enough to compare
	CABundle             string
}

func webhookTLS(t *testing.T, cs *kubernetes.Clientset, rel string) tlsState {
	t.Helper()
	ctx := context.Background()
	name := rel + "-opsight-webhook"
	s, err := cs.CoreV1().Secrets(releaseNS).Get(ctx, name+"-tls", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the webhook's TLS Secret: %v", err)
	}
	mwc, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st := tlsState{SecretCA: base64.StdEncoding.EncodeToString(s.Data["ca.crt"]), SecretCert: base64.StdEncoding.EncodeToString(s.Data["tls.crt"])}
	for _, w := range mwc.Webhooks {
		if len(w.ClientConfig.CABundle) == 0 {
			t.Errorf("webhook %s has no caBundle", w.Name)
		}
		st.CABundle = base64.StdEncoding.EncodeToString(w.ClientConfig.CABundle)
	}
	if st.CABundle != st.SecretCA || st.SecretCA == "" {
		t.Errorf("the caBundle does not match the Secret's ca.crt: the API server cannot call the webhook")
	}
	return st
}

// releaseObjects lists every object, of every listable resource type in any
// namespace or at cluster scope, labelled app.kubernetes.io/instance=rel,
// and Helm's own release Secrets.
func releaseObjects(t *testing.T, rel string) []string {
	t.Helper()
	cfg := restConfig(t)
	cfg.WarningHandler = rest.NoWarnings{} // deprecated types are listed too
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	lists, err := dc.ServerPreferredResources()
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	ctx := context.Background()
	var left []string
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range l.APIResources {
			if !contains(r.Verbs, "list") || r.Name == "events" || strings.Contains(r.Name, "/") {
				continue
			}
			objs, err := dyn.Resource(gv.WithResource(r.Name)).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=" + rel})
			if err != nil {
				t.Errorf("listing %s: %v", r.Name, err)
				continue
			}
			for _, o := range objs.Items {
				if o.GetDeletionTimestamp() == nil || time.Since(o.GetDeletionTimestamp().Time) > 30*time.Second {
					left = append(left, fmt.Sprintf("%s %s/%s", r.Name, o.GetNamespace(), o.GetName()))
				}
			}
		}
	}
	cs, _ := client(t)
	secrets, err := cs.CoreV1().Secrets("").List(ctx, metav1.ListOptions{LabelSelector: "owner=helm,name=" + rel})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets.Items {
		left = append(left, "secrets "+s.Namespace+"/"+s.Name)
	}
	return left
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// podsWithLabel lists a namespace's pods by label selector.
func podsWithLabel(t *testing.T, cs *kubernetes.Clientset, ns, sel string) []corev1.Pod {
	t.Helper()
	l, err := cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}
