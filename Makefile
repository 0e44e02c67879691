# The two commands of the README:
#   make demo   simulated operator + sidecar on the embedded default, prints a summary
#   make test   everything CI runs (.ci/run calls it)
GO      ?= go
BIN     := $(CURDIR)/.bin
FUZZTIME ?= 3000x
VERSION  := $(shell cat VERSION)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
LDFLAGS  := -s -w -X github.com/opsight/opsight/internal/buildinfo.version=$(VERSION) -X github.com/opsight/opsight/internal/buildinfo.revision=$(REVISION)

.PHONY: demo test tools lint unit e2e cluster all-tests fuzz bench generate image build bump actionlint release-check

demo:
	$(GO) run ./operator-sidecar demo

test: tools lint fuzz all-tests

# Real third-party programs the tests drive, built from their tool modules.
tools: $(BIN)/prometheus $(BIN)/promtool $(BIN)/helm $(BIN)/victoria-logs $(BIN)/jaeger $(BIN)/podlogs $(BIN)/staticcheck \
	$(BIN)/etcd $(BIN)/kube-apiserver $(BIN)/kube-controller-manager $(BIN)/kube-scheduler $(BIN)/kubectl $(BIN)/kwok

$(BIN)/prometheus:
	cd tools/prometheus && $(GO) build -o $@ github.com/prometheus/prometheus/cmd/prometheus
$(BIN)/promtool:
	cd tools/prometheus && $(GO) build -o $@ github.com/prometheus/prometheus/cmd/promtool
$(BIN)/helm:
	cd tools/helm && $(GO) build -o $@ helm.sh/helm/v3/cmd/helm
$(BIN)/victoria-logs:
	cd tools/victorialogs && $(GO) build -o $@ github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs
$(BIN)/jaeger:
	cd tools/jaeger && $(GO) build -o $@ github.com/jaegertracing/jaeger/cmd/jaeger
$(BIN)/podlogs: $(wildcard tools/podlogs/*.go) tools/podlogs/go.mod
	cd tools/podlogs && $(GO) build -o $@ .
# The control plane of test/cluster. Kubernetes binaries built outside its
# own scripts report v0.0.0-master unless stamped; Helm reads that version.
KUBE_VERSION = $(shell cd tools/kube && $(GO) list -m -f '{{.Version}}' k8s.io/kubernetes)
KUBE_LDFLAGS = -X k8s.io/component-base/version.gitVersion=$(KUBE_VERSION) \
	-X k8s.io/component-base/version.gitMajor=$(word 1,$(subst ., ,$(KUBE_VERSION:v%=%))) \
	-X k8s.io/component-base/version.gitMinor=$(word 2,$(subst ., ,$(KUBE_VERSION:v%=%))) \
	-X k8s.io/component-base/version.gitTreeState=clean
$(BIN)/etcd: tools/etcd/go.mod
	cd tools/etcd && $(GO) build -o $@ go.etcd.io/etcd/server/v3
$(BIN)/kube-%: tools/kube/go.mod
	cd tools/kube && $(GO) build -ldflags '$(KUBE_LDFLAGS)' -o $@ k8s.io/kubernetes/cmd/kube-$*
$(BIN)/kubectl: tools/kube/go.mod
	cd tools/kube && $(GO) build -ldflags '$(KUBE_LDFLAGS)' -o $@ k8s.io/kubernetes/cmd/kubectl
$(BIN)/kwok: tools/kwok/go.mod
	cd tools/kwok && $(GO) build -o $@ sigs.k8s.io/kwok/cmd/kwok
$(BIN)/staticcheck: tools/staticcheck/go.mod
	cd tools/staticcheck && $(GO) build -o $@ honnef.co/go/tools/cmd/staticcheck

lint: $(BIN)/staticcheck
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'gofmt: the files above need gofmt -w'; exit 1; }
	$(GO) vet ./...
	cd instrument && $(GO) vet ./...
	cd tools/podlogs && $(GO) vet ./...
	cd tools/image && $(GO) vet ./...
	$(BIN)/staticcheck ./...
	cd instrument && $(BIN)/staticcheck ./...
	cd tools/podlogs && $(BIN)/staticcheck ./...
	cd tools/image && $(BIN)/staticcheck ./...
	GOOS=windows GOARCH=amd64 $(GO) build ./releasegate/... ./internal/cputime/
	GOOS=darwin GOARCH=arm64 $(GO) build ./releasegate/... ./internal/cputime/

# The fast inner loop: everything but what -short leaves out (the e2e
# package, which starts the real sidecar and servers).
unit:
	$(GO) test -short -count=1 -timeout 20m ./...
	cd instrument && $(GO) test -short -count=1 ./...
	cd tools/image && $(GO) test -short -count=1 ./...

e2e: tools
	$(GO) test -count=1 -timeout 40m ./test/e2e/

# The real control plane alone (test/cluster).
cluster: tools
	$(GO) test -count=1 -timeout 30m ./test/cluster/

all-tests:
	$(GO) test -count=1 -timeout 45m ./...
	cd instrument && $(GO) test -count=1 ./...
	cd tools/image && $(GO) test -count=1 -timeout 30m ./...

# Every fuzz target runs for a bounded time.
fuzz:
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh
	cd instrument && $(GO) test -run '^$$' -fuzz '^FuzzAPIResource$$' -fuzztime $(FUZZTIME) .

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./collector/... ./releasegate/...

# Regenerate committed artefacts (dashboards, rules, runbooks, the chart's copies);
# tests fail when the committed files drift from these generators.
generate:
	$(GO) generate ./dashboards ./alerts ./internal/conventions
	$(GO) test ./deploy/helm -run TestChartExamples -update-examples
	$(GO) run ./deploy/helm/gen

# operator-sidecar image index (linux/amd64+arm64) as an OCI layout in dist/oci,
# SBOMs in dist/sbom, binaries in dist/bin; no Docker (docs/release.md).
image:
	cd tools/image && $(GO) run . build --version $(VERSION) --revision $(REVISION) --epoch $(SOURCE_DATE_EPOCH) \
	  --out $(CURDIR)/dist/oci --sbom-dir $(CURDIR)/dist/sbom --bin-dir $(CURDIR)/dist/bin

# Stamped release binaries for this machine.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -tags timetzdata -ldflags '$(LDFLAGS)' -o dist/operator-sidecar ./operator-sidecar
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/releasegate ./releasegate

# make bump NEW=0.2.0 [CHART=0.2.1]   (or CHART= alone for a chart-only change)
bump:
	cd tools/image && $(GO) run . bump $(if $(NEW),--version $(NEW)) $(if $(CHART),--chart-version $(CHART))

actionlint: $(BIN)/staticcheck
	cd tools/image && $(GO) tool actionlint ../../.github/workflows/*.yml

release-check:
	$(GO) test -count=1 -run TestVersionAgreement ./deploy/helm/
	cd tools/image && $(GO) test -count=1 -run 'TestWorkflows|TestGateAction|TestBump|TestChartPackage' .
