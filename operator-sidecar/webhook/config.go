// Package webhook is opsight's sidecar-injection admission webhook: pods
// annotated opsight.dev/inject: "true" get the operator-sidecar container
// (a native sidecar where the cluster supports it), configured by the
// environment variables of CONVENTIONS.md "Sidecar settings without a config
// file". The `operator-sidecar webhook` subcommand calls Run.
package webhook

import (
	"errors"
	"fmt"
	"os"
	"regexp"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"

	"github.com/opsight/opsight/internal/conventions"
)

// Pod annotations and labels the webhook reads or writes.
const (
	AnnotationInject    = "opsight.dev/inject"    // "true" asks for the sidecar
	AnnotationRevision  = "opsight.dev/revision"  // overrides the revision taken from the image tag
	AnnotationContainer = "opsight.dev/container" // the operator container; default the first one
	LabelInjected       = "opsight.dev/injected"  // set on injected pods, so a PodMonitor can select them
	// AnnotationServiceName is written, never read: the pod's service
	// identity as derived (ServiceIdentity), so the PodMonitor can put it on
	// the sidecar's metrics as service_name. An annotation, not a label:
	// service names need not be valid label values. To choose the name, set
	// opsight.dev/service.
	AnnotationServiceName = "opsight.dev/service-name"
	LabelRole             = "opsight.dev/role" // "webhook" on the webhook's own pods: never injected
	RoleWebhook           = "webhook"
)

// Names the injected container and volumes use.
const (
	DefaultContainerName = conventions.SidecarContainer
	VolumeState          = "opsight-state"
	VolumePodLogs        = "opsight-pod-logs"
	// PodLogsMountPath is where the pod's own /var/log/pods/<ns>_<pod>_<uid>
	// directory appears in the sidecar. A fixed path: the pod name and UID
	// are unknown at admission (generateName), so the directory is chosen by
	// subPathExpr from downward-API variables when the kubelet starts it.
	PodLogsMountPath   = "/var/log/opsight-pod"
	DefaultPodLogsHost = "/var/log/pods"
	// VolumeKubeAPIAccess is the sidecar's own service-account token volume
	// in api mode, a copy of the kube-api-access-* volume the ServiceAccount
	// admission plugin adds. The sidecar needs it even when the pod sets
	// automountServiceAccountToken: false (then the plugin adds nothing).
	VolumeKubeAPIAccess = "opsight-kube-api-access"
	// VolumeNoSAToken is the small empty volume the sidecar mounts read-only
	// at ServiceAccountMountPath in file mode, so that the pod's
	// service-account token is never mounted into it. The API server re-runs
	// its built-in admission plugins after a mutating webhook changed the
	// pod, and the ServiceAccount plugin then mounts kube-api-access-* into
	// every container, the injected one included, that has no volumeMount
	// at exactly that path (see sidecarVolumes). Its name must not start
	// with "kube-api-access-": the plugin would take it for its own volume.
	VolumeNoSAToken = "opsight-no-sa-token"
	// ServiceAccountMountPath is where client-go and the sidecar look for
	// token, ca.crt and namespace.
	ServiceAccountMountPath = "/var/run/secrets/kubernetes.io/serviceaccount"
	// TokenExpirationSeconds and tokenFileMode are those of kube-api-access-*.
	TokenExpirationSeconds = 3607
	tokenFileMode          = 0o644
)

// Environment variables the injected container gets that have no constant in
// internal/conventions yet.
const (
	EnvPodUID    = conventions.EnvPodUID
	EnvLogSource = conventions.EnvLogSource
	EnvGoMemLim  = "GOMEMLIMIT"
)

// Log sources.
const (
	LogSourceFile = "file"
	LogSourceAPI  = "api"
)

// Config is the injection settings file (--config, YAML). Field names follow
// the Kubernetes spelling because most values are copied into the pod.
type Config struct {
	// Image of operator-sidecar. Required.
	Image string `json:"image"`
	// ImagePullPolicy of the injected container; empty lets Kubernetes decide.
	ImagePullPolicy corev1.PullPolicy `json:"imagePullPolicy,omitempty"`
	// ContainerName of the injected container (default opsight-sidecar).
	ContainerName string `json:"containerName,omitempty"`
	// NativeSidecar injects an initContainers entry with restartPolicy:
	// Always (Kubernetes >= 1.29) instead of a regular container. The
	// --native-sidecar flag overrides it.
	NativeSidecar bool `json:"nativeSidecar"`
	// LogSource is file (default: hostPath of the pod's own log directory,
	// read-only) or api (stream the container log through the API server;
	// no hostPath, for namespaces under Pod Security "baseline"/"restricted").
	LogSource string `json:"logSource,omitempty"`
	// PodLogsHostPath is the kubelet's pod log root (default /var/log/pods).
	PodLogsHostPath string `json:"podLogsHostPath,omitempty"`
	// Resources of the injected container (default requests 50m/64Mi, limit 128Mi).
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`
	// GoMemLimitPercent of limits.memory is written to GOMEMLIMIT (default 90;
	// nothing is set when there is no memory limit).
	GoMemLimitPercent int `json:"goMemLimitPercent,omitempty"`
	// SecurityContext of the injected container; default: non-root, group 0
	// (file mode, to read the root:root 0640 log files) or non-root group
	// 65532 (api mode), read-only root, no capabilities, RuntimeDefault seccomp.
	SecurityContext *corev1.SecurityContext `json:"securityContext,omitempty"`
	// MetricsPort of the sidecar's OpenMetrics endpoint (default 9464).
	MetricsPort int32 `json:"metricsPort,omitempty"`
	// StateSizeLimit of the emptyDir holding OPSIGHT_STATE_DIR (default 256Mi).
	StateSizeLimit *resource.Quantity `json:"stateSizeLimit,omitempty"`
	// Env is appended to the injected container's environment, e.g.
	// OPSIGHT_LOKI_URL, OPSIGHT_TRACES_URL, OPSIGHT_CLUSTER. Names the
	// webhook sets itself are rejected.
	Env []corev1.EnvVar `json:"env,omitempty"`
	// Args of the injected container (default none: settings come from env).
	Args []string `json:"args,omitempty"`
	// Namespace the webhook runs in (default $POD_NAMESPACE); pods there
	// labelled opsight.dev/role=webhook are never injected.
	Namespace string `json:"namespace,omitempty"`

	// defaultSecurityContext records that SecurityContext was not configured,
	// so WithLogSource can pick the default that fits the other log source.
	defaultSecurityContext bool
}

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// managedEnv are the variables the webhook sets; Config.Env may not repeat them.
var managedEnv = map[string]bool{
	conventions.EnvPodName: true, conventions.EnvPodNamespace: true, EnvPodUID: true,
	conventions.EnvNodeName: true, conventions.EnvContainer: true, conventions.EnvPodImage: true,
	conventions.EnvRevision: true, conventions.EnvLogInclude: true, conventions.EnvStateDir: true,
	conventions.EnvMetricsAddr: true, EnvLogSource: true, EnvGoMemLim: true,
	conventions.EnvServiceName:     true, // per pod (ServiceIdentity): one value for every pod would merge services
	conventions.EnvStateLimitBytes: true,
}

// minStateSize is the least state volume the sidecar accepts (its
// checkpoints, queues and dead-letter file; operator-sidecar refuses less).
const minStateSize = 16 << 20

// DefaultConfig returns the settings used for keys the file leaves out.
func DefaultConfig() Config {
	return Config{
		ContainerName:     DefaultContainerName,
		LogSource:         LogSourceFile,
		PodLogsHostPath:   DefaultPodLogsHost,
		GoMemLimitPercent: 90,
		MetricsPort:       9464,
		Namespace:         os.Getenv(conventions.EnvPodNamespace),
	}
}

func (c *Config) applyDefaults() {
	d := DefaultConfig()
	if c.ContainerName == "" {
		c.ContainerName = d.ContainerName
	}
	if c.LogSource == "" {
		c.LogSource = d.LogSource
	}
	if c.PodLogsHostPath == "" {
		c.PodLogsHostPath = d.PodLogsHostPath
	}
	if c.GoMemLimitPercent == 0 {
		c.GoMemLimitPercent = d.GoMemLimitPercent
	}
	if c.MetricsPort == 0 {
		c.MetricsPort = d.MetricsPort
	}
	if c.Namespace == "" {
		c.Namespace = d.Namespace
	}
	if c.Resources == nil {
		c.Resources = &corev1.ResourceRequirements{
			Requests: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("50m"),
				corev1.ResourceMemory: resource.MustParse("64Mi"),
			},
			Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("128Mi")},
		}
	}
	if c.StateSizeLimit == nil {
		q := resource.MustParse("256Mi")
		c.StateSizeLimit = &q
	}
	if c.SecurityContext == nil || c.defaultSecurityContext {
		c.defaultSecurityContext = true
		group := int64(0)
		if c.LogSource == LogSourceAPI {
			group = 65532
		}
		c.SecurityContext = &corev1.SecurityContext{
			RunAsNonRoot:             ptr(true),
			RunAsUser:                ptr(int64(65532)),
			RunAsGroup:               ptr(group),
			ReadOnlyRootFilesystem:   ptr(true),
			AllowPrivilegeEscalation: ptr(false),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		}
	}
}

// WithLogSource returns a copy of c reading logs from src; a default
// securityContext follows the log source (group 0 only for file).
func (c Config) WithLogSource(src string) Config {
	if c.LogSource == src {
		return c
	}
	c.LogSource = src
	if c.defaultSecurityContext {
		c.applyDefaults()
	}
	return c
}

// Validate reports the first setting that cannot work, naming its key.
func (c *Config) Validate() error {
	if c.Image == "" {
		return errors.New("image: required: set the operator-sidecar image (values: sidecar.image)")
	}
	if !dnsLabel.MatchString(c.ContainerName) || len(c.ContainerName) > 63 {
		return fmt.Errorf("containerName: %q is not a DNS label (lowercase letters, digits, '-')", c.ContainerName)
	}
	if c.LogSource != LogSourceFile && c.LogSource != LogSourceAPI {
		return fmt.Errorf("logSource: %q: use %q or %q", c.LogSource, LogSourceFile, LogSourceAPI)
	}
	if c.GoMemLimitPercent < 1 || c.GoMemLimitPercent > 100 {
		return fmt.Errorf("goMemLimitPercent: %d: use 1..100", c.GoMemLimitPercent)
	}
	if c.MetricsPort < 1 || c.MetricsPort > 65535 {
		return fmt.Errorf("metricsPort: %d: use 1..65535", c.MetricsPort)
	}
	if c.StateSizeLimit != nil && c.StateSizeLimit.Value() < minStateSize {
		return fmt.Errorf("stateSizeLimit: %s is below 16Mi, the least the sidecar's checkpoints, queues and dead-letter file need; raise it (values: sidecar.stateSizeLimit)", c.StateSizeLimit.String())
	}
	if c.Resources != nil {
		for name, req := range c.Resources.Requests {
			if lim, ok := c.Resources.Limits[name]; ok && req.Cmp(lim) > 0 {
				return fmt.Errorf("resources: requests.%s %s exceeds limits.%s %s", name, req.String(), name, lim.String())
			}
		}
	}
	for i, e := range c.Env {
		if e.Name == "" {
			return fmt.Errorf("env[%d].name: required", i)
		}
		if managedEnv[e.Name] {
			return fmt.Errorf("env[%d].name: %s is set by the webhook; remove it from env", i, e.Name)
		}
	}
	return nil
}

// LoadConfig reads a YAML settings file, rejecting unknown keys, fills
// defaults and validates.
func LoadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("reading injection config: %w", err)
	}
	return ParseConfig(b)
}

// ParseConfig is LoadConfig on bytes.
func ParseConfig(b []byte) (Config, error) {
	var c Config
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		return Config{}, fmt.Errorf("parsing injection config: %w", err)
	}
	c.applyDefaults()
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("injection config: %w", err)
	}
	return c, nil
}

func ptr[T any](v T) *T { return &v }
