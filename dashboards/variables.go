package dashboards

import (
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"

	"github.com/opsight/opsight/internal/conventions"
	"github.com/opsight/opsight/internal/riskpatterns"
)

func dsVar(name, label, kind string) cog.Builder[dashboard.VariableModel] {
	return dashboard.NewDatasourceVariableBuilder(name).Label(label).Type(kind).
		Description("Which " + label + " data source to read; no UID is stored in the dashboard.")
}

// labelVar is a Prometheus label_values variable with "All" meaning ".*", so
// series that lack the label (no cluster label outside multi-cluster setups)
// still match.
func labelVar(name, label, metricSelector, desc string, multi bool) cog.Builder[dashboard.VariableModel] {
	q := "label_values(" + metricSelector + ", " + name + ")"
	return dashboard.NewQueryVariableBuilder(name).Label(label).Description(desc).
		Datasource(promDS).
		Query(dashboard.StringOrMap{String: ptr(q)}).Definition(q).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Sort(dashboard.VariableSortAlphabeticalAsc).
		IncludeAll(true).AllValue(".*").Multi(multi).
		Current(dashboard.VariableOption{
			Selected: ptr(true),
			Text:     dashboard.StringOrArrayOfString{String: ptr("All")},
			Value:    dashboard.StringOrArrayOfString{String: ptr("$__all")},
		})
}

// revisionVar is a single-valued revision picker (release comparison).
func revisionVar(name, label, desc string) cog.Builder[dashboard.VariableModel] {
	q := "label_values(" + MetricSpanCallsSelector() + ", revision)"
	return dashboard.NewQueryVariableBuilder(name).Label(label).Description(desc).
		Datasource(promDS).
		Query(dashboard.StringOrMap{String: ptr(q)}).Definition(q).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Sort(dashboard.VariableSortAlphabeticalAsc)
}

// riskVar lists the risk pattern ids of the catalogue; "All" keeps every line.
func riskVar() cog.Builder[dashboard.VariableModel] {
	ids := make([]string, 0, len(riskpatterns.Default))
	for _, p := range riskpatterns.Default {
		ids = append(ids, p.ID)
	}
	return dashboard.NewCustomVariableBuilder(VarRisk).Label("risk pattern").
		Description("Filter the log panel on the sidecar's risk structured metadata (pattern ids from the catalogue).").
		Values(dashboard.StringOrMap{String: ptr(strings.Join(ids, ","))}).
		IncludeAll(true).AllValue(".*").Multi(true).
		Current(dashboard.VariableOption{
			Selected: ptr(true),
			Text:     dashboard.StringOrArrayOfString{String: ptr("All")},
			Value:    dashboard.StringOrArrayOfString{String: ptr("$__all")},
		})
}

// MetricSpanCallsSelector scopes the span call counter to cluster and namespace.
func MetricSpanCallsSelector() string {
	return conventions.MetricSpanCalls + "{" + scope + "}"
}

// scopeVars are the cluster and namespace pickers, listing the values of metric.
func scopeVars(metric string) []cog.Builder[dashboard.VariableModel] {
	return []cog.Builder[dashboard.VariableModel]{
		labelVar(VarCluster, "cluster", metric, "Kubernetes cluster (the cluster label; All when absent).", false),
		labelVar(VarNamespace, "namespace", metric+`{`+re(conventions.LabelCluster, VarCluster)+`}`, "Namespace of the operator.", false),
	}
}

// dashboardBuilder is the SDK's builder of the classic (schema v1) dashboard
// JSON. grafana-foundation-sdk v0.0.22 deprecates it (and dashboard.Dashboard)
// in favour of dashboardv2, its only non-deprecated dashboard API; but
// dashboardv2 writes the v2 schema (elements and layouts instead of panels),
// which only Grafana 12 with the v2 dashboard API loads, while the chart
// provisions these files into Grafana 10–12 and the tests read the v1 panels.
// So opsight keeps schema v1 on purpose until it drops Grafana < 12; this
// alias and newDashboard are the only places that name the deprecated API.
//
//lint:ignore SA1019 schema v1 on purpose, see above
type dashboardBuilder = dashboard.DashboardBuilder

// newDashboard starts a dashboard with what all of ours share: the opsight
// tag and dropdown of the other opsight dashboards (keeping time and
// variables), crosshair tooltips, browser time zone, the window ending now.
func newDashboard(title, uid, description string, tags []string, refresh, from string) *dashboardBuilder {
	//lint:ignore SA1019 schema v1 on purpose: see dashboardBuilder
	return dashboard.NewDashboardBuilder(title).
		Uid(uid).
		Description(description).
		Tags(tags).
		Refresh(refresh).Time(from, "now").Timezone("browser").
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		Link(dashboard.NewDashboardLinkBuilder("opsight").Type(dashboard.DashboardLinkTypeDashboards).
			Tags([]string{"opsight"}).AsDropdown(true).KeepTime(true).IncludeVars(true))
}
