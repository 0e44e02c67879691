package webhook

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
)

// maxReviewBytes bounds a request body; the API server's limit for an
// object is 3 MiB, a review carries at most two.
const maxReviewBytes = 7 << 20

// Run is the `operator-sidecar webhook` subcommand: it parses its flags,
// loads the injection config and serves HTTPS until ctx is done.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("webhook", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", ":8443", "address to serve HTTPS on")
	certFile := fs.String("tls-cert", "/etc/opsight-webhook/tls/tls.crt", "serving certificate (PEM); re-read when it changes")
	keyFile := fs.String("tls-key", "/etc/opsight-webhook/tls/tls.key", "private key of --tls-cert (PEM)")
	cfgFile := fs.String("config", "", "injection settings (YAML): sidecar image, resources, env, ... (required)")
	native := fs.String("native-sidecar", "", "true|false: inject a native sidecar (initContainers, restartPolicy Always; Kubernetes >= 1.29); overrides the config's nativeSidecar")
	namespace := fs.String("namespace", "", "the webhook's own namespace (default $POD_NAMESPACE)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil // usage was printed
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("webhook: unexpected argument %q (all settings are flags)", fs.Arg(0))
	}
	if *cfgFile == "" {
		return errors.New("webhook: --config is required (the injection settings file)")
	}
	cfg, err := LoadConfig(*cfgFile)
	if err != nil {
		return err
	}
	if *native != "" {
		v, err := strconv.ParseBool(*native)
		if err != nil {
			return fmt.Errorf("webhook: --native-sidecar=%q: use true or false", *native)
		}
		cfg.NativeSidecar = v
	}
	if *namespace != "" {
		cfg.Namespace = *namespace
	}
	certs := &certReloader{certFile: *certFile, keyFile: *keyFile}
	if _, err := certs.get(); err != nil {
		return err
	}
	logger := slog.New(slog.NewJSONHandler(stderr, nil))
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("webhook: listening on %s: %w", *listen, err)
	}
	srv := &http.Server{
		Handler:           NewHandler(&cfg, logger),
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return certs.get() }},
	}
	fmt.Fprintf(stdout, "opsight webhook serving on %s (native sidecar: %t, log source: %s)\n",
		ln.Addr(), cfg.NativeSidecar, cfg.LogSource)
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	select {
	case err := <-errc:
		return fmt.Errorf("webhook: %w", err)
	case <-ctx.Done():
		shut, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return srv.Shutdown(shut)
	}
}

// NewHandler serves /mutate (AdmissionReview v1), /mutate/api (the same with
// logSource api, for namespaces whose Pod Security level forbids hostPath),
// /healthz and /readyz.
func NewHandler(cfg *Config, logger *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	ok := func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") }
	mux.HandleFunc("GET /healthz", ok)
	mux.HandleFunc("GET /readyz", ok)
	apiCfg := cfg.WithLogSource(LogSourceAPI)
	mux.Handle("POST /mutate", mutateHandler(cfg, logger))
	mux.Handle("POST /mutate/api", mutateHandler(&apiCfg, logger))
	return mux
}

func mutateHandler(cfg *Config, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		review, status, err := decodeReview(http.MaxBytesReader(w, r.Body, maxReviewBytes))
		if err != nil {
			http.Error(w, err.Error(), status)
			return
		}
		resp := Mutate(cfg, review.Request)
		logger.Info("admission", "path", r.URL.Path, "uid", review.Request.UID, "namespace", review.Request.Namespace,
			"patched", resp.Patch != nil, "allowed", resp.Allowed, "warnings", resp.Warnings)
		out := admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: resp}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(&out)
	})
}

func decodeReview(r io.Reader) (*admissionv1.AdmissionReview, int, error) {
	var review admissionv1.AdmissionReview
	if err := json.NewDecoder(r).Decode(&review); err != nil {
		return nil, http.StatusBadRequest, fmt.Errorf("body is not an AdmissionReview: %v", err)
	}
	if review.APIVersion != admissionv1.SchemeGroupVersion.String() || review.Kind != "AdmissionReview" {
		return nil, http.StatusBadRequest, fmt.Errorf("want apiVersion %s kind AdmissionReview, got %q %q (set admissionReviewVersions: [v1])",
			admissionv1.SchemeGroupVersion, review.APIVersion, review.Kind)
	}
	if review.Request == nil {
		return nil, http.StatusBadRequest, errors.New("AdmissionReview has no request")
	}
	return &review, http.StatusOK, nil
}

// certReloader re-reads the key pair when the certificate file changes, so
// cert-manager renewals take effect without a restart.
type certReloader struct {
	certFile, keyFile string
	mu                sync.Mutex
	mtime             time.Time
	cert              *tls.Certificate
}

func (c *certReloader) get() (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, err := os.Stat(c.certFile)
	if err != nil {
		if c.cert != nil {
			return c.cert, nil // mid-rotation (the secret volume swaps a symlink): keep serving
		}
		return nil, fmt.Errorf("webhook: --tls-cert: %w", err)
	}
	if c.cert != nil && st.ModTime().Equal(c.mtime) {
		return c.cert, nil
	}
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		if c.cert != nil {
			return c.cert, nil
		}
		return nil, fmt.Errorf("webhook: loading --tls-cert/--tls-key: %w", err)
	}
	c.cert, c.mtime = &cert, st.ModTime()
	return c.cert, nil
}
