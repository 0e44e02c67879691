package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/conversion"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-client/pkg/logs"
)

// paramCodec decodes and encodes PodLogOptions query parameters with the
// real apimachinery codec.
var paramCodec = runtime.NewParameterCodec(newScheme())

// newScheme returns a scheme with corev1 and the url.Values → PodLogOptions
// conversion. k8s.io/api only carries the +k8s:conversion-gen:explicit-from
// marker; the generated function lives in k8s.io/kubernetes/pkg/apis/core/v1,
// which cannot be imported. Without it DecodeParameters fails with "unknown
// conversion", so it is registered here, field by field with apimachinery's
// own converters as the generated code does.
func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := corev1.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := s.AddConversionFunc((*url.Values)(nil), (*corev1.PodLogOptions)(nil), func(a, b any, scope conversion.Scope) error {
		return convertURLValuesToPodLogOptions(a.(*url.Values), b.(*corev1.PodLogOptions), scope)
	}); err != nil {
		panic(err)
	}
	return s
}

func convertURLValuesToPodLogOptions(in *url.Values, out *corev1.PodLogOptions, s conversion.Scope) error {
	*out = corev1.PodLogOptions{TypeMeta: out.TypeMeta}
	fields := []struct {
		key  string
		conv func(*[]string) error
	}{
		{"container", func(v *[]string) error { return runtime.Convert_Slice_string_To_string(v, &out.Container, s) }},
		{"follow", func(v *[]string) error { return runtime.Convert_Slice_string_To_bool(v, &out.Follow, s) }},
		{"previous", func(v *[]string) error { return runtime.Convert_Slice_string_To_bool(v, &out.Previous, s) }},
		{"sinceSeconds", func(v *[]string) error { return runtime.Convert_Slice_string_To_Pointer_int64(v, &out.SinceSeconds, s) }},
		{"sinceTime", func(v *[]string) error { return metav1.Convert_Slice_string_To_Pointer_v1_Time(v, &out.SinceTime, s) }},
		{"timestamps", func(v *[]string) error { return runtime.Convert_Slice_string_To_bool(v, &out.Timestamps, s) }},
		{"tailLines", func(v *[]string) error { return runtime.Convert_Slice_string_To_Pointer_int64(v, &out.TailLines, s) }},
		{"limitBytes", func(v *[]string) error { return runtime.Convert_Slice_string_To_Pointer_int64(v, &out.LimitBytes, s) }},
		{"insecureSkipTLSVerifyBackend", func(v *[]string) error {
			return runtime.Convert_Slice_string_To_bool(v, &out.InsecureSkipTLSVerifyBackend, s)
		}},
		{"stream", func(v *[]string) error { out.Stream = &(*v)[0]; return nil }},
	}
	for _, f := range fields {
		if v, ok := (*in)[f.key]; ok && len(v) > 0 {
			if err := f.conv(&v); err != nil {
				return err
			}
		}
	}
	return nil
}

// validateOptions is the part of ValidatePodLogOptions
// (k8s.io/kubernetes/pkg/apis/core/validation) that applies here.
func validateOptions(o *corev1.PodLogOptions) field.ErrorList {
	var errs field.ErrorList
	if o.TailLines != nil && *o.TailLines < 0 {
		errs = append(errs, field.Invalid(field.NewPath("tailLines"), *o.TailLines, "must be greater than or equal to 0"))
	}
	if o.LimitBytes != nil && *o.LimitBytes < 1 {
		errs = append(errs, field.Invalid(field.NewPath("limitBytes"), *o.LimitBytes, "must be greater than 0"))
	}
	switch {
	case o.SinceSeconds != nil && o.SinceTime != nil:
		errs = append(errs, field.Forbidden(field.NewPath(""), "at most one of `sinceTime` or `sinceSeconds` may be specified"))
	case o.SinceSeconds != nil && *o.SinceSeconds < 1:
		errs = append(errs, field.Invalid(field.NewPath("sinceSeconds"), *o.SinceSeconds, "must be greater than 0"))
	}
	if o.Stream != nil && !slices.Contains([]string{corev1.LogStreamStdout, corev1.LogStreamStderr, corev1.LogStreamAll}, *o.Stream) {
		errs = append(errs, field.NotSupported(field.NewPath("stream"), *o.Stream,
			[]string{corev1.LogStreamStdout, corev1.LogStreamStderr, corev1.LogStreamAll}))
	}
	return errs
}

// kubeletHop does to the options what the API server → kubelet request does:
// the API server encodes them into the kubelet URL's query and the kubelet
// decodes them again. metav1.Time's query form is RFC3339 with whole seconds,
// so a sinceTime's fraction is lost on the way: sinceTime=…:49.9Z reaches
// ReadLogs as …:49Z and lines from …:49.0 to …:49.9 are returned too.
func kubeletHop(o *corev1.PodLogOptions) (*corev1.PodLogOptions, error) {
	q, err := paramCodec.EncodeParameters(o, corev1.SchemeGroupVersion)
	if err != nil {
		return nil, err
	}
	out := &corev1.PodLogOptions{}
	if err := paramCodec.DecodeParameters(q, corev1.SchemeGroupVersion, out); err != nil {
		return nil, err
	}
	return out, nil
}

// logOptions is the kubelet's PodLogOptions → CRI LogOptions conversion.
func logOptions(o *corev1.PodLogOptions, now time.Time) *logs.LogOptions {
	lo := &logs.LogOptions{Follow: o.Follow, Timestamp: o.Timestamps, TailLines: o.TailLines, LimitBytes: o.LimitBytes}
	if o.SinceSeconds != nil {
		lo.Since = now.Add(-time.Duration(*o.SinceSeconds) * time.Second)
	}
	if o.SinceTime != nil && o.SinceTime.After(lo.Since) {
		lo.Since = o.SinceTime.Time
	}
	return lo
}

// podLog serves GET /api/v1/namespaces/{ns}/pods/{pod}/log, checking in the
// API server's order: authentication, authorization, query decoding and
// validation, pod, container, then the kubelet's choice of instance.
func (s *server) podLog(w http.ResponseWriter, r *http.Request) {
	ns, pod := r.PathValue("ns"), r.PathValue("pod")
	user := s.user(r)
	if user == "" {
		writeStatus(w, apierrors.NewUnauthorized("Unauthorized"))
		return
	}
	if err := s.authorize(user, ns, pod); err != nil {
		writeStatus(w, err)
		return
	}
	opts := &corev1.PodLogOptions{}
	if err := paramCodec.DecodeParameters(r.URL.Query(), corev1.SchemeGroupVersion, opts); err != nil {
		writeStatus(w, apierrors.NewBadRequest(err.Error()))
		return
	}
	if errs := validateOptions(opts); len(errs) > 0 {
		writeStatus(w, apierrors.NewInvalid(schema.GroupKind{Kind: "PodLogOptions"}, pod, errs))
		return
	}
	podDir, err := s.findPod(ns, pod)
	if err != nil {
		writeStatus(w, err)
		return
	}
	container, err := pickContainer(podDir, pod, opts.Container)
	if err != nil {
		writeStatus(w, err)
		return
	}
	path, err := instancePath(filepath.Join(podDir, container), pod, container, opts.Previous)
	if err != nil {
		writeStatus(w, err)
		return
	}
	kopts, err := kubeletHop(opts)
	if err != nil {
		writeStatus(w, apierrors.NewInternalError(err))
		return
	}

	// As the kubelet does: no status line until the first write, a flush
	// after every write, one writer for both streams unless stream= asks
	// for one of them.
	w.Header().Set("Content-Type", "text/plain")
	fw := &flushWriter{w: w, f: w.(http.Flusher)}
	var stdout, stderr *flushWriter = fw, fw
	if kopts.Stream != nil {
		switch *kopts.Stream {
		case corev1.LogStreamStdout:
			stderr = nil
		case corev1.LogStreamStderr:
			stdout = nil
		}
	}
	err = logs.ReadLogs(r.Context(), path, path, logOptions(kopts, time.Now()), instanceRuntime{}, writerOrNil(stdout), writerOrNil(stderr))
	switch {
	case err != nil && r.Context().Err() != nil:
		log.Printf("podlogs: %s: stream cancelled (client gone or server stopping): %v", path, err)
	case err != nil && fw.n == 0:
		writeStatus(w, apierrors.NewBadRequest(err.Error()))
	case err != nil:
		log.Printf("podlogs: %s: reading after %d bytes: %v", path, fw.n, err)
	case fw.n == 0:
		w.WriteHeader(http.StatusOK)
	}
}

// writerOrNil keeps a nil *flushWriter from becoming a non-nil io.Writer:
// ReadLogs skips a stream only when its writer is a nil interface.
func writerOrNil(w *flushWriter) io.Writer {
	if w == nil {
		return nil
	}
	return w
}

// flushWriter flushes after every write, like the kubelet's flushwriter.
type flushWriter struct {
	w http.ResponseWriter
	f http.Flusher
	n int64
}

func (fw *flushWriter) Write(p []byte) (int, error) {
	n, err := fw.w.Write(p)
	fw.n += int64(n)
	if err != nil {
		return n, err
	}
	fw.f.Flush()
	return n, nil
}

// findPod returns the pod's log directory, <ns>_<pod>_<uid>. Neither names
// nor UIDs contain '_'. With several UIDs (a pod recreated under the same
// name) the most recently modified directory wins.
func (s *server) findPod(ns, pod string) (string, error) {
	entries, err := os.ReadDir(s.podsDir)
	if err != nil {
		return "", apierrors.NewInternalError(err)
	}
	var best string
	var bestMod time.Time
	for _, e := range entries {
		parts := strings.Split(e.Name(), "_")
		if !e.IsDir() || len(parts) != 3 || parts[0] != ns || parts[1] != pod {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		if best == "" || info.ModTime().After(bestMod) {
			best, bestMod = filepath.Join(s.podsDir, e.Name()), info.ModTime()
		}
	}
	if best == "" {
		return "", apierrors.NewNotFound(corev1.Resource("pods"), pod)
	}
	return best, nil
}

// pickContainer validates the container name as the API server's
// LogLocation does; with none given, a pod with one container means that
// one. Every subdirectory of the pod directory is a container.
func pickContainer(podDir, pod, container string) (string, error) {
	entries, err := os.ReadDir(podDir)
	if err != nil {
		return "", apierrors.NewInternalError(err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	switch {
	case container != "" && slices.Contains(names, container):
		return container, nil
	case container != "":
		return "", apierrors.NewBadRequest(fmt.Sprintf("container %s is not valid for pod %s", container, pod))
	case len(names) == 1:
		return names[0], nil
	case len(names) == 0:
		return "", apierrors.NewBadRequest(fmt.Sprintf("a container name must be specified for pod %s", pod))
	default:
		return "", apierrors.NewBadRequest(fmt.Sprintf("a container name must be specified for pod %s, choose one of: [%s]",
			pod, strings.Join(names, " ")))
	}
}

// currentInstance returns the highest N with an N.log or a rotation of it
// (N.log.<time>[.gz]) in dir, or -1. Rotations count: between the rename of
// N.log and the runtime reopening it only N.log.<time> exists, and the
// container is still running then. The kubelet still reads only N.log.
func currentInstance(dir string) int {
	entries, _ := os.ReadDir(dir)
	cur := -1
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), ".log")
		if !ok {
			continue
		}
		if n, err := strconv.Atoi(num); err == nil && n >= 0 && n > cur {
			cur = n
		}
	}
	return cur
}

// instancePath picks the log file as the kubelet does from the container's
// status: the current instance, or with previous the one before it.
func instancePath(dir, pod, container string, previous bool) (string, error) {
	cur := currentInstance(dir)
	if cur < 0 {
		return "", apierrors.NewBadRequest(fmt.Sprintf("container %q in pod %q is waiting to start: ContainerCreating", container, pod))
	}
	n := cur
	if previous {
		n = cur - 1
		if _, err := os.Stat(filepath.Join(dir, strconv.Itoa(n)+".log")); n < 0 || err != nil {
			return "", apierrors.NewBadRequest(fmt.Sprintf("previous terminated container %q in pod %q not found", container, pod))
		}
	}
	return filepath.Join(dir, strconv.Itoa(n)+".log"), nil
}

// instanceRuntime is the container runtime as ReadLogs sees it: only
// ContainerStatus is called (when a follow stream reaches the end of the
// file); any other method would panic on the nil embedded interface. The
// container ID is the instance's log path, <dir>/<N>.log. An instance runs
// until <dir>/<N>.exited exists or a later instance has started.
type instanceRuntime struct {
	internalapi.RuntimeService
}

func (instanceRuntime) ContainerStatus(_ context.Context, id string, _ bool) (*runtimeapi.ContainerStatusResponse, error) {
	dir, base := filepath.Dir(id), filepath.Base(id)
	num := strings.TrimSuffix(base, ".log")
	n, err := strconv.Atoi(num)
	if err != nil {
		return nil, errors.New("podlogs: container id is not an instance log path: " + id)
	}
	state := runtimeapi.ContainerState_CONTAINER_RUNNING
	if _, err := os.Stat(filepath.Join(dir, num+".exited")); err == nil || currentInstance(dir) != n {
		state = runtimeapi.ContainerState_CONTAINER_EXITED
	}
	return &runtimeapi.ContainerStatusResponse{Status: &runtimeapi.ContainerStatus{Id: id, State: state, LogPath: id}}, nil
}
