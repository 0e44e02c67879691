package helm

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
)

// injectCondition is the only form of the matchCondition the test knows how
// to evaluate: the annotation is present and its value is not in a list.
var injectCondition = regexp.MustCompile(`^has\(object\.metadata\.annotations\) && ` +
	`'opsight\.dev/inject' in object\.metadata\.annotations && ` +
	`!\(object\.metadata\.annotations\['opsight\.dev/inject'\] in \[([^\]]*)\]\)$`)

// TestMatchConditionLetsNonBooleansThrough: every pod carrying
// opsight.dev/inject reaches the webhook except those whose value
// strconv.ParseBool (the webhook's parser) reads as false, so a value such as
// "yes" gets the webhook's warning instead of being filtered out silently.
// (The real API server compiles and evaluates the expression in test/.)
func TestMatchConditionLetsNonBooleansThrough(t *testing.T) {
	for _, set := range []string{"sidecar.logSource=file,webhook.restrictedNamespaces=api", "sidecar.logSource=api"} {
		mwc := ofKind[*admissionregistrationv1.MutatingWebhookConfiguration](render(t, "--kube-version", "1.31.0", "--set", set))[0]
		for _, wh := range mwc.Webhooks {
			if len(wh.MatchConditions) != 1 {
				t.Fatalf("%s: %d matchConditions, want 1", wh.Name, len(wh.MatchConditions))
			}
			m := injectCondition.FindStringSubmatch(wh.MatchConditions[0].Expression)
			if m == nil {
				t.Fatalf("%s: matchCondition %q is not `annotation present and value not in [...]`", wh.Name, wh.MatchConditions[0].Expression)
			}
			excluded := map[string]bool{}
			for _, item := range strings.Split(m[1], ",") {
				v := strings.TrimSpace(item)
				if len(v) < 2 || v[0] != '\'' || v[len(v)-1] != '\'' {
					t.Fatalf("%s: list item %q is not a quoted string", wh.Name, item)
				}
				excluded[v[1:len(v)-1]] = true
			}
			for _, v := range []string{"1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False",
				"yes", "no", "on", "off", "y", "n", "", " true", "tRUE", "fAlse", "2"} {
				b, err := strconv.ParseBool(v)
				reaches := !excluded[v]
				if want := err != nil || b; reaches != want {
					t.Errorf("%s: opsight.dev/inject=%q reaches the webhook = %t, want %t (ParseBool: %t, %v)", wh.Name, v, reaches, want, b, err)
				}
			}
		}
	}
}

// TestWebhookTLSCheck drives opsight.webhookTLSCheck, which the chart calls
// with the live <webhook>-tls Secret from lookup (offline renders cannot look
// up), from a consumer chart with that Secret given as a value: an upgrade
// may not switch between the Helm-generated certificate and cert-manager
// while the webhook still serves the other's Secret.
func TestWebhookTLSCheck(t *testing.T) {
	consumer := filepath.Join(t.TempDir(), "consumer")
	if err := os.CopyFS(filepath.Join(consumer, "charts", "opsight"), os.DirFS(chartDir(t))); err != nil {
		t.Fatal(err)
	}
	must(t, os.WriteFile(filepath.Join(consumer, "Chart.yaml"), []byte(consumerChart), 0o644))
	must(t, os.MkdirAll(filepath.Join(consumer, "templates"), 0o755))
	must(t, os.WriteFile(filepath.Join(consumer, "templates", "check.yaml"), []byte(
		`{{- include "opsight.webhookTLSCheck" (dict "certManager" .Values.certManager "existing" .Values.existing "secret" "opsight-webhook-tls" "namespace" "opsight-system") }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: checked
  namespace: opsight-system
`), 0o644))
	const (
		helmSecret = "{metadata: {name: opsight-webhook-tls, annotations: {meta.helm.sh/release-name: opsight}}, data: {ca.crt: x, tls.crt: y, tls.key: z}}"
		cmSecret   = "{metadata: {name: opsight-webhook-tls, annotations: {cert-manager.io/certificate-name: opsight-webhook, cert-manager.io/issuer-name: opsight-webhook-selfsigned}}, data: {ca.crt: x, tls.crt: y, tls.key: z}}"
		bare       = "{metadata: {name: opsight-webhook-tls}, data: {ca.crt: x}}"
	)
	for _, tc := range []struct {
		name        string
		certManager bool
		existing    string // YAML of the live Secret; "{}" = none (lookup's empty answer)
		want        []string
	}{
		{"install-helm", false, "{}", nil},
		{"install-cert-manager", true, "{}", nil},
		{"upgrade-helm", false, helmSecret, nil},
		{"upgrade-cert-manager", true, cmSecret, nil},
		{"no-annotations-helm", false, bare, nil},
		{"helm-to-cert-manager", true, helmSecret, []string{"serves the Helm-generated certificate in Secret opsight-system/opsight-webhook-tls",
			"kubectl -n opsight-system delete secret opsight-webhook-tls", "webhook.failurePolicy=Fail"}},
		{"bare-to-cert-manager", true, bare, []string{"serves the Helm-generated certificate"}},
		{"cert-manager-to-helm", false, cmSecret, []string{"was issued by cert-manager (for Certificate opsight-webhook)",
			"set webhook.certManager.enabled=true", "kubectl -n opsight-system delete secret opsight-webhook-tls"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			values := filepath.Join(t.TempDir(), "values.yaml")
			must(t, os.WriteFile(values, []byte("certManager: "+strconv.FormatBool(tc.certManager)+"\nexisting: "+tc.existing+"\n"), 0o644))
			out, err := helmCmd(t, "template", "rel", consumer, "--namespace", namespace, "-f", values)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if len(ofKind[*corev1.ConfigMap](decodeAll(t, out))) == 0 {
					t.Fatal("nothing rendered")
				}
				return
			}
			if err == nil {
				t.Fatalf("rendered, want a failure mentioning %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
		})
	}
}

// TestWebhookTemplateChecksLiveSecret: the webhook manifests pass the lookup
// of the Secret the webhook serves to opsight.webhookTLSCheck (the check above
// is worth nothing if it is not called with it).
func TestWebhookTemplateChecksLiveSecret(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(chartDir(t), "templates", "webhook-admission.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	lookup := slices.IndexFunc(lines, func(l string) bool {
		return strings.Contains(l, `$existing := lookup "v1" "Secret" .Release.Namespace $secret`)
	})
	check := slices.IndexFunc(lines, func(l string) bool {
		return strings.Contains(l, `include "opsight.webhookTLSCheck" (dict "certManager" $certManager "existing" $existing "secret" $secret`)
	})
	if lookup < 0 || check < lookup {
		t.Errorf("webhook-admission.yaml must look up the Secret (line %d) and then call opsight.webhookTLSCheck with it (line %d)", lookup+1, check+1)
	}
}
