package webhook

import (
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/opsight/opsight/internal/conventions"
)

// patchOp is one RFC 6902 operation.
type patchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// Mutate answers one AdmissionRequest for a pod. It never returns an error:
// every outcome is an AdmissionResponse (allowed with or without a patch,
// with warnings where the pod asked for something the webhook cannot do).
func Mutate(cfg *Config, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	resp := &admissionv1.AdmissionResponse{UID: req.UID, Allowed: true}
	if req.Kind.Kind != "Pod" || req.Kind.Group != "" || req.Operation != admissionv1.Create {
		return resp // not ours: the chart registers pods/CREATE only
	}
	var pod corev1.Pod
	if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
		// The API server never sends an undecodable pod, so denying cannot
		// block a real workload; it points at a broken caller.
		resp.Allowed = false
		resp.Result = &metav1.Status{Status: metav1.StatusFailure, Code: 400,
			Reason:  metav1.StatusReasonBadRequest,
			Message: fmt.Sprintf("opsight webhook: request.object is not a Pod: %v", err)}
		return resp
	}
	ops, warnings := Plan(cfg, &pod, req.Namespace)
	resp.Warnings = warnings
	if len(ops) == 0 {
		return resp
	}
	patch, err := json.Marshal(ops)
	if err != nil { // cannot happen for these types; allow rather than block the pod
		resp.Warnings = append(resp.Warnings, "opsight: sidecar not injected: "+err.Error())
		return resp
	}
	pt := admissionv1.PatchTypeJSONPatch
	resp.Patch, resp.PatchType = patch, &pt
	return resp
}

// Plan returns the JSON patch that injects the sidecar into pod (empty when
// nothing is to be done) and warnings for the user. namespace is the
// request's namespace (pod.Namespace may still be empty at admission).
func Plan(cfg *Config, pod *corev1.Pod, namespace string) ([]patchOp, []string) {
	if pod.Annotations[AnnotationInject] == "" {
		return nil, nil
	}
	inject, err := strconv.ParseBool(pod.Annotations[AnnotationInject])
	if err != nil {
		return nil, []string{fmt.Sprintf("opsight: annotation %s=%q is not true/false; sidecar not injected",
			AnnotationInject, pod.Annotations[AnnotationInject])}
	}
	if !inject {
		return nil, nil
	}
	if pod.Labels[LabelRole] == RoleWebhook && (cfg.Namespace == "" || namespace == cfg.Namespace) {
		return nil, nil // never inject into the webhook itself: it would wait on its own admission
	}
	if hasContainer(pod, cfg.ContainerName) {
		return nil, nil // already injected (re-invocation, or a pod created from an injected spec)
	}
	ti, warn := targetContainer(pod)
	if ti < 0 {
		return nil, []string{warn}
	}
	target := &pod.Spec.Containers[ti]
	revision := pod.Annotations[AnnotationRevision]
	if revision == "" {
		revision = RevisionFromImage(target.Image)
	}
	id := ServiceIdentity(pod, target)
	c := sidecarContainer(cfg, target, revision, id.Name)

	var ops []patchOp
	if id.SetOTel {
		// The operator's SDK gets the same name as the sidecar, so its spans
		// and its logs land under one service.
		env := corev1.EnvVar{Name: EnvOTelServiceName, Value: id.Name}
		base := "/spec/containers/" + strconv.Itoa(ti) + "/env"
		if target.Env == nil {
			ops = append(ops, patchOp{"add", base, []corev1.EnvVar{env}})
		} else {
			ops = append(ops, patchOp{"add", base + "/-", env})
		}
	}
	if pod.Labels == nil {
		ops = append(ops, patchOp{"add", "/metadata/labels", map[string]string{LabelInjected: "true"}})
	} else {
		ops = append(ops, patchOp{"add", "/metadata/labels/" + escape(LabelInjected), "true"})
	}
	// Injection is asked for by an annotation, so the pod has annotations.
	ops = append(ops, patchOp{"add", "/metadata/annotations/" + escape(AnnotationServiceName), id.Name})
	vols := sidecarVolumes(cfg)
	if pod.Spec.Volumes == nil {
		ops = append(ops, patchOp{"add", "/spec/volumes", vols})
	} else {
		for _, v := range vols {
			ops = append(ops, patchOp{"add", "/spec/volumes/-", v})
		}
	}
	switch {
	case !cfg.NativeSidecar:
		ops = append(ops, patchOp{"add", "/spec/containers/-", c})
	case pod.Spec.InitContainers == nil:
		ops = append(ops, patchOp{"add", "/spec/initContainers", []corev1.Container{c}})
	default:
		// Last: after the pod's own init containers (which may set up the
		// network), before the main containers start.
		ops = append(ops, patchOp{"add", "/spec/initContainers/-", c})
	}
	return ops, id.Warnings
}

func hasContainer(pod *corev1.Pod, name string) bool {
	for _, cs := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for _, c := range cs {
			if c.Name == name {
				return true
			}
		}
	}
	return false
}

// targetContainer returns the index of the operator container in
// pod.Spec.Containers, or -1 and a warning.
func targetContainer(pod *corev1.Pod) (int, string) {
	want := pod.Annotations[AnnotationContainer]
	if want == "" {
		if len(pod.Spec.Containers) == 0 {
			return -1, "opsight: pod has no containers; sidecar not injected"
		}
		return 0, ""
	}
	names := make([]string, 0, len(pod.Spec.Containers))
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == want {
			return i, ""
		}
		names = append(names, pod.Spec.Containers[i].Name)
	}
	// A warning, not a denial: a typo in an annotation must not stop the
	// operator from running.
	return -1, fmt.Sprintf("opsight: annotation %s=%q names no container of this pod (containers: %s); sidecar not injected",
		AnnotationContainer, want, strings.Join(names, ", "))
}

func sidecarContainer(cfg *Config, target *corev1.Container, revision, service string) corev1.Container {
	field := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{
			FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: path}}}
	}
	// Order matters: later values and subPathExpr refer to earlier ones.
	env := []corev1.EnvVar{
		field(conventions.EnvPodName, "metadata.name"),
		field(conventions.EnvPodNamespace, "metadata.namespace"),
		field(EnvPodUID, "metadata.uid"),
		field(conventions.EnvNodeName, "spec.nodeName"),
		{Name: conventions.EnvContainer, Value: target.Name},
		{Name: conventions.EnvPodImage, Value: target.Image},
		{Name: conventions.EnvRevision, Value: revision},
		{Name: conventions.EnvServiceName, Value: service},
		{Name: EnvLogSource, Value: cfg.LogSource},
	}
	if cfg.LogSource == LogSourceFile {
		// *.log* and not *.log: kubelet renames 0.log to 0.log.<time> and
		// gzips older rotations; a sidecar that fell behind (restart, outage)
		// must still find the lines it has not read in those files.
		env = append(env, corev1.EnvVar{Name: conventions.EnvLogInclude,
			Value: PodLogsMountPath + "/" + target.Name + "/*.log*"})
	}
	env = append(env,
		corev1.EnvVar{Name: conventions.EnvStateDir, Value: conventions.DefaultStateDir},
		// The sidecar sizes its queues and files to the emptyDir: the kubelet
		// evicts the whole pod when the volume passes its sizeLimit.
		corev1.EnvVar{Name: conventions.EnvStateLimitBytes, Value: strconv.FormatInt(cfg.StateSizeLimit.Value(), 10)},
		corev1.EnvVar{Name: conventions.EnvMetricsAddr, Value: ":" + strconv.Itoa(int(cfg.MetricsPort))},
	)
	if v, ok := goMemLimit(cfg); ok {
		env = append(env, corev1.EnvVar{Name: EnvGoMemLim, Value: v})
	}
	env = append(env, cfg.Env...)

	mounts := []corev1.VolumeMount{{Name: VolumeState, MountPath: conventions.DefaultStateDir}}
	if cfg.LogSource == LogSourceFile {
		mounts = append(mounts, corev1.VolumeMount{
			Name: VolumePodLogs, MountPath: PodLogsMountPath, ReadOnly: true,
			SubPathExpr: "$(" + conventions.EnvPodNamespace + ")_$(" + conventions.EnvPodName + ")_$(" + EnvPodUID + ")",
		})
	}
	// Exactly one mount at the service-account path in either mode: the
	// sidecar's own token in api mode, an empty volume in file mode (which
	// needs no token), so the ServiceAccount admission plugin adds none.
	if cfg.LogSource == LogSourceAPI {
		mounts = append(mounts, corev1.VolumeMount{
			Name: VolumeKubeAPIAccess, MountPath: ServiceAccountMountPath, ReadOnly: true})
	} else {
		mounts = append(mounts, corev1.VolumeMount{
			Name: VolumeNoSAToken, MountPath: ServiceAccountMountPath, ReadOnly: true})
	}
	c := corev1.Container{
		Name:            cfg.ContainerName,
		Image:           cfg.Image,
		ImagePullPolicy: cfg.ImagePullPolicy,
		Args:            cfg.Args,
		Env:             env,
		Ports: []corev1.ContainerPort{{Name: "opsight-metrics", ContainerPort: cfg.MetricsPort,
			Protocol: corev1.ProtocolTCP}},
		Resources:       *cfg.Resources.DeepCopy(),
		VolumeMounts:    mounts,
		SecurityContext: cfg.SecurityContext.DeepCopy(),
	}
	if cfg.NativeSidecar {
		always := corev1.ContainerRestartPolicyAlways
		c.RestartPolicy = &always
	}
	return c
}

// goMemLimit is GoMemLimitPercent of the memory limit in bytes (rounded
// down), so the Go runtime collects before the kernel kills the container.
func goMemLimit(cfg *Config) (string, bool) {
	lim, ok := cfg.Resources.Limits[corev1.ResourceMemory]
	if !ok || lim.IsZero() {
		return "", false
	}
	n := new(big.Int).Mul(lim.AsDec().UnscaledBig(), big.NewInt(int64(cfg.GoMemLimitPercent)))
	d := lim.AsDec()
	// value = unscaled * 10^-scale; apply the scale and the /100 exactly.
	scale := int64(d.Scale()) + 2
	if scale >= 0 {
		n.Quo(n, new(big.Int).Exp(big.NewInt(10), big.NewInt(scale), nil))
	} else {
		n.Mul(n, new(big.Int).Exp(big.NewInt(10), big.NewInt(-scale), nil))
	}
	return n.String(), true
}

func sidecarVolumes(cfg *Config) []corev1.Volume {
	vols := []corev1.Volume{{Name: VolumeState, VolumeSource: corev1.VolumeSource{
		EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: cfg.StateSizeLimit}}}}
	if cfg.LogSource == LogSourceFile {
		dir := corev1.HostPathDirectory
		vols = append(vols, corev1.Volume{Name: VolumePodLogs, VolumeSource: corev1.VolumeSource{
			HostPath: &corev1.HostPathVolumeSource{Path: cfg.PodLogsHostPath, Type: &dir}}})
	}
	if cfg.LogSource == LogSourceAPI {
		vols = append(vols, kubeAPIAccessVolume())
	} else {
		vols = append(vols, noSATokenVolume())
	}
	return vols
}

// noSATokenVolume keeps the pod's service-account token out of the file-mode
// sidecar, which calls no API. A mutating webhook's patch makes the API
// server run its built-in mutating admission plugins again
// (k8s.io/apiserver/pkg/admission/reinvocation.go); the ServiceAccount
// plugin then mounts its kube-api-access-* volume into every init
// (native sidecar included) and regular container without a volumeMount whose
// mountPath is exactly /var/run/secrets/kubernetes.io/serviceaccount
// (k8s.io/kubernetes plugin/pkg/admission/serviceaccount/admission.go,
// mountServiceAccountToken: "Existing mounts at the default mount path
// prevent mounting of the API token"). The sidecar's read-only mount of this
// empty volume at that path is such a mount. emptyDir is allowed by every
// Pod Security level; memory-backed and capped at 1Ki, it holds nothing.
func noSATokenVolume() corev1.Volume {
	size := resource.MustParse("1Ki")
	return corev1.Volume{Name: VolumeNoSAToken, VolumeSource: corev1.VolumeSource{
		EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: &size}}}
}

// kubeAPIAccessVolume is the service-account token, cluster CA and namespace
// the sidecar needs to stream pods/log in api mode, built like the
// kube-api-access-* volume (as Istio does for its proxy). With it mounted at
// the service-account path, the ServiceAccount admission plugin, re-run after
// the webhook's patch, adds no second mount to the sidecar (see
// noSATokenVolume). The token is bound to the pod and its service account,
// so the RoleBinding still names the pod's service account. It is added even
// when the pod sets automountServiceAccountToken: false, which only stops the
// automatic mount: the sidecar cannot work without it, and the operator's own
// containers still get no token.
func kubeAPIAccessVolume() corev1.Volume {
	return corev1.Volume{Name: VolumeKubeAPIAccess, VolumeSource: corev1.VolumeSource{
		Projected: &corev1.ProjectedVolumeSource{
			DefaultMode: ptr(int32(tokenFileMode)),
			Sources: []corev1.VolumeProjection{
				{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
					Path: "token", ExpirationSeconds: ptr(int64(TokenExpirationSeconds))}},
				{ConfigMap: &corev1.ConfigMapProjection{
					LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"},
					Items:                []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
				{DownwardAPI: &corev1.DownwardAPIProjection{
					Items: []corev1.DownwardAPIVolumeFile{{Path: "namespace",
						FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}}}}},
			},
		}}}
}

// escape encodes a JSON pointer token (RFC 6901).
func escape(s string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}
