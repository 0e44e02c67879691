package helm

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/opsight/opsight/operator-sidecar/webhook"
)

// TestRenderedWebhookServes runs the webhook with exactly what the chart
// renders (the generated Secret, the injection ConfigMap, the Deployment's
// flags) and calls it the way the API server would: over TLS, trusting only
// the MutatingWebhookConfiguration's caBundle, for the Service's DNS name.
func TestRenderedWebhookServes(t *testing.T) {
	objs := render(t, "--kube-version", "1.31.0")
	mwc := ofKind[*admissionregistrationv1.MutatingWebhookConfiguration](objs)[0]
	dir := t.TempDir()
	for _, s := range ofKind[*corev1.Secret](objs) {
		for k, v := range s.Data {
			must(t, os.WriteFile(filepath.Join(dir, k), v, 0o600))
		}
	}
	for _, cm := range ofKind[*corev1.ConfigMap](objs) {
		if v, ok := cm.Data["inject.yaml"]; ok {
			must(t, os.WriteFile(filepath.Join(dir, "inject.yaml"), []byte(v), 0o600))
		}
	}
	var args []string
	for _, d := range ofKind[*appsv1.Deployment](objs) {
		if d.Spec.Template.Labels[webhook.LabelRole] == webhook.RoleWebhook {
			args = d.Spec.Template.Spec.Containers[0].Args
		}
	}
	if len(args) == 0 || args[0] != "webhook" {
		t.Fatalf("webhook args: %v", args)
	}
	// The Deployment's flags, with the mount paths and port moved to the test's.
	var flags []string
	for _, a := range args[1:] {
		switch {
		case strings.HasPrefix(a, "--listen="):
			flags = append(flags, "--listen=127.0.0.1:0")
		case strings.HasPrefix(a, "--tls-cert="):
			flags = append(flags, "--tls-cert="+filepath.Join(dir, "tls.crt"))
		case strings.HasPrefix(a, "--tls-key="):
			flags = append(flags, "--tls-key="+filepath.Join(dir, "tls.key"))
		case strings.HasPrefix(a, "--config="):
			flags = append(flags, "--config="+filepath.Join(dir, "inject.yaml"))
		case a == "--namespace=$(POD_NAMESPACE)":
			flags = append(flags, "--namespace="+namespace)
		default:
			flags = append(flags, a)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- webhook.Run(ctx, flags, pw, io.Discard); pw.Close() }()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("webhook did not start with the chart's flags %v: %v", flags, err)
	}
	go io.Copy(io.Discard, pr)
	addr := strings.Fields(strings.TrimPrefix(line, "opsight webhook serving on "))[0]

	wh := mwc.Webhooks[0]
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(wh.ClientConfig.CABundle)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: roots, ServerName: wh.ClientConfig.Service.Name + "." + wh.ClientConfig.Service.Namespace + ".svc"}}}
	review, err := os.ReadFile(filepath.Join(repoRoot(t), "operator-sidecar", "webhook", "testdata", "review_operator.json"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Post("https://"+addr+*wh.ClientConfig.Service.Path, "application/json", bytes.NewReader(review))
	if err != nil {
		t.Fatalf("calling the webhook as the API server would: %v", err)
	}
	var out admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if out.Response == nil || !out.Response.Allowed || len(out.Response.Patch) == 0 {
		t.Fatalf("want an allowed response with a patch, got %+v", out.Response)
	}
	if !strings.Contains(string(out.Response.Patch), `"/spec/initContainers"`) {
		t.Errorf("Kubernetes 1.31 render should inject a native sidecar: %s", out.Response.Patch)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
