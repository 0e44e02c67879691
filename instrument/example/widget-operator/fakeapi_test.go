package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/rest"
)

// fakeAPI is a small in-memory Kubernetes API server for Widgets and
// ConfigMaps over real HTTP, so client-go's requests (and their client spans)
// are real: discovery, GET/LIST, a WATCH that stays open without events,
// POST, PUT, and JSON merge PATCH of widgets/status. Not a conformance
// fake: no conflicts, selectors or validation.
type fakeAPI struct {
	t    *testing.T
	srv  *httptest.Server
	stop chan struct{}

	mu       sync.Mutex
	rv       int
	objs     map[objKey]map[string]any
	requests []apiRequest
}

type objKey struct{ prefix, resource, ns, name string }

type apiRequest struct {
	method, path, traceparent string
}

// The two resources it serves: API prefix, kind, list kind.
var fakeResources = map[string]struct{ prefix, kind string }{
	"widgets":    {"/apis/demo.opsight.dev/v1alpha1", "Widget"},
	"configmaps": {"/api/v1", "ConfigMap"},
}

func newFakeAPI(t *testing.T) *fakeAPI {
	a := &fakeAPI{t: t, stop: make(chan struct{}), objs: map[objKey]map[string]any{}}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(func() {
		close(a.stop) // ends open watches
		a.srv.Close()
	})
	return a
}

// config is a rest.Config for the server, unwrapped. It speaks JSON only
// (client-go would send built-in types as protobuf).
func (a *fakeAPI) config() *rest.Config {
	return &rest.Config{Host: a.srv.URL, QPS: -1, ContentConfig: rest.ContentConfig{ContentType: "application/json"}}
}

// fakeMapper maps the two kinds without discovery.
func fakeMapper() meta.RESTMapper {
	m := meta.NewDefaultRESTMapper(nil)
	m.Add(GroupVersion.WithKind("Widget"), meta.RESTScopeNamespace)
	m.Add(corev1.SchemeGroupVersion.WithKind("ConfigMap"), meta.RESTScopeNamespace)
	return m
}

func (a *fakeAPI) key(resource, ns, name string) objKey {
	return objKey{fakeResources[resource].prefix, resource, ns, name}
}

// put stores obj (a Widget or ConfigMap) as if created by a user.
func (a *fakeAPI) put(resource string, obj any) {
	b, err := json.Marshal(obj)
	if err != nil {
		a.t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		a.t.Fatal(err)
	}
	md := m["metadata"].(map[string]any)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stamp(resource, m)
	a.objs[a.key(resource, md["namespace"].(string), md["name"].(string))] = m
}

// get returns the stored object decoded into out; false if absent.
func (a *fakeAPI) get(resource, ns, name string, out any) bool {
	a.mu.Lock()
	m, ok := a.objs[a.key(resource, ns, name)]
	var b []byte
	if ok {
		b, _ = json.Marshal(m)
	}
	a.mu.Unlock()
	if !ok {
		return false
	}
	if err := json.Unmarshal(b, out); err != nil {
		a.t.Fatal(err)
	}
	return true
}

func (a *fakeAPI) delete(resource, ns, name string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.objs, a.key(resource, ns, name))
}

// takeRequests returns the requests received since the last call.
func (a *fakeAPI) takeRequests() []apiRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.requests
	a.requests = nil
	return r
}

// stamp sets what the server owns: kind, apiVersion, resourceVersion, uid.
func (a *fakeAPI) stamp(resource string, m map[string]any) {
	a.rv++
	r := fakeResources[resource]
	m["kind"] = r.kind
	m["apiVersion"] = strings.TrimPrefix(strings.TrimPrefix(r.prefix, "/api/"), "/apis/")
	md, _ := m["metadata"].(map[string]any)
	if md == nil {
		md = map[string]any{}
		m["metadata"] = md
	}
	md["resourceVersion"] = strconv.Itoa(a.rv)
	if md["uid"] == nil || md["uid"] == "" {
		md["uid"] = fmt.Sprintf("uid-%d", a.rv)
	}
	if md["creationTimestamp"] == nil {
		md["creationTimestamp"] = time.Now().UTC().Format(time.RFC3339)
	}
	if resource == "widgets" && md["generation"] == nil {
		md["generation"] = 1
	}
}

func (a *fakeAPI) serve(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.requests = append(a.requests, apiRequest{r.Method, r.URL.Path, r.Header.Get("traceparent")})
	a.mu.Unlock()

	if body, ok := fakeDiscovery[r.URL.Path]; ok {
		writeJSON(w, http.StatusOK, body)
		return
	}
	prefix, ns, resource, name, sub, ok := parseAPIPath(r.URL.Path)
	if !ok || fakeResources[resource].prefix != prefix {
		writeStatus(w, http.StatusNotFound, "NotFound", "no such path "+r.URL.Path)
		return
	}
	q := r.URL.Query()
	switch {
	case r.Method == http.MethodGet && q.Get("watch") == "true":
		if q.Get("sendInitialEvents") == "true" {
			// Refuse the streaming list: client-go falls back to LIST+WATCH.
			writeStatus(w, http.StatusBadRequest, "BadRequest", "sendInitialEvents is not supported")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-a.stop:
		}
	case r.Method == http.MethodGet && name == "":
		a.list(w, resource, ns)
	case r.Method == http.MethodGet:
		a.mu.Lock()
		defer a.mu.Unlock() // writes change stored maps in place
		obj, found := a.objs[objKey{prefix, resource, ns, name}]
		if !found {
			writeStatus(w, http.StatusNotFound, "NotFound", fmt.Sprintf("%s %q not found", resource, name))
			return
		}
		writeJSON(w, http.StatusOK, obj)
	case r.Method == http.MethodPost && name == "":
		a.write(w, r, resource, ns, "", "")
	case (r.Method == http.MethodPut || r.Method == http.MethodPatch) && name != "":
		a.write(w, r, resource, ns, name, sub)
	default:
		writeStatus(w, http.StatusMethodNotAllowed, "MethodNotAllowed", r.Method+" "+r.URL.Path)
	}
}

func (a *fakeAPI) list(w http.ResponseWriter, resource, ns string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	items := []any{}
	keys := slices.SortedFunc(maps.Keys(a.objs), func(x, y objKey) int { return strings.Compare(x.ns+"/"+x.name, y.ns+"/"+y.name) })
	for _, k := range keys {
		if k.resource == resource && (ns == "" || k.ns == ns) {
			items = append(items, a.objs[k])
		}
	}
	r := fakeResources[resource]
	writeJSON(w, http.StatusOK, map[string]any{
		"kind":       r.kind + "List",
		"apiVersion": strings.TrimPrefix(strings.TrimPrefix(r.prefix, "/api/"), "/apis/"),
		"metadata":   map[string]any{"resourceVersion": strconv.Itoa(a.rv)},
		"items":      items,
	})
}

// write handles POST (create), PUT (update) and PATCH of widgets/status.
func (a *fakeAPI) write(w http.ResponseWriter, r *http.Request, resource, ns, name, sub string) {
	var body map[string]any
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeStatus(w, http.StatusBadRequest, "BadRequest", err.Error())
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	code := http.StatusOK
	switch r.Method {
	case http.MethodPost:
		md, _ := body["metadata"].(map[string]any)
		name, _ = md["name"].(string)
		if _, exists := a.objs[a.key(resource, ns, name)]; exists {
			writeStatus(w, http.StatusConflict, "AlreadyExists", name+" already exists")
			return
		}
		code = http.StatusCreated
	case http.MethodPut:
		old, exists := a.objs[a.key(resource, ns, name)]
		if !exists {
			writeStatus(w, http.StatusNotFound, "NotFound", name+" not found")
			return
		}
		if resource == "widgets" { // status only through widgets/status
			body["status"] = old["status"]
		}
	case http.MethodPatch:
		old, exists := a.objs[a.key(resource, ns, name)]
		if !exists || sub != "status" || r.Header.Get("Content-Type") != "application/merge-patch+json" {
			writeStatus(w, http.StatusUnprocessableEntity, "Invalid", "only merge patches of existing */status")
			return
		}
		st, _ := old["status"].(map[string]any)
		if st == nil {
			st = map[string]any{}
		}
		patch, _ := body["status"].(map[string]any)
		for k, v := range patch {
			if v == nil {
				delete(st, k)
			} else {
				st[k] = v
			}
		}
		old["status"] = st
		body = old
	}
	a.stamp(resource, body)
	a.objs[a.key(resource, ns, name)] = body
	writeJSON(w, code, body)
}

// parseAPIPath splits /api/v1/namespaces/ns/configmaps/name and
// /apis/g/v/namespaces/ns/widgets/name/status.
func parseAPIPath(path string) (prefix, ns, resource, name, sub string, ok bool) {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case len(segs) >= 3 && segs[0] == "api":
		prefix, segs = "/api/"+segs[1], segs[2:]
	case len(segs) >= 4 && segs[0] == "apis":
		prefix, segs = "/apis/"+segs[1]+"/"+segs[2], segs[3:]
	default:
		return "", "", "", "", "", false
	}
	if len(segs) >= 3 && segs[0] == "namespaces" {
		ns, segs = segs[1], segs[2:]
	}
	resource = segs[0]
	if len(segs) > 1 {
		name = segs[1]
	}
	if len(segs) > 2 {
		sub = segs[2]
	}
	return prefix, ns, resource, name, sub, len(segs) <= 3
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeStatus(w http.ResponseWriter, code int, reason, msg string) {
	writeJSON(w, code, map[string]any{"kind": "Status", "apiVersion": "v1", "status": "Failure",
		"reason": reason, "message": msg, "code": code})
}

// Legacy (non-aggregated) discovery for the two resources.
var fakeDiscovery = map[string]any{
	"/api": map[string]any{"kind": "APIVersions", "versions": []string{"v1"},
		"serverAddressByClientCIDRs": []any{map[string]any{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}}},
	"/apis": map[string]any{"kind": "APIGroupList", "apiVersion": "v1", "groups": []any{map[string]any{
		"name":             GroupVersion.Group,
		"versions":         []any{map[string]any{"groupVersion": GroupVersion.String(), "version": GroupVersion.Version}},
		"preferredVersion": map[string]any{"groupVersion": GroupVersion.String(), "version": GroupVersion.Version},
	}}},
	"/api/v1": map[string]any{"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1", "resources": []any{
		fakeAPIResource("configmaps", "ConfigMap"),
	}},
	"/apis/" + GroupVersion.String(): map[string]any{"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": GroupVersion.String(), "resources": []any{
		fakeAPIResource("widgets", "Widget"), fakeAPIResource("widgets/status", "Widget"),
	}},
}

func fakeAPIResource(name, kind string) map[string]any {
	return map[string]any{"name": name, "singularName": strings.ToLower(kind), "namespaced": true, "kind": kind,
		"verbs": []string{"get", "list", "watch", "create", "update", "patch", "delete"}}
}
