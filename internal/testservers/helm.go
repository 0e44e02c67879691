package testservers

// Helm is the helm CLI from tools/helm (the chart tests run `helm lint` and
// `helm template`, offline).
var Helm = Tool{Name: "helm", Module: "tools/helm", Pkg: "helm.sh/helm/v3/cmd/helm"}
