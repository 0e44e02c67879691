// Command podlogs serves the Kubernetes API's pods/log endpoint over a
// directory of kubelet CRI log files, for tests that cannot run a real
// kube-apiserver and kubelet.
//
// The stream bytes come from the kubelet's own log reader
// (k8s.io/cri-client/pkg/logs.ReadLogs) and the query is decoded with the
// real apimachinery parameter codec; what is emulated is only the thin part
// around them: service-account token authentication, the chart's RBAC (get
// pods/log in one namespace), the pod and container lookup, and the API
// server → kubelet hop.
//
//	podlogs --listen 127.0.0.1:6443 --pods-dir DIR --sa-dir DIR --namespace NS
//
// --pods-dir has the kubelet's layout, DIR/<ns>_<pod>_<uid>/<container>/<N>.log
// with N the restart count. An instance counts as running until
// <container>/<N>.exited exists or a later instance appears; a follow stream
// ends once its instance is no longer running, as with a real kubelet.
//
// At start it writes into --sa-dir what a pod finds under
// /var/run/secrets/kubernetes.io/serviceaccount: ca.crt (the CA of the
// freshly generated serving certificate), token and namespace. The token is
// read again on every request, so a test can rotate it the way the kubelet
// rotates projected tokens.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:6443", "HTTPS listen address")
	podsDir := flag.String("pods-dir", "", "kubelet pod log directory (like /var/log/pods)")
	saDir := flag.String("sa-dir", "", "directory to write ca.crt, token and namespace into")
	namespace := flag.String("namespace", "default", "the only namespace the token may read pods/log in")
	anonymous := flag.Bool("anonymous-auth", false, "treat requests without a token as system:anonymous (403) rather than rejecting them (401), like kube-apiserver's default")
	flag.Parse()
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	if *podsDir == "" || *saDir == "" {
		log.Fatal("--pods-dir and --sa-dir are required")
	}
	if err := run(*listen, *podsDir, *saDir, *namespace, *anonymous); err != nil {
		log.Fatal(err)
	}
}

func run(listen, podsDir, saDir, namespace string, anonymous bool) error {
	cert, err := writeServiceAccount(saDir, namespace)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	s := &server{podsDir: podsDir, saDir: saDir, namespace: namespace, anonymous: anonymous}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok"))
	})
	mux.HandleFunc("GET /api/v1/namespaces/{ns}/pods/{pod}/log", s.podLog)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		// What kube-apiserver answers for a path it does not serve.
		writeStatus(w, &apierrors.StatusError{ErrStatus: metav1.Status{
			Status:  metav1.StatusFailure,
			Message: "the server could not find the requested resource",
			Reason:  metav1.StatusReasonNotFound,
			Details: &metav1.StatusDetails{},
			Code:    http.StatusNotFound,
		}})
	})
	srv := &http.Server{
		Handler:   logRequests(mux),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		// Follow streams run on this context, so a signal ends them and
		// Shutdown does not wait for them.
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ReadHeaderTimeout: 10 * time.Second,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	log.Printf("podlogs: serving https://%s (pods %s, namespace %s)", ln.Addr(), podsDir, namespace)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Printf("podlogs: shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// server holds the flags the handlers need.
type server struct {
	podsDir, saDir, namespace string
	anonymous                 bool
}

// user authenticates the request's bearer token against the token file as it
// is now. It returns "" when the request must be rejected with 401.
func (s *server) user(r *http.Request) string {
	auth := r.Header.Get("Authorization")
	if auth == "" && s.anonymous {
		return "system:anonymous"
	}
	got, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok {
		return ""
	}
	want, err := os.ReadFile(filepath.Join(s.saDir, "token"))
	if err != nil {
		log.Printf("podlogs: reading token: %v", err)
		return ""
	}
	// client-go trims the token file too (CachedFileTokenSource).
	w := strings.TrimSpace(string(want))
	if w == "" || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(w)) != 1 {
		return ""
	}
	return "system:serviceaccount:" + s.namespace + ":default"
}

// authorize applies the chart's RBAC: get on pods/log in the token's own
// namespace, nothing else. The message is the API server's forbiddenMessage.
func (s *server) authorize(user, ns, pod string) error {
	if user != "system:anonymous" && ns == s.namespace {
		return nil
	}
	//lint:ignore ST1005 the API server's own wording, which clients match
	return apierrors.NewForbidden(corev1.Resource("pods"), pod, fmt.Errorf(
		"User %q cannot get resource %q in API group %q in the namespace %q", user, "pods/log", "", ns))
}

// writeStatus writes err as the API server does: a JSON metav1.Status with
// the error's code.
func writeStatus(w http.ResponseWriter, err error) {
	var st metav1.Status
	var se apierrors.APIStatus
	if errors.As(err, &se) {
		st = se.Status()
	} else {
		st = apierrors.NewInternalError(err).ErrStatus
	}
	st.TypeMeta = metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}
	b, _ := json.Marshal(st)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(int(st.Code))
	_, _ = w.Write(append(b, '\n'))
}

// logRequests logs one line per request once it is answered (for a follow
// stream, when the stream ends).
func logRequests(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		log.Printf("%s %s?%s %d %dB %s", r.Method, r.URL.Path, r.URL.RawQuery, rec.status, rec.bytes,
			time.Since(start).Round(time.Millisecond))
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// writeServiceAccount generates a CA and a serving certificate for
// 127.0.0.1/localhost signed by it, and writes ca.crt, token and namespace
// into dir. Each file is written to a temporary name and renamed, so a
// reader polling for ca.crt never sees half of it.
func writeServiceAccount(dir, namespace string) (tls.Certificate, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return tls.Certificate{}, err
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "podlogs-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return tls.Certificate{}, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:     []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, err
	}

	tok := make([]byte, 32)
	if _, err := rand.Read(tok); err != nil {
		return tls.Certificate{}, err
	}
	files := []struct {
		name string
		data []byte
	}{
		{"token", []byte(hex.EncodeToString(tok))},
		{"namespace", []byte(namespace)},
		{"ca.crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})}, // last: readiness polls it
	}
	for _, f := range files {
		tmp := filepath.Join(dir, "."+f.name+".tmp")
		if err := os.WriteFile(tmp, f.data, 0o644); err != nil {
			return tls.Certificate{}, err
		}
		if err := os.Rename(tmp, filepath.Join(dir, f.name)); err != nil {
			return tls.Certificate{}, err
		}
	}
	return tls.Certificate{Certificate: [][]byte{der, caDER}, PrivateKey: key}, nil
}
