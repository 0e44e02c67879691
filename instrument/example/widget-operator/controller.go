package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/opsight/opsight/instrument"
)

// ControllerName is the controller's name: the "controller" field of its
// log lines and the "controller" attribute of its Reconcile spans.
const ControllerName = "widget"

// ChildSuffix names a Widget's ConfigMap: "<widget>-widget".
const ChildSuffix = "-widget"

// Labels on the child ConfigMap.
const (
	LabelManagedBy = "app.kubernetes.io/managed-by"
	LabelWidget    = "demo.opsight.dev/widget"
	ManagedBy      = "widget-operator"
)

// WidgetReconciler keeps, for each Widget, a ConfigMap "<name>-widget"
// holding its spec (owned by the Widget, so deleting the Widget deletes
// it), and records in the Widget's status which generation it reflects.
type WidgetReconciler struct {
	Client client.Client
	Scheme *runtime.Scheme
	// Delay is slept in every reconcile that finds its Widget, inside the
	// Reconcile span: two builds differing only by it differ only in latency.
	Delay time.Duration
}

// Reconcile makes the Widget's ConfigMap match its spec, then its status
// match the ConfigMap. Every API call uses ctx, so with instrument.Reconciler
// and instrument.WrapConfig each is a client span under the Reconcile span,
// and every line logged through log.FromContext(ctx) carries its trace_id.
func (r *WidgetReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	logger := log.FromContext(ctx)
	logger.Info("reconciling widget")

	var w Widget
	if err := r.Client.Get(ctx, req.NamespacedName, &w); err != nil {
		if apierrors.IsNotFound(err) {
			// The ConfigMap goes with it (garbage collection by owner reference).
			logger.Info("widget not found, nothing to do")
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("get widget: %w", err)
	}
	if !w.DeletionTimestamp.IsZero() {
		logger.Info("widget is being deleted, nothing to do")
		return ctrl.Result{}, nil
	}

	if err := sleep(ctx, r.Delay); err != nil {
		return ctrl.Result{}, err
	}

	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: w.Name + ChildSuffix, Namespace: w.Namespace}}
	op, err := controllerutil.CreateOrUpdate(ctx, r.Client, cm, func() error {
		if cm.Labels == nil {
			cm.Labels = map[string]string{}
		}
		cm.Labels[LabelManagedBy] = ManagedBy
		cm.Labels[LabelWidget] = w.Name
		cm.Data = map[string]string{
			"size":    strconv.Itoa(int(w.Spec.Size)),
			"message": w.Spec.Message,
		}
		return controllerutil.SetControllerReference(&w, cm, r.Scheme)
	})
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("configmap %s: %w", cm.Name, err)
	}
	// "configmap created", "configmap updated" or "configmap unchanged".
	logger.Info("configmap "+string(op), "configmap", cm.Name, "generation", w.Generation)

	want := WidgetStatus{ObservedGeneration: w.Generation, Ready: true, ConfigMap: cm.Name}
	if w.Status == want {
		return ctrl.Result{}, nil
	}
	patch := client.MergeFrom(w.DeepCopy())
	w.Status = want
	if err := r.Client.Status().Patch(ctx, &w, patch); err != nil {
		return ctrl.Result{}, fmt.Errorf("patch widget status: %w", err)
	}
	logger.Info("status patched", "observedGeneration", want.ObservedGeneration, "ready", want.Ready)
	return ctrl.Result{}, nil
}

// SetupWithManager registers the reconciler, wrapped by instrument.Reconciler,
// to watch Widgets and the ConfigMaps they own.
func (r *WidgetReconciler) SetupWithManager(mgr ctrl.Manager, opts controller.Options, tracing ...instrument.Option) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&Widget{}).
		Owns(&corev1.ConfigMap{}).
		Named(ControllerName).
		WithOptions(opts).
		Complete(instrument.Reconciler(ControllerName, r, tracing...))
}

// sleep waits d, or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
