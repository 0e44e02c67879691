package main

import (
	"os"
	"reflect"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// TestCRDMatchesTypes: crd.yaml and the Go types must agree (group,
// version, kind, status subresource, and every spec/status field with its
// type), or the API server would prune or reject what the operator writes.
func TestCRDMatchesTypes(t *testing.T) {
	b, err := os.ReadFile("crd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(b, &crd); err != nil {
		t.Fatalf("crd.yaml: %v", err)
	}
	if crd.APIVersion != "apiextensions.k8s.io/v1" || crd.Kind != "CustomResourceDefinition" {
		t.Errorf("crd.yaml is a %s %s", crd.APIVersion, crd.Kind)
	}
	n := crd.Spec.Names
	if crd.Spec.Group != GroupVersion.Group || n.Kind != "Widget" || n.ListKind != "WidgetList" ||
		n.Plural != "widgets" || crd.Name != n.Plural+"."+crd.Spec.Group || crd.Spec.Scope != apiextensionsv1.NamespaceScoped {
		t.Errorf("crd names/group/scope = %s %s %+v %s", crd.Name, crd.Spec.Group, n, crd.Spec.Scope)
	}
	if len(crd.Spec.Versions) != 1 {
		t.Fatalf("%d versions, want 1", len(crd.Spec.Versions))
	}
	v := crd.Spec.Versions[0]
	if v.Name != GroupVersion.Version || !v.Served || !v.Storage || v.Subresources == nil || v.Subresources.Status == nil {
		t.Errorf("version %s served=%v storage=%v subresources=%+v, want %s served, storage, status subresource",
			v.Name, v.Served, v.Storage, v.Subresources, GroupVersion.Version)
	}
	props := v.Schema.OpenAPIV3Schema.Properties
	for _, tc := range []struct {
		field string
		typ   reflect.Type
	}{
		{"spec", reflect.TypeFor[WidgetSpec]()},
		{"status", reflect.TypeFor[WidgetStatus]()},
	} {
		schema := props[tc.field].Properties
		seen := map[string]bool{}
		for i := range tc.typ.NumField() {
			f := tc.typ.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			seen[name] = true
			want := map[reflect.Kind]string{reflect.Int32: "integer", reflect.Int64: "integer", reflect.String: "string", reflect.Bool: "boolean"}[f.Type.Kind()]
			if got := schema[name].Type; got != want {
				t.Errorf("%s.%s: schema type %q, want %q (Go %s)", tc.field, name, got, want, f.Type)
			}
		}
		for name := range schema {
			if !seen[name] {
				t.Errorf("%s.%s is in crd.yaml but not in %s", tc.field, name, tc.typ)
			}
		}
	}
}
