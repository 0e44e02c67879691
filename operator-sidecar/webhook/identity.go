package webhook

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/opsight/opsight/internal/conventions"
)

// Names the service identity is derived from (CONVENTIONS.md "Service identity").
const (
	// AnnotationService names the pod's service outright; it wins over
	// everything else.
	AnnotationService = "opsight.dev/service"
	// LabelAppName is the recommended Kubernetes label for an application's name.
	LabelAppName = "app.kubernetes.io/name"
	// LabelPodTemplateHash is what a Deployment appends to its ReplicaSet's
	// name (and puts on the pods), so the Deployment's name is the
	// ReplicaSet's name without "-<hash>".
	LabelPodTemplateHash = "pod-template-hash"
	// EnvOTelServiceName and EnvOTelResourceAttributes are the OpenTelemetry
	// SDK variables that name a service; OTEL_SERVICE_NAME wins over a
	// service.name in OTEL_RESOURCE_ATTRIBUTES (OTel SDK environment spec).
	EnvOTelServiceName        = "OTEL_SERVICE_NAME"
	EnvOTelResourceAttributes = "OTEL_RESOURCE_ATTRIBUTES"
)

// Where an Identity came from, in precedence order.
const (
	SourceAnnotation = "annotation " + AnnotationService
	SourceOTelEnv    = "env " + EnvOTelServiceName
	SourceOTelAttrs  = "env " + EnvOTelResourceAttributes
	SourceAppLabel   = "label " + LabelAppName
	SourceWorkload   = "owner"
	SourceContainer  = "container name"
)

// Identity is the one service name of a pod: the sidecar's
// OPSIGHT_SERVICE_NAME, the operator SDK's OTEL_SERVICE_NAME, Loki's
// service_name and the spans' service.name.
type Identity struct {
	Name   string
	Source string // one of the Source* constants (owner: "owner <Kind>")
	// SetOTel: the operator container defines no OTEL_SERVICE_NAME, so the
	// webhook adds one with Name (the SDK and the sidecar then agree).
	SetOTel bool
	// Warnings for the user: the operator's SDK is likely to name its spans
	// differently (they are renamed and counted by the sidecar).
	Warnings []string
}

// ServiceIdentity derives a pod's service name once, in the order of
// CONVENTIONS.md: the annotation opsight.dev/service; the operator
// container's OTEL_SERVICE_NAME (or service.name in its
// OTEL_RESOURCE_ATTRIBUTES); the label app.kubernetes.io/name; the owning
// workload (a Deployment through its ReplicaSet, StatefulSet, DaemonSet,
// Job); the container name last, because kubebuilder names every
// operator's container "manager".
func ServiceIdentity(pod *corev1.Pod, target *corev1.Container) Identity {
	sdk := sdkServiceName(pod, target)
	var id Identity
	switch {
	case strings.TrimSpace(pod.Annotations[AnnotationService]) != "":
		id = Identity{Name: strings.TrimSpace(pod.Annotations[AnnotationService]), Source: SourceAnnotation}
	case sdk.known && sdk.value != "":
		id = Identity{Name: sdk.value, Source: sdk.source}
	case strings.TrimSpace(pod.Labels[LabelAppName]) != "":
		id = Identity{Name: strings.TrimSpace(pod.Labels[LabelAppName]), Source: SourceAppLabel}
	default:
		if name, kind := workloadName(pod); name != "" {
			id = Identity{Name: name, Source: SourceWorkload + " " + kind}
		} else {
			id = Identity{Name: target.Name, Source: SourceContainer}
		}
	}
	// The SDK's own name is left alone when the container sets one: the
	// convention gives OTEL_SERVICE_NAME only to a container that had none.
	id.SetOTel = !sdk.defined
	switch {
	case sdk.defined && !sdk.known:
		id.Warnings = append(id.Warnings, fmt.Sprintf(
			"opsight: container %s sets %s from %s, which the webhook cannot read at admission; the sidecar names the service %q (%s) and renames spans of any other service.name (counted in %s): set annotation %s to the SDK's name to agree",
			target.Name, EnvOTelServiceName, sdk.source, id.Name, id.Source, conventions.MetricSpanServiceMismatch, AnnotationService))
	case sdk.known && sdk.value != "" && sdk.value != id.Name:
		id.Warnings = append(id.Warnings, fmt.Sprintf(
			"opsight: container %s names its spans %q (%s) but the pod's service is %q (%s): spans are renamed to %q, the original kept in opsight.original_service_name and counted in %s; make the two equal",
			target.Name, sdk.value, sdk.source, id.Name, id.Source, id.Name, conventions.MetricSpanServiceMismatch))
	case !sdk.defined && len(target.EnvFrom) > 0:
		// An explicit env entry would silently override an OTEL_SERVICE_NAME
		// the envFrom source may hold, and the webhook cannot read it.
		id.SetOTel = false
		id.Warnings = append(id.Warnings, fmt.Sprintf(
			"opsight: container %s takes environment from envFrom, which the webhook cannot read, so %s is not set; the sidecar names the service %q (%s) and renames spans of any other service.name: set %s in env, or annotation %s",
			target.Name, EnvOTelServiceName, id.Name, id.Source, EnvOTelServiceName, AnnotationService))
	}
	return id
}

// sdkName is what the operator container's environment tells its OTel SDK.
type sdkName struct {
	defined bool   // OTEL_SERVICE_NAME is an env entry (even one the webhook cannot resolve)
	known   bool   // value is what the SDK will see
	value   string // "" with known: the SDK has no name from the environment
	source  string
}

func sdkServiceName(pod *corev1.Pod, c *corev1.Container) sdkName {
	// Kubernetes lets the last entry of a repeated name win.
	var otel, attrs *corev1.EnvVar
	for i := range c.Env {
		switch c.Env[i].Name {
		case EnvOTelServiceName:
			otel = &c.Env[i]
		case EnvOTelResourceAttributes:
			attrs = &c.Env[i]
		}
	}
	if otel != nil {
		v, from, ok := resolveEnv(pod, otel)
		switch {
		case !ok:
			return sdkName{defined: true, source: from}
		case v != "":
			return sdkName{defined: true, known: true, value: v, source: SourceOTelEnv}
		}
		// An empty OTEL_SERVICE_NAME is unset for the SDK; the entry stays
		// (and is not duplicated), the resource attributes may still name it.
		if n := attrsServiceName(pod, attrs); n.known {
			n.defined = true
			return n
		}
		return sdkName{defined: true, known: true, source: SourceOTelEnv}
	}
	return attrsServiceName(pod, attrs)
}

func attrsServiceName(pod *corev1.Pod, attrs *corev1.EnvVar) sdkName {
	if attrs == nil {
		return sdkName{known: true}
	}
	v, _, ok := resolveEnv(pod, attrs)
	if !ok {
		return sdkName{known: true} // cannot tell; OTEL_SERVICE_NAME set by us wins anyway
	}
	// key1=value1,key2=value2 (W3C baggage format, values percent-encoded).
	for _, kv := range strings.Split(v, ",") {
		k, val, ok := strings.Cut(kv, "=")
		if ok && strings.TrimSpace(k) == conventions.AttrServiceName && strings.TrimSpace(val) != "" {
			return sdkName{known: true, value: strings.TrimSpace(val), source: SourceOTelAttrs}
		}
	}
	return sdkName{known: true}
}

// resolveEnv returns an env entry's value when it can be known at
// admission: a literal without $(VAR) references, or a downward-API field
// of the pod's labels or annotations. from says what it comes from.
func resolveEnv(pod *corev1.Pod, e *corev1.EnvVar) (value, from string, ok bool) {
	if e.ValueFrom == nil {
		if strings.Contains(e.Value, "$(") {
			return "", "a $(VAR) reference", false
		}
		return strings.TrimSpace(e.Value), "", true
	}
	vf := e.ValueFrom
	switch {
	case vf.FieldRef != nil:
		path := vf.FieldRef.FieldPath
		for prefix, m := range map[string]map[string]string{"metadata.labels['": pod.Labels, "metadata.annotations['": pod.Annotations} {
			if key, ok := strings.CutPrefix(path, prefix); ok && strings.HasSuffix(key, "']") {
				return strings.TrimSpace(m[strings.TrimSuffix(key, "']")]), "", true
			}
		}
		// metadata.name is still empty under generateName; the rest is no name.
		return "", "fieldRef " + path, false
	case vf.ConfigMapKeyRef != nil:
		return "", "configMap " + vf.ConfigMapKeyRef.Name, false
	case vf.SecretKeyRef != nil:
		return "", "secret " + vf.SecretKeyRef.Name, false
	default:
		return "", "valueFrom", false
	}
}

// workloadName is the name of the workload that owns the pod and its kind:
// the Deployment of a ReplicaSet owner (the ReplicaSet's name without its
// pod-template-hash suffix), a bare ReplicaSet, a StatefulSet, DaemonSet or
// Job. The controller reference wins over other owners.
func workloadName(pod *corev1.Pod) (name, kind string) {
	refs := pod.OwnerReferences
	for i := range refs {
		if refs[i].Controller != nil && *refs[i].Controller {
			refs = refs[i : i+1]
			break
		}
	}
	for _, r := range refs {
		switch r.Kind {
		case "ReplicaSet":
			// Only a Deployment labels the pod template with the hash it
			// appends, so without the label the ReplicaSet is the workload.
			if h := pod.Labels[LabelPodTemplateHash]; h != "" {
				if d, ok := strings.CutSuffix(r.Name, "-"+h); ok && d != "" {
					return d, "Deployment"
				}
			}
			return r.Name, r.Kind
		case "StatefulSet", "DaemonSet", "Job":
			return r.Name, r.Kind
		}
	}
	return "", ""
}
