package webhook

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestServiceIdentity covers every rung of the precedence and what each one
// beats (CONVENTIONS.md "Service identity"), plus the cases where the
// operator's SDK may name its spans differently.
func TestServiceIdentity(t *testing.T) {
	rs := func(name string) metav1.OwnerReference {
		return metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: name, Controller: ptr(true)}
	}
	owner := func(kind, name string, controller bool) metav1.OwnerReference {
		return metav1.OwnerReference{Kind: kind, Name: name, Controller: ptr(controller)}
	}
	env := func(name, value string) corev1.EnvVar { return corev1.EnvVar{Name: name, Value: value} }
	fieldEnv := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}}
	}
	everything := func() (map[string]string, map[string]string, []metav1.OwnerReference, []corev1.EnvVar) {
		return map[string]string{AnnotationService: "from-annotation"},
			map[string]string{LabelAppName: "from-label", LabelPodTemplateHash: "7d9f8c6b5d"},
			[]metav1.OwnerReference{rs("from-deployment-7d9f8c6b5d")},
			[]corev1.EnvVar{env(EnvOTelServiceName, "from-otel")}
	}
	for _, tc := range []struct {
		name        string
		annotations map[string]string
		labels      map[string]string
		owners      []metav1.OwnerReference
		env         []corev1.EnvVar
		envFrom     bool
		want        string
		source      string
		setOTel     bool
		warning     string // substring; "" = no warning
	}{
		// Each rung wins over everything below it.
		{name: "annotation beats all", want: "from-annotation", source: SourceAnnotation,
			warning: `names its spans "from-otel" (env OTEL_SERVICE_NAME) but the pod's service is "from-annotation"`},
		{name: "OTEL_SERVICE_NAME beats label, owner, container", annotations: map[string]string{},
			want: "from-otel", source: SourceOTelEnv},
		{name: "label beats owner and container", annotations: map[string]string{}, env: []corev1.EnvVar{},
			want: "from-label", source: SourceAppLabel, setOTel: true},
		{name: "Deployment: ReplicaSet name without the pod-template-hash", annotations: map[string]string{}, env: []corev1.EnvVar{},
			labels: map[string]string{LabelPodTemplateHash: "7d9f8c6b5d"}, want: "from-deployment", source: "owner Deployment", setOTel: true},
		{name: "container name last", annotations: map[string]string{}, env: []corev1.EnvVar{}, labels: map[string]string{},
			owners: []metav1.OwnerReference{}, want: "manager", source: SourceContainer, setOTel: true},

		// Annotation and label values are trimmed; blank ones do not count.
		{name: "blank annotation falls through", annotations: map[string]string{AnnotationService: "  "}, want: "from-otel", source: SourceOTelEnv},
		{name: "annotation equal to the SDK's name: no warning", annotations: map[string]string{AnnotationService: " from-otel "},
			want: "from-otel", source: SourceAnnotation},
		{name: "annotation without OTEL_SERVICE_NAME sets it", env: []corev1.EnvVar{env("GOMAXPROCS", "2")},
			want: "from-annotation", source: SourceAnnotation, setOTel: true},

		// What the SDK sees: the last entry, resource attributes, downward API.
		{name: "last OTEL_SERVICE_NAME entry wins", annotations: map[string]string{},
			env: []corev1.EnvVar{env(EnvOTelServiceName, "first"), env(EnvOTelServiceName, "second")}, want: "second", source: SourceOTelEnv},
		{name: "service.name in OTEL_RESOURCE_ATTRIBUTES", annotations: map[string]string{},
			env:  []corev1.EnvVar{env(EnvOTelResourceAttributes, "deployment.environment=prod, service.name = etcd-operator ,team=a")},
			want: "etcd-operator", source: SourceOTelAttrs, setOTel: true},
		{name: "OTEL_SERVICE_NAME beats OTEL_RESOURCE_ATTRIBUTES", annotations: map[string]string{},
			env:  []corev1.EnvVar{env(EnvOTelResourceAttributes, "service.name=attrs"), env(EnvOTelServiceName, "env")},
			want: "env", source: SourceOTelEnv},
		{name: "empty OTEL_SERVICE_NAME is unset for the SDK, but not added again", annotations: map[string]string{},
			env: []corev1.EnvVar{env(EnvOTelServiceName, "")}, want: "from-label", source: SourceAppLabel},
		{name: "OTEL_SERVICE_NAME from a pod label", annotations: map[string]string{},
			labels: map[string]string{"app": "widget", LabelAppName: "from-label"},
			env:    []corev1.EnvVar{fieldEnv(EnvOTelServiceName, "metadata.labels['app']")}, want: "widget", source: SourceOTelEnv},
		{name: "OTEL_SERVICE_NAME from a configMap cannot be read", annotations: map[string]string{},
			env: []corev1.EnvVar{{Name: EnvOTelServiceName, ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "otel"}, Key: "name"}}}},
			want: "from-label", source: SourceAppLabel, warning: "sets OTEL_SERVICE_NAME from configMap otel, which the webhook cannot read"},
		{name: "OTEL_SERVICE_NAME with $(VAR) cannot be read", annotations: map[string]string{},
			env:  []corev1.EnvVar{env("APP", "x"), env(EnvOTelServiceName, "$(APP)-operator")},
			want: "from-label", source: SourceAppLabel, warning: "from a $(VAR) reference"},
		{name: "OTEL_SERVICE_NAME from metadata.name cannot be read", annotations: map[string]string{},
			env:  []corev1.EnvVar{fieldEnv(EnvOTelServiceName, "metadata.name")},
			want: "from-label", source: SourceAppLabel, warning: "fieldRef metadata.name"},
		{name: "envFrom may hold OTEL_SERVICE_NAME: not overridden", annotations: map[string]string{}, env: []corev1.EnvVar{},
			envFrom: true, want: "from-label", source: SourceAppLabel, warning: "takes environment from envFrom"},

		// Owners.
		{name: "ReplicaSet without the hash label is the workload", annotations: map[string]string{}, env: []corev1.EnvVar{},
			labels: map[string]string{}, owners: []metav1.OwnerReference{rs("bare-rs")}, want: "bare-rs", source: "owner ReplicaSet", setOTel: true},
		{name: "hash label that is not the suffix", annotations: map[string]string{}, env: []corev1.EnvVar{},
			labels: map[string]string{LabelPodTemplateHash: "abc"}, owners: []metav1.OwnerReference{rs("op-7d9f8c6b5d")}, want: "op-7d9f8c6b5d", source: "owner ReplicaSet", setOTel: true},
		{name: "StatefulSet", annotations: map[string]string{}, env: []corev1.EnvVar{}, labels: map[string]string{},
			owners: []metav1.OwnerReference{owner("StatefulSet", "etcd-operator", true)}, want: "etcd-operator", source: "owner StatefulSet", setOTel: true},
		{name: "DaemonSet", annotations: map[string]string{}, env: []corev1.EnvVar{}, labels: map[string]string{},
			owners: []metav1.OwnerReference{owner("DaemonSet", "node-agent", true)}, want: "node-agent", source: "owner DaemonSet", setOTel: true},
		{name: "Job", annotations: map[string]string{}, env: []corev1.EnvVar{}, labels: map[string]string{},
			owners: []metav1.OwnerReference{owner("Job", "migrate", true)}, want: "migrate", source: "owner Job", setOTel: true},
		{name: "controller owner wins over another owner", annotations: map[string]string{}, env: []corev1.EnvVar{}, labels: map[string]string{},
			owners: []metav1.OwnerReference{owner("StatefulSet", "not-controller", false), owner("DaemonSet", "controller", true)},
			want:   "controller", source: "owner DaemonSet", setOTel: true},
		{name: "unknown owner kind falls back to the container", annotations: map[string]string{}, env: []corev1.EnvVar{}, labels: map[string]string{},
			owners: []metav1.OwnerReference{owner("EtcdCluster", "example", true)}, want: "manager", source: SourceContainer, setOTel: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ann, labels, owners, env := everything()
			if tc.annotations != nil {
				ann = tc.annotations
			}
			if tc.labels != nil {
				labels = tc.labels
			}
			if tc.owners != nil {
				owners = tc.owners
			}
			if tc.env != nil {
				env = tc.env
			}
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: ann, Labels: labels, OwnerReferences: owners},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "manager", Env: env}}}}
			if tc.envFrom {
				pod.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{
					LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}}}}
			}
			id := ServiceIdentity(pod, &pod.Spec.Containers[0])
			if id.Name != tc.want || id.Source != tc.source || id.SetOTel != tc.setOTel {
				t.Errorf("got %q from %q (set OTEL_SERVICE_NAME %t), want %q from %q (%t)",
					id.Name, id.Source, id.SetOTel, tc.want, tc.source, tc.setOTel)
			}
			switch {
			case tc.warning == "" && len(id.Warnings) != 0:
				t.Errorf("unexpected warnings: %q", id.Warnings)
			case tc.warning != "" && (len(id.Warnings) != 1 || !strings.Contains(id.Warnings[0], tc.warning)):
				t.Errorf("warnings = %q, want one containing %q", id.Warnings, tc.warning)
			}
		})
	}
}
