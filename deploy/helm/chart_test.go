// Package helm holds the tests of the opsight chart (deploy/helm/opsight):
// helm lint and helm template over the ci/ values files, every rendered
// manifest decoded strictly into the real Kubernetes (and Prometheus
// Operator) types, the generated files checked for drift, and the
// opsight.sidecar template checked against the webhook. Offline: helm is
// built from tools/helm, no cluster is contacted.
package helm

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/opsight/opsight/deploy/helm/chartgen"
	"github.com/opsight/opsight/internal/testservers"
	"github.com/opsight/opsight/operator-sidecar/webhook"
)

const namespace = "opsight-system"

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := testservers.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func chartDir(t *testing.T) string { return filepath.Join(repoRoot(t), chartgen.ChartDir) }

// helmPath is .bin/helm when it is built already (without waiting on the
// build lock other tools may hold for minutes), else builds it.
func helmPath(t *testing.T) string {
	t.Helper()
	testservers.SkipShort(t, "helm")
	p := filepath.Join(repoRoot(t), ".bin", testservers.Helm.Name)
	if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
		return p
	}
	return testservers.Helm.MustPath(t)
}

func helmCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(helmPath(t), args...)
	// Keep helm away from the user's config, cache and any cluster.
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CONFIG_HOME="+home, "HELM_CACHE_HOME="+home, "HELM_DATA_HOME="+home,
		"KUBECONFIG="+filepath.Join(home, "none"))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("helm %s: %v\n%s%s", strings.Join(args, " "), err, errb.String(), out.String())
	}
	return out.String(), nil
}

// object is one rendered manifest, decoded.
type object struct {
	APIVersion, Kind, Name, Namespace string
	Obj                               any
}

// certificate and issuer are the fields of cert-manager's types the chart
// uses (their module is heavy); unknown fields are rejected like the rest.
type certificate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		SecretName string   `json:"secretName"`
		Duration   string   `json:"duration,omitempty"`
		DNSNames   []string `json:"dnsNames"`
		IssuerRef  struct {
			Name  string `json:"name"`
			Kind  string `json:"kind,omitempty"`
			Group string `json:"group,omitempty"`
		} `json:"issuerRef"`
	} `json:"spec"`
}

type issuer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		SelfSigned *struct{} `json:"selfSigned"`
	} `json:"spec"`
}

func newTyped(apiVersion, kind string) (any, error) {
	switch apiVersion + "/" + kind {
	case "v1/ConfigMap":
		return &corev1.ConfigMap{}, nil
	case "v1/Secret":
		return &corev1.Secret{}, nil
	case "v1/Service":
		return &corev1.Service{}, nil
	case "v1/ServiceAccount":
		return &corev1.ServiceAccount{}, nil
	case "apps/v1/Deployment":
		return &appsv1.Deployment{}, nil
	case "policy/v1/PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, nil
	case "networking.k8s.io/v1/NetworkPolicy":
		return &networkingv1.NetworkPolicy{}, nil
	case "autoscaling/v2/HorizontalPodAutoscaler":
		return &autoscalingv2.HorizontalPodAutoscaler{}, nil
	case "rbac.authorization.k8s.io/v1/Role":
		return &rbacv1.Role{}, nil
	case "rbac.authorization.k8s.io/v1/RoleBinding":
		return &rbacv1.RoleBinding{}, nil
	case "admissionregistration.k8s.io/v1/MutatingWebhookConfiguration":
		return &admissionregistrationv1.MutatingWebhookConfiguration{}, nil
	case "monitoring.coreos.com/v1/PrometheusRule":
		return &monitoringv1.PrometheusRule{}, nil
	case "monitoring.coreos.com/v1/PodMonitor":
		return &monitoringv1.PodMonitor{}, nil
	case "monitoring.coreos.com/v1/ServiceMonitor":
		return &monitoringv1.ServiceMonitor{}, nil
	case "cert-manager.io/v1/Certificate":
		return &certificate{}, nil
	case "cert-manager.io/v1/Issuer":
		return &issuer{}, nil
	}
	return nil, fmt.Errorf("no Go type known for %s %s: add it to newTyped", apiVersion, kind)
}

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

// decodeAll splits helm output and decodes every manifest strictly into its type.
func decodeAll(t *testing.T, out string) []object {
	t.Helper()
	var objs []object
	for _, doc := range docSep.Split(out, -1) {
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			t.Fatalf("manifest is not YAML: %v\n%s", err, doc)
		}
		if head.Kind == "" {
			if strings.TrimSpace(stripComments(doc)) != "" {
				t.Fatalf("manifest without kind:\n%s", doc)
			}
			continue
		}
		typed, err := newTyped(head.APIVersion, head.Kind)
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.UnmarshalStrict([]byte(doc), typed); err != nil {
			t.Fatalf("%s %s does not decode strictly into the real type: %v\n%s", head.Kind, head.Metadata.Name, err, doc)
		}
		objs = append(objs, object{head.APIVersion, head.Kind, head.Metadata.Name, head.Metadata.Namespace, typed})
	}
	return objs
}

func stripComments(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func render(t *testing.T, args ...string) []object {
	t.Helper()
	out, err := helmCmd(t, append([]string{"template", "rel", chartDir(t), "--namespace", namespace}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	return decodeAll(t, out)
}

func ofKind[T any](objs []object) []T {
	var r []T
	for _, o := range objs {
		if v, ok := o.Obj.(T); ok {
			r = append(r, v)
		}
	}
	return r
}

func kinds(objs []object) map[string]int {
	m := map[string]int{}
	for _, o := range objs {
		m[o.Kind]++
	}
	return m
}

func TestLint(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(chartDir(t), "ci", "*.yaml"))
	if err != nil || len(files) < 4 {
		t.Fatalf("ci values files: %v %v", files, err)
	}
	for _, f := range files {
		if _, err := helmCmd(t, "lint", "--strict", chartDir(t), "-f", f); err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
		}
	}
}

func ciValues(t *testing.T, name string) string { return filepath.Join(chartDir(t), "ci", name) }

func TestTemplate(t *testing.T) {
	const promAPI, certAPI = "monitoring.coreos.com/v1", "cert-manager.io/v1"
	for _, tc := range []struct {
		name       string
		args       []string
		want       map[string]int // kinds that must appear this many times (0: absent)
		native     bool
		certMgr    bool
		promRules  bool // PrometheusRule objects rather than rule ConfigMaps
		matchConds bool
	}{
		{"minimal-1.31", []string{"-f", "ci/minimal.yaml", "--kube-version", "1.31.0"},
			map[string]int{"MutatingWebhookConfiguration": 1, "Secret": 1, "Certificate": 0, "PrometheusRule": 0, "PodMonitor": 0, "HorizontalPodAutoscaler": 0, "Role": 0},
			true, false, false, true},
		{"minimal-1.28", []string{"-f", "ci/minimal.yaml", "--kube-version", "1.28.9"},
			map[string]int{"MutatingWebhookConfiguration": 1}, false, false, false, false},
		{"minimal-prom-operator", []string{"-f", "ci/minimal.yaml", "--kube-version", "1.29.0", "--api-versions", promAPI},
			map[string]int{"PodMonitor": 1, "ServiceMonitor": 0}, true, false, true, false},
		{"webhook-off", []string{"-f", "ci/webhook-off.yaml", "--kube-version", "1.31.0"},
			map[string]int{"MutatingWebhookConfiguration": 0, "Deployment": 0, "Secret": 0, "Service": 0}, true, false, false, true},
		{"gateway-on", []string{"-f", "ci/gateway-on.yaml", "--kube-version", "1.32.1", "--api-versions", promAPI, "--api-versions", certAPI},
			map[string]int{"Deployment": 2, "HorizontalPodAutoscaler": 1, "Certificate": 1, "Issuer": 1, "Secret": 0, "Role": 2, "RoleBinding": 2,
				"NetworkPolicy": 2, "PodDisruptionBudget": 1, "ServiceMonitor": 1, "PodMonitor": 1},
			true, true, true, true},
		// cert-manager's CRDs alone (the cert-manager.io/v1 API) do not switch cert-manager on.
		{"minimal-cert-manager-crds", []string{"-f", "ci/minimal.yaml", "--kube-version", "1.31.0", "--api-versions", certAPI},
			map[string]int{"Secret": 1, "Certificate": 0, "Issuer": 0}, true, false, false, true},
		{"no-prom-operator", []string{"-f", "ci/no-prom-operator.yaml", "--kube-version", "1.31.0", "--api-versions", promAPI, "--api-versions", certAPI},
			map[string]int{"PrometheusRule": 0, "PodMonitor": 0, "Certificate": 0, "Secret": 1, "Role": 1, "RoleBinding": 1}, false, false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{}, tc.args...)
			for i := range args {
				if strings.HasPrefix(args[i], "ci/") {
					args[i] = ciValues(t, strings.TrimPrefix(args[i], "ci/"))
				}
			}
			objs := render(t, args...)
			got := kinds(objs)
			for k, n := range tc.want {
				if got[k] != n {
					t.Errorf("%d %s, want %d (all: %v)", got[k], k, n, got)
				}
			}
			checkNamespaced(t, objs)
			checkDeployments(t, objs)
			checkServices(t, objs)
			checkLogAccessRBAC(t, objs)
			checkRules(t, objs, tc.promRules)
			checkDashboardsShipped(t, objs)
			if got["MutatingWebhookConfiguration"] > 0 {
				checkWebhook(t, objs, tc.native, tc.certMgr, tc.matchConds)
			}
		})
	}
}

func TestTemplateRejectsBadValues(t *testing.T) {
	for _, tc := range []struct {
		set  []string
		want string
	}{
		{[]string{"sidecar.nativeSidecar=maybe"}, "nativeSidecar"},
		{[]string{"sidecar.logSource=journald"}, "logSource"},
		{[]string{"gateway.enabled=true"}, "gateway.tracesEndpoint is required"},
		{[]string{"sidecar.resources.limits.memory=1.5Gi", "webhook.enabled=false"}, ""}, // the webhook computes it; fine without the template
		{[]string{"gateway.enabled=true", "gateway.tracesEndpoint=http://tempo:4318", "gateway.resources.limits.memory=1.5Gi"}, `resources.limits.memory "1.5Gi"`},
		{[]string{"webhook.restrictedNamespaces=allow"}, "restrictedNamespaces"},
		{[]string{"webhook.failurePolicy=Sometimes"}, "failurePolicy"},
		{[]string{"webhook.certManager.enabled=auto"}, "webhook.certManager.enabled: auto is no longer accepted"},
		{[]string{"webhook.certManager.enabled=maybe"}, "certManager"},
		{[]string{"sidecar.unknownKey=1"}, "unknownKey"},
		{[]string{"sidecar.logSource=api", "sidecar.apiLogAccess[0].serviceAccounts[0]=sa"}, "namespace"},
	} {
		args := []string{"template", "rel", chartDir(t), "--namespace", namespace}
		for _, s := range tc.set {
			args = append(args, "--set", s)
		}
		_, err := helmCmd(t, args...)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%v: %v", tc.set, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one mentioning %q", tc.set, err, tc.want)
		}
	}
}

func checkNamespaced(t *testing.T, objs []object) {
	t.Helper()
	for _, o := range objs {
		if o.Kind == "MutatingWebhookConfiguration" {
			if o.Namespace != "" {
				t.Errorf("cluster-scoped %s has a namespace", o.Name)
			}
			continue
		}
		if o.Namespace == "" {
			t.Errorf("%s %s has no namespace", o.Kind, o.Name)
		}
	}
}

// checkDeployments: least privilege and bounded resources for every pod the chart runs.
func checkDeployments(t *testing.T, objs []object) {
	t.Helper()
	for _, d := range ofKind[*appsv1.Deployment](objs) {
		ps := d.Spec.Template.Spec
		if ps.SecurityContext == nil || ps.SecurityContext.RunAsNonRoot == nil || !*ps.SecurityContext.RunAsNonRoot ||
			ps.SecurityContext.SeccompProfile == nil || ps.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s: pod must run as non-root with RuntimeDefault seccomp: %+v", d.Name, ps.SecurityContext)
		}
		if ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken {
			t.Errorf("%s: mounts a service account token it does not need", d.Name)
		}
		for _, c := range ps.Containers {
			sc := c.SecurityContext
			if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil ||
				*sc.AllowPrivilegeEscalation || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) ||
				len(sc.Capabilities.Add) > 0 {
				t.Errorf("%s/%s: securityContext not least privilege: %+v", d.Name, c.Name, sc)
			}
			if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() || c.Resources.Requests.Cpu().IsZero() {
				t.Errorf("%s/%s: needs cpu/memory requests and a memory limit: %+v", d.Name, c.Name, c.Resources)
			}
		}
	}
}

// checkServices: every Service selects a Deployment's pods and targets a named port they have.
// checkLogAccessRBAC: logSource api grants get on pods/log and nothing else,
// per namespace, to service accounts of that namespace; nothing cluster-wide.
func checkLogAccessRBAC(t *testing.T, objs []object) {
	t.Helper()
	for _, o := range objs {
		if o.Kind == "ClusterRole" || o.Kind == "ClusterRoleBinding" {
			t.Errorf("%s %s: the chart must grant nothing cluster-wide", o.Kind, o.Name)
		}
	}
	for _, r := range ofKind[*rbacv1.Role](objs) {
		want := []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods/log"}, Verbs: []string{"get"}}}
		if !reflect.DeepEqual(r.Rules, want) {
			t.Errorf("Role %s/%s rules %+v, want only get pods/log", r.Namespace, r.Name, r.Rules)
		}
	}
	for _, b := range ofKind[*rbacv1.RoleBinding](objs) {
		for _, s := range b.Subjects {
			if s.Kind != "ServiceAccount" || s.Namespace != b.Namespace {
				t.Errorf("RoleBinding %s/%s binds %s %s/%s: want service accounts of its own namespace", b.Namespace, b.Name, s.Kind, s.Namespace, s.Name)
			}
		}
	}
}

func checkServices(t *testing.T, objs []object) {
	t.Helper()
	for _, s := range ofKind[*corev1.Service](objs) {
		var match *appsv1.Deployment
		for _, d := range ofKind[*appsv1.Deployment](objs) {
			sel, err := metav1.LabelSelectorAsMap(&metav1.LabelSelector{MatchLabels: s.Spec.Selector})
			if err != nil {
				t.Fatal(err)
			}
			ok := true
			for k, v := range sel {
				ok = ok && d.Spec.Template.Labels[k] == v
			}
			if ok {
				match = d
			}
		}
		if match == nil {
			t.Errorf("Service %s selects no Deployment's pods", s.Name)
			continue
		}
		for _, p := range s.Spec.Ports {
			found := false
			for _, c := range match.Spec.Template.Spec.Containers {
				for _, cp := range c.Ports {
					found = found || cp.Name == p.TargetPort.String()
				}
			}
			if !found {
				t.Errorf("Service %s port %s targets %q, which %s does not expose", s.Name, p.Name, p.TargetPort.String(), match.Name)
			}
		}
	}
}

func checkWebhook(t *testing.T, objs []object, native, certMgr, matchConds bool) {
	t.Helper()
	mwc := ofKind[*admissionregistrationv1.MutatingWebhookConfiguration](objs)[0]
	if len(mwc.Webhooks) == 0 {
		t.Fatal("no webhooks")
	}
	for _, wh := range mwc.Webhooks {
		if wh.FailurePolicy == nil || *wh.FailurePolicy != admissionregistrationv1.Ignore {
			t.Errorf("%s: failurePolicy = %v, want Ignore", wh.Name, wh.FailurePolicy)
		}
		if wh.SideEffects == nil || *wh.SideEffects != admissionregistrationv1.SideEffectClassNone || !slices.Equal(wh.AdmissionReviewVersions, []string{"v1"}) {
			t.Errorf("%s: sideEffects/admissionReviewVersions: %v %v", wh.Name, wh.SideEffects, wh.AdmissionReviewVersions)
		}
		if (len(wh.MatchConditions) > 0) != matchConds {
			t.Errorf("%s: matchConditions present = %t, want %t", wh.Name, len(wh.MatchConditions) > 0, matchConds)
		}
	}
	wh := mwc.Webhooks[0]
	var dep *appsv1.Deployment
	for _, d := range ofKind[*appsv1.Deployment](objs) {
		if d.Spec.Template.Labels[webhook.LabelRole] == webhook.RoleWebhook {
			dep = d
		}
	}
	if dep == nil {
		t.Fatal("no webhook Deployment (pods labelled opsight.dev/role=webhook)")
	}
	// The webhook's own pods are excluded by the objectSelector.
	sel, err := metav1.LabelSelectorAsSelector(wh.ObjectSelector)
	if err != nil {
		t.Fatal(err)
	}
	for _, other := range mwc.Webhooks[1:] {
		if !reflect.DeepEqual(other.ObjectSelector, wh.ObjectSelector) {
			t.Errorf("webhooks differ in objectSelector: %v vs %v", other.ObjectSelector, wh.ObjectSelector)
		}
	}
	if sel.Matches(labelSet(dep.Spec.Template.Labels)) {
		t.Errorf("objectSelector %v matches the webhook's own pods", wh.ObjectSelector)
	}
	if !sel.Matches(labelSet{"app": "widget"}) {
		t.Errorf("objectSelector %v excludes ordinary pods", wh.ObjectSelector)
	}
	if wh.ClientConfig.Service == nil || wh.ClientConfig.Service.Namespace != namespace || *wh.ClientConfig.Service.Path != "/mutate" {
		t.Errorf("clientConfig: %+v", wh.ClientConfig)
	}

	// The injection config the webhook reads is valid, and agrees with the flag.
	var cfgText string
	for _, cm := range ofKind[*corev1.ConfigMap](objs) {
		if v, ok := cm.Data["inject.yaml"]; ok {
			cfgText = v
		}
	}
	cfg, err := webhook.ParseConfig([]byte(cfgText))
	if err != nil {
		t.Fatalf("rendered inject.yaml is rejected by the webhook: %v\n%s", err, cfgText)
	}
	if cfg.NativeSidecar != native {
		t.Errorf("inject.yaml nativeSidecar = %t, want %t", cfg.NativeSidecar, native)
	}
	args := dep.Spec.Template.Spec.Containers[0].Args
	if !slices.Contains(args, fmt.Sprintf("--native-sidecar=%t", native)) || args[0] != "webhook" {
		t.Errorf("webhook args %v, want subcommand webhook and --native-sidecar=%t", args, native)
	}

	if certMgr {
		if mwc.Annotations["cert-manager.io/inject-ca-from"] != namespace+"/"+mwc.Name || len(wh.ClientConfig.CABundle) != 0 {
			t.Errorf("cert-manager mode: annotations %v, caBundle %d bytes", mwc.Annotations, len(wh.ClientConfig.CABundle))
		}
		certs := ofKind[*certificate](objs)
		if len(certs) != 1 || certs[0].Spec.SecretName != dep.Name+"-tls" || certs[0].Spec.IssuerRef.Name == "" {
			t.Errorf("certificate: %+v", certs)
		}
		return
	}
	// Helm-generated: the serving certificate verifies against the caBundle
	// for the Service's DNS name.
	var secret *corev1.Secret
	for _, s := range ofKind[*corev1.Secret](objs) {
		secret = s
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(wh.ClientConfig.CABundle) {
		t.Fatalf("caBundle is not PEM: %q", wh.ClientConfig.CABundle)
	}
	if !bytes.Equal(secret.Data["ca.crt"], wh.ClientConfig.CABundle) {
		t.Errorf("secret ca.crt differs from the caBundle")
	}
	block, _ := pem.Decode(secret.Data["tls.crt"])
	if block == nil {
		t.Fatal("tls.crt is not PEM")
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	dns := wh.ClientConfig.Service.Name + "." + namespace + ".svc"
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: dns, Roots: roots}); err != nil {
		t.Errorf("serving certificate does not verify for %s: %v", dns, err)
	}
}

type labelSet = labels.Set

// checkRules: every Prometheus rule file is shipped, as PrometheusRule or ConfigMap.
func checkRules(t *testing.T, objs []object, asCRD bool) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(chartDir(t), "files", "alerts", "*.yaml"))
	rules := ofKind[*monitoringv1.PrometheusRule](objs)
	var cms []*corev1.ConfigMap
	for _, cm := range ofKind[*corev1.ConfigMap](objs) {
		if cm.Labels["prometheus_rule"] == "1" {
			cms = append(cms, cm)
		}
	}
	if asCRD {
		if len(rules) != len(files) || len(cms) != 0 {
			t.Errorf("%d PrometheusRules and %d rule ConfigMaps for %d rule files", len(rules), len(cms), len(files))
		}
		for _, r := range rules {
			if len(r.Spec.Groups) == 0 {
				t.Errorf("PrometheusRule %s has no groups", r.Name)
			}
		}
	} else if len(cms) != len(files) || len(rules) != 0 {
		t.Errorf("%d rule ConfigMaps and %d PrometheusRules for %d rule files", len(cms), len(rules), len(files))
	}
}

// checkDashboardsShipped: every dashboard the repository generates
// (dashboards/json) is in a ConfigMap for the Grafana sidecar, unchanged.
func checkDashboardsShipped(t *testing.T, objs []object) {
	t.Helper()
	shipped := map[string]string{}
	for _, cm := range ofKind[*corev1.ConfigMap](objs) {
		if cm.Labels["grafana_dashboard"] == "1" {
			for k, v := range cm.Data {
				shipped[k] = v
			}
		}
	}
	files, err := filepath.Glob(filepath.Join(repoRoot(t), "dashboards", "json", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		want, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := shipped[filepath.Base(f)]
		if !ok {
			t.Errorf("dashboard %s is not shipped by the chart (run go run ./deploy/helm/gen)", filepath.Base(f))
			continue
		}
		if !jsonEqual(t, []byte(got), want) {
			t.Errorf("dashboard %s shipped differs from dashboards/json (run go run ./deploy/helm/gen)", filepath.Base(f))
		}
	}
	if len(shipped) != len(files) {
		t.Errorf("chart ships %d dashboards, dashboards/json has %d", len(shipped), len(files))
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Errorf("not JSON: %v", err)
		return false
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Errorf("not JSON: %v", err)
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}

func TestGeneratedFilesUpToDate(t *testing.T) {
	drift, err := chartgen.Check(repoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range drift {
		t.Errorf("%s %s: run go run ./deploy/helm/gen", d.Path, d.Reason)
	}
}

func TestValuesDocNeedsDescriptions(t *testing.T) {
	_, err := chartgen.ValuesDoc([]byte("# -- described\na: 1\nb:\n  c: 2\n"))
	if err == nil || !strings.Contains(err.Error(), "b.c") {
		t.Fatalf("undocumented value not reported: %v", err)
	}
	rows, err := chartgen.ValuesDoc([]byte("# -- resources of x\nres:\n  limits: {memory: 1Mi}\nm:\n  # -- the n\n  n: [1]\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []chartgen.Row{
		{Key: "res", Type: "object", Default: `{"limits":{"memory":"1Mi"}}`, Description: "resources of x"},
		{Key: "m.n", Type: "list", Default: "[1]", Description: "the n"},
	}
	if !slices.Equal(rows, want) {
		t.Errorf("rows = %+v, want %+v", rows, want)
	}
}

func TestDefaultTagIsAppVersion(t *testing.T) {
	chart, err := os.ReadFile(filepath.Join(chartDir(t), "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(chart, &c); err != nil {
		t.Fatal(err)
	}
	helpers, err := os.ReadFile(filepath.Join(chartDir(t), "templates", "_helpers.tpl"))
	if err != nil {
		t.Fatal(err)
	}
	want := `{{- define "opsight.defaultTag" -}}` + c.AppVersion + `{{- end -}}`
	if !strings.Contains(string(helpers), want) {
		t.Errorf("_helpers.tpl opsight.defaultTag must be the appVersion %q (%s)", c.AppVersion, want)
	}
}

// TestWebhookPodSecurityRouting: with logSource file, namespaces enforcing
// Pod Security baseline/restricted (which reject hostPath) never reach the
// hostPath injection; with restrictedNamespaces=api they reach /mutate/api.
func TestWebhookPodSecurityRouting(t *testing.T) {
	const pss = "pod-security.kubernetes.io/enforce"
	nsLabels := map[string]labels.Set{
		"privileged":  {"kubernetes.io/metadata.name": "widget-system", pss: "privileged"},
		"unlabelled":  {"kubernetes.io/metadata.name": "widget-system"},
		"baseline":    {"kubernetes.io/metadata.name": "widget-system", pss: "baseline"},
		"restricted":  {"kubernetes.io/metadata.name": "widget-system", pss: "restricted"},
		"kube-system": {"kubernetes.io/metadata.name": "kube-system"},
	}
	for _, tc := range []struct {
		name string
		set  string
		want map[string]string // namespace kind -> webhook path ("" = none)
	}{
		{"file-skip", "sidecar.logSource=file", map[string]string{"privileged": "/mutate", "unlabelled": "/mutate", "baseline": "", "restricted": "", "kube-system": ""}},
		{"file-api", "sidecar.logSource=file,webhook.restrictedNamespaces=api", map[string]string{"privileged": "/mutate", "unlabelled": "/mutate", "baseline": "/mutate/api", "restricted": "/mutate/api", "kube-system": ""}},
		{"api", "sidecar.logSource=api", map[string]string{"privileged": "/mutate", "unlabelled": "/mutate", "baseline": "/mutate", "restricted": "/mutate", "kube-system": ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mwc := ofKind[*admissionregistrationv1.MutatingWebhookConfiguration](render(t, "--set", tc.set))[0]
			for ns, want := range tc.want {
				var got []string
				for _, wh := range mwc.Webhooks {
					sel, err := metav1.LabelSelectorAsSelector(wh.NamespaceSelector)
					if err != nil {
						t.Fatal(err)
					}
					if sel.Matches(nsLabels[ns]) {
						got = append(got, *wh.ClientConfig.Service.Path)
					}
				}
				if want == "" && len(got) != 0 || want != "" && !slices.Equal(got, []string{want}) {
					t.Errorf("namespace %s reaches %v, want %q", ns, got, want)
				}
			}
		})
	}
}
