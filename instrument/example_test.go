package instrument_test

import (
	"context"
	"os"

	appsv1 "k8s.io/api/apps/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/opsight/opsight/instrument"
)

// DeploymentReconciler is an operator's own reconciler, unchanged.
type DeploymentReconciler struct{ client.Client }

func (r *DeploymentReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	// This line carries trace_id, span_id, reconcileID, controller, namespace, name.
	log.FromContext(ctx).Info("reconciling")
	var d appsv1.Deployment
	// ctx is the reconcile span's: this GET is its child client span.
	if err := r.Get(ctx, req.NamespacedName, &d); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	return ctrl.Result{}, nil
}

// Example is the README's main.go (compiled, not run: it needs a cluster).
func Example() {
	ctx := ctrl.SetupSignalHandler()

	// 1. Export spans to the opsight sidecar (127.0.0.1:4317).
	shutdown, err := instrument.Setup(ctx, instrument.SetupOptions{
		ServiceName:    "deployment-operator",
		ServiceVersion: os.Getenv("OPERATOR_VERSION"), // image tag or git SHA
	})
	if err != nil {
		panic(err)
	}
	defer func() { _ = shutdown(context.Background()) }()

	// 2. API calls become child client spans.
	cfg := instrument.WrapConfig(ctrl.GetConfigOrDie())

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{})
	if err != nil {
		panic(err)
	}
	// 3. Each reconcile becomes a server span; its logger gets trace_id/span_id.
	if err := ctrl.NewControllerManagedBy(mgr).
		For(&appsv1.Deployment{}).
		Complete(instrument.Reconciler("deployment", &DeploymentReconciler{Client: mgr.GetClient()})); err != nil {
		panic(err)
	}
	if err := mgr.Start(ctx); err != nil {
		panic(err)
	}
}
