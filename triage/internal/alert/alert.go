// Package alert reads an Alertmanager webhook payload (version 4, what a
// webhook_config receiver is sent: alerts[] with labels, annotations,
// startsAt, endsAt) into what a triage needs: the service, namespace,
// cluster and revision from the alert's labels, and the window from
// startsAt (minus a lookback) to endsAt (a resolved alert) or now.
// Reference: https://prometheus.io/docs/alerting/latest/configuration/#webhook_config
package alert

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/opsight/opsight/internal/conventions"
)

// payload is the part of the webhook body read.
type payload struct {
	Version      string            `json:"version"`
	Status       string            `json:"status"`
	CommonLabels map[string]string `json:"commonLabels"`
	Alerts       []struct {
		Status   string            `json:"status"`
		Labels   map[string]string `json:"labels"`
		StartsAt time.Time         `json:"startsAt"`
		EndsAt   time.Time         `json:"endsAt"`
	} `json:"alerts"`
}

// Target is what an alert says to triage.
type Target struct {
	Alert     string // alertname
	Service   string // label service_name (else service)
	Namespace string
	Cluster   string
	Revision  string // label revision: the revision the alert fired for, if any
	From, To  time.Time
	Firing    int // alerts of the payload taken (the same service)
	Resolved  bool
}

// Labels read, in order of preference.
var serviceLabels = []string{conventions.LabelServiceName, "service"}

// Parse reads a webhook payload. The alerts taken are those of the first
// firing alert's service (namespace, cluster): a group may hold several
// alerts of one service, and the window runs from the earliest startsAt
// minus lookback to now, or, when every one is resolved, to the latest
// endsAt. Alerts of other services in the same payload are left out (and
// counted in the error when nothing is left).
func Parse(b []byte, now time.Time, lookback time.Duration) (Target, error) {
	var p payload
	if err := json.Unmarshal(b, &p); err != nil {
		return Target{}, fmt.Errorf("not an Alertmanager webhook payload (JSON): %v", err)
	}
	if p.Version != "" && p.Version != "4" {
		return Target{}, fmt.Errorf("webhook payload version %q: only version 4 is known", p.Version)
	}
	if len(p.Alerts) == 0 {
		return Target{}, errors.New("the webhook payload holds no alerts")
	}
	if lookback < 0 {
		return Target{}, fmt.Errorf("lookback %v: must not be negative", lookback)
	}
	label := func(i int, names ...string) string {
		for _, n := range names {
			if v := p.Alerts[i].Labels[n]; v != "" {
				return v
			}
			if v := p.CommonLabels[n]; v != "" {
				return v
			}
		}
		return ""
	}
	// The first firing alert with a service decides; else the first with one.
	pick := -1
	for i, a := range p.Alerts {
		if label(i, serviceLabels...) == "" {
			continue
		}
		if pick < 0 || a.Status == "firing" && p.Alerts[pick].Status != "firing" {
			pick = i
		}
	}
	if pick < 0 {
		var names []string
		for k := range p.Alerts[0].Labels {
			names = append(names, k)
		}
		sort.Strings(names)
		return Target{}, fmt.Errorf("no alert of the payload names a service (label %s or service); its labels: %s",
			conventions.LabelServiceName, strings.Join(names, ", "))
	}
	t := Target{Alert: label(pick, "alertname"), Service: label(pick, serviceLabels...),
		Namespace: label(pick, conventions.LabelNamespace), Cluster: label(pick, conventions.LabelCluster),
		Revision: label(pick, conventions.LabelRevision), Resolved: true}
	var start, end time.Time
	for i, a := range p.Alerts {
		if label(i, serviceLabels...) != t.Service || label(i, conventions.LabelNamespace) != t.Namespace || label(i, conventions.LabelCluster) != t.Cluster {
			continue
		}
		if a.StartsAt.IsZero() {
			return Target{}, fmt.Errorf("alert %d (%s): no startsAt", i, label(i, "alertname"))
		}
		t.Firing++
		if start.IsZero() || a.StartsAt.Before(start) {
			start = a.StartsAt
		}
		// A firing alert's endsAt is zero or in the future (Alertmanager's
		// resolve timeout): it is still on, so the window runs to now.
		if a.Status != "resolved" || a.EndsAt.IsZero() || a.EndsAt.After(now) {
			t.Resolved = false
		} else if a.EndsAt.After(end) {
			end = a.EndsAt
		}
	}
	t.From, t.To = start.Add(-lookback).UTC(), now.UTC()
	if t.Resolved {
		t.To = end.UTC()
	}
	if !t.To.After(t.From) {
		return Target{}, fmt.Errorf("alert window %s..%s is empty (startsAt after endsAt or now?)", t.From.Format(time.RFC3339), t.To.Format(time.RFC3339))
	}
	return t, nil
}
