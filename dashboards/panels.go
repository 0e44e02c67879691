package dashboards

import (
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/logs"
	"github.com/grafana/grafana-foundation-sdk/go/loki"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/tempo"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

func ptr[T any](v T) *T { return &v }

// Data sources are always template variables: dashboards carry no UID, so
// they import into any Grafana (CONVENTIONS: no hard-coded UIDs, no __inputs).
func dsRef(kind, variable string) common.DataSourceRef {
	return common.DataSourceRef{Type: ptr(kind), Uid: ptr("${" + variable + "}")}
}

var (
	promDS  = dsRef("prometheus", VarPrometheus)
	lokiDS  = dsRef("loki", VarLoki)
	tempoDS = dsRef("tempo", VarTempo)
)

// query is one PromQL target.
type query struct {
	expr, legend string
	exemplar     bool // show exemplars (trace ids) as points; clicking opens Tempo
}

// step is one threshold step; the first step of a panel is its base colour.
type step struct {
	value float64
	color string
}

// panel is what every panel must say: a title, a description, a unit and
// thresholds. Building fails when one is missing, so none can be forgotten.
type panel struct {
	title, desc, unit string
	queries           []query
	base              string // colour below the first step
	steps             []step
	thresholdLine     bool // draw the thresholds on the graph
	stacked, bars     bool
	w, h              uint32
	links             []link
	noValue           string
	min               *float64
}

type link struct{ title, uid string }

func (p panel) check() error {
	switch {
	case p.title == "":
		return fmt.Errorf("panel without title")
	case p.desc == "":
		return fmt.Errorf("panel %q: description is required", p.title)
	case p.unit == "":
		return fmt.Errorf("panel %q: unit is required", p.title)
	case p.base == "":
		return fmt.Errorf("panel %q: thresholds are required (set base)", p.title)
	case len(p.queries) == 0:
		return fmt.Errorf("panel %q: no query", p.title)
	}
	return nil
}

func (p panel) thresholds() *dashboard.ThresholdsConfigBuilder {
	ts := []dashboard.Threshold{{Value: nil, Color: p.base}}
	for _, s := range p.steps {
		ts = append(ts, dashboard.Threshold{Value: ptr(s.value), Color: s.color})
	}
	return dashboard.NewThresholdsConfigBuilder().Mode(dashboard.ThresholdsModeAbsolute).Steps(ts)
}

func (p panel) targets() []cog.Builder[variants.Dataquery] {
	var out []cog.Builder[variants.Dataquery]
	for i, q := range p.queries {
		b := prometheus.NewDataqueryBuilder().
			Datasource(promDS).
			RefId(string(rune('A' + i))).
			Expr(q.expr).
			LegendFormat(q.legend).
			Range()
		if q.exemplar {
			b = b.Exemplar(true)
		}
		out = append(out, b)
	}
	return out
}

// dashLinks carry the time range and every variable to the target dashboard.
func dashLinks(ls []link) []cog.Builder[dashboard.DashboardLink] {
	var out []cog.Builder[dashboard.DashboardLink]
	for _, l := range ls {
		out = append(out, dashboard.NewDashboardLinkBuilder(l.title).
			Type(dashboard.DashboardLinkTypeLink).
			Url("/d/"+l.uid+"?${__url_time_range}&${__all_variables}").
			KeepTime(true).IncludeVars(true))
	}
	return out
}

func (p panel) size() (uint32, uint32) {
	w, h := p.w, p.h
	if w == 0 {
		w = 12
	}
	if h == 0 {
		h = 8
	}
	return w, h
}

// timeSeries builds a time series panel.
func timeSeries(p panel) cog.Builder[dashboard.Panel] {
	w, h := p.size()
	b := timeseries.NewPanelBuilder().
		Title(p.title).Description(p.desc).Unit(p.unit).
		Datasource(promDS).
		Targets(p.targets()).
		Thresholds(p.thresholds()).
		Span(w).Height(h).
		Legend(common.NewVizLegendOptionsBuilder().ShowLegend(true).DisplayMode(common.LegendDisplayModeList).Placement(common.LegendPlacementBottom)).
		Tooltip(common.NewVizTooltipOptionsBuilder().Mode(common.TooltipDisplayModeMulti).Sort(common.SortOrderDescending))
	if p.thresholdLine {
		b = b.ThresholdsStyle(common.NewGraphThresholdsStyleConfigBuilder().Mode(common.GraphThresholdsStyleModeDashed))
	}
	if p.stacked {
		b = b.Stacking(common.NewStackingConfigBuilder().Mode(common.StackingModeNormal)).FillOpacity(40)
	} else {
		b = b.FillOpacity(10)
	}
	if p.bars {
		b = b.DrawStyle(common.GraphDrawStyleBars)
	}
	if p.min != nil {
		b = b.Min(*p.min)
	}
	if len(p.links) > 0 {
		b = b.Links(dashLinks(p.links))
	}
	if err := p.check(); err != nil {
		b = b.RecordError("panel", err)
	}
	return b
}

// statPanel builds a single-value panel coloured by its thresholds.
func statPanel(p panel) cog.Builder[dashboard.Panel] {
	w, h := p.size()
	b := stat.NewPanelBuilder().
		Title(p.title).Description(p.desc).Unit(p.unit).
		Datasource(promDS).
		Targets(p.targets()).
		Thresholds(p.thresholds()).
		Span(w).Height(h).
		ColorMode(common.BigValueColorModeBackground).
		GraphMode(common.BigValueGraphModeArea).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}).Values(false))
	if p.noValue != "" {
		b = b.NoValue(p.noValue)
	}
	if len(p.links) > 0 {
		b = b.Links(dashLinks(p.links))
	}
	if err := p.check(); err != nil {
		b = b.RecordError("panel", err)
	}
	return b
}

// logsPanel builds a Loki logs panel. Its query is LogQL, not PromQL.
func logsPanel(title, desc, expr string, w, h uint32) cog.Builder[dashboard.Panel] {
	return logs.NewPanelBuilder().
		Title(title).Description(desc).Unit("short").
		Datasource(lokiDS).
		WithTarget(loki.NewDataqueryBuilder().Datasource(lokiDS).RefId("A").Expr(expr).QueryType("range").MaxLines(1000)).
		Thresholds(dashboard.NewThresholdsConfigBuilder().Mode(dashboard.ThresholdsModeAbsolute).
			Steps([]dashboard.Threshold{{Color: "green"}})).
		ShowTime(true).WrapLogMessage(true).EnableLogDetails(true).PrettifyLogMessage(false).
		SortOrder(common.LogsSortOrderDescending).DedupStrategy(common.LogsDedupStrategyNone).
		Span(w).Height(h)
}

// traceTable lists traces found by a TraceQL search; a trace id opens the trace.
func traceTable(title, desc, traceql string, w, h uint32) cog.Builder[dashboard.Panel] {
	return table.NewPanelBuilder().
		Title(title).Description(desc).Unit("short").
		Datasource(tempoDS).
		WithTarget(tempo.NewDataqueryBuilder().Datasource(tempoDS).RefId("A").
			QueryType(string(tempo.TempoQueryTypeTraceql)).Query(traceql).Limit(20).TableType(tempo.SearchTableTypeTraces)).
		Thresholds(dashboard.NewThresholdsConfigBuilder().Mode(dashboard.ThresholdsModeAbsolute).
			Steps([]dashboard.Threshold{{Color: "green"}})).
		Span(w).Height(h)
}
