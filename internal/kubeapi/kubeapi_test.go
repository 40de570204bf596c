package kubeapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const pools = "/apis/whereabouts.cni.cncf.io/v1alpha1/namespaces/kube-system/ippools"

// serve starts a server on the loopback and returns it with its URL.
func serve(t *testing.T) (*Server, string) {
	t.Helper()
	s := New()
	url, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, url
}

// call makes one request and returns the status code, the decoded object and,
// for a failure, the error client-go would make of its metav1.Status.
func call(t *testing.T, method, url, contentType, body string) (int, map[string]any, error) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s %s: Content-Type %q", method, url, ct)
	}
	var obj map[string]any
	if err := json.Unmarshal(b, &obj); err != nil {
		t.Fatalf("%s %s: answer %q: %v", method, url, b, err)
	}
	if resp.StatusCode < 300 {
		return resp.StatusCode, obj, nil
	}
	var st metav1.Status
	if err := json.Unmarshal(b, &st); err != nil || st.Kind != "Status" || int(st.Code) != resp.StatusCode {
		t.Fatalf("%s %s: %d with a body that is not its Status: %s", method, url, resp.StatusCode, b)
	}
	return resp.StatusCode, obj, apierrors.FromObject(&st)
}

func rvOf(t *testing.T, o map[string]any) uint64 {
	t.Helper()
	m, _ := o["metadata"].(map[string]any)
	s, _ := m["resourceVersion"].(string)
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatalf("resourceVersion of %v: %v", o, err)
	}
	return n
}

func pool(name, rv string) string {
	meta := fmt.Sprintf(`"name": %q`, name)
	if rv != "" {
		meta += fmt.Sprintf(`, "resourceVersion": %q`, rv)
	}
	return fmt.Sprintf(`{"apiVersion": "whereabouts.cni.cncf.io/v1alpha1", "kind": "IPPool",
		"metadata": {%s}, "spec": {"range": "198.51.100.0/24", "allocations": {}}}`, meta)
}

// TestVerbs: create, get, list, update and delete, with the errors client-go
// tells apart and a resourceVersion that only grows.
func TestVerbs(t *testing.T) {
	_, url := serve(t)
	code, created, err := call(t, "POST", url+pools, "application/json", pool("net-a", ""))
	if err != nil || code != http.StatusCreated {
		t.Fatalf("create: %d %v", code, err)
	}
	if md := created["metadata"].(map[string]any); md["namespace"] != "kube-system" || md["uid"] == "" {
		t.Errorf("create did not fill the metadata: %v", md)
	}
	if _, _, err := call(t, "POST", url+pools, "application/json", pool("net-a", "")); !apierrors.IsAlreadyExists(err) {
		t.Errorf("second create: %v, want AlreadyExists", err)
	}
	rv1 := rvOf(t, created)
	stale := strconv.FormatUint(rv1, 10)
	_, updated, err := call(t, "PUT", url+pools+"/net-a", "application/json", pool("net-a", stale))
	if err != nil || rvOf(t, updated) <= rv1 {
		t.Fatalf("update: %v, resourceVersion %d after %d", err, rvOf(t, updated), rv1)
	}
	if _, _, err := call(t, "PUT", url+pools+"/net-a", "application/json", pool("net-a", stale)); !apierrors.IsConflict(err) {
		t.Errorf("update from a stale version: %v, want Conflict", err)
	}
	_, got, err := call(t, "GET", url+pools+"/net-a", "", "")
	if err != nil || rvOf(t, got) != rvOf(t, updated) {
		t.Errorf("get: %v %v, want the update", got, err)
	}
	_, list, err := call(t, "GET", url+"/apis/whereabouts.cni.cncf.io/v1alpha1/ippools", "", "")
	if items, _ := list["items"].([]any); err != nil || len(items) != 1 || list["kind"] != "IPPoolList" {
		t.Errorf("list in all namespaces: %v %v, want the one IPPool", list, err)
	}
	if _, _, err := call(t, "DELETE", url+pools+"/net-a", "application/json", `{"preconditions": {"resourceVersion": "1"}}`); !apierrors.IsConflict(err) {
		t.Errorf("delete with a stale precondition: %v, want Conflict", err)
	}
	if _, _, err := call(t, "DELETE", url+pools+"/net-a", "", ""); err != nil {
		t.Errorf("delete: %v", err)
	}
	for _, m := range []string{"GET", "DELETE", "PUT"} {
		if _, _, err := call(t, m, url+pools+"/net-a", "application/json", pool("net-a", "")); !apierrors.IsNotFound(err) {
			t.Errorf("%s after delete: %v, want NotFound", m, err)
		}
	}
}

// TestPatch: a JSON patch whose "test" of the resourceVersion fails is Invalid
// (whereabouts retries on that), one that holds applies; merge patches apply.
func TestPatch(t *testing.T) {
	_, url := serve(t)
	_, created, err := call(t, "POST", url+pools, "application/json", pool("net-a", ""))
	if err != nil {
		t.Fatal(err)
	}
	rv := strconv.FormatUint(rvOf(t, created), 10)
	add := func(rv, offset string) string {
		return fmt.Sprintf(`[{"op": "test", "path": "/metadata/resourceVersion", "value": %q},
			{"op": "test", "path": "/spec/allocations/%s", "value": null},
			{"op": "add", "path": "/spec/allocations/%s", "value": {"id": "c%s"}}]`, rv, offset, offset, offset)
	}
	_, patched, err := call(t, "PATCH", url+pools+"/net-a", "application/json-patch+json", add(rv, "2"))
	if err != nil {
		t.Fatalf("patch at the current version: %v", err)
	}
	if a := patched["spec"].(map[string]any)["allocations"].(map[string]any); a["2"] == nil {
		t.Errorf("patch not applied: %v", patched)
	}
	if _, _, err := call(t, "PATCH", url+pools+"/net-a", "application/json-patch+json", add(rv, "3")); !apierrors.IsInvalid(err) {
		t.Errorf("patch at a stale version: %v, want Invalid", err)
	}
	_, merged, err := call(t, "PATCH", url+pools+"/net-a", "application/merge-patch+json", `{"spec": {"allocations": {"2": null}}}`)
	if err != nil || len(merged["spec"].(map[string]any)["allocations"].(map[string]any)) != 0 {
		t.Errorf("merge patch: %v %v, want no allocations", merged, err)
	}
	if code, _, err := call(t, "PATCH", url+pools+"/net-a", "application/strategic-merge-patch+json", `{}`); code != http.StatusUnsupportedMediaType || err == nil {
		t.Errorf("strategic merge patch: %d %v, want 415", code, err)
	}
	if _, _, err := call(t, "PATCH", url+pools+"/net-a", "application/json-patch+json", `[{"op": "replace", "path": "/metadata/name", "value": "b"}]`); !apierrors.IsInvalid(err) {
		t.Errorf("patch renaming the object: %v, want Invalid", err)
	}
}

// TestConcurrentPatches: writers that each add their own allocation with a
// "test" of the version they read, and retry when it fails, all land: no
// update is lost and none applies over another.
func TestConcurrentPatches(t *testing.T) {
	s, url := serve(t)
	if _, _, err := call(t, "POST", url+pools, "application/json", pool("net-a", "")); err != nil {
		t.Fatal(err)
	}
	const writers = 16
	var wg sync.WaitGroup
	conflicts := make([]int, writers)
	for i := range writers {
		wg.Go(func() {
			for {
				_, cur, err := call(t, "GET", url+pools+"/net-a", "", "")
				if err != nil {
					t.Error(err)
					return
				}
				p := fmt.Sprintf(`[{"op": "test", "path": "/metadata/resourceVersion", "value": "%d"},
					{"op": "add", "path": "/spec/allocations/%d", "value": {"id": "w%d"}}]`, rvOf(t, cur), i, i)
				_, _, err = call(t, "PATCH", url+pools+"/net-a", "application/json-patch+json", p)
				if !apierrors.IsInvalid(err) {
					if err != nil {
						t.Error(err)
					}
					return
				}
				conflicts[i]++
			}
		})
	}
	wg.Wait()
	o, _ := s.Get("whereabouts.cni.cncf.io", "ippools", "kube-system", "net-a")
	if got := len(o["spec"].(map[string]any)["allocations"].(map[string]any)); got != writers {
		t.Errorf("%d allocations after %d writers: %v", got, writers, o)
	}
	total := 0
	for _, c := range conflicts {
		total += c
	}
	t.Logf("%d writers, %d patches refused as stale and retried", writers, total)
}

// TestBadRequests: what is not a call of the API gets one clear Status.
func TestBadRequests(t *testing.T) {
	_, url := serve(t)
	for _, c := range []struct {
		method, path, body string
		is                 func(error) bool
	}{
		{"GET", "/healthz", "", apierrors.IsNotFound},
		{"GET", pools + "/net-a/status", "", apierrors.IsNotFound},
		{"POST", pools, "not json", apierrors.IsBadRequest},
		{"POST", pools, `{"metadata": {}}`, apierrors.IsInvalid},
		{"POST", pools, `{"metadata": {"name": "a", "namespace": "other"}}`, apierrors.IsBadRequest},
		{"POST", pools + "/net-a", pool("net-a", ""), apierrors.IsMethodNotSupported},
		{"PATCH", pools + "/net-a", `[]`, apierrors.IsNotFound},
	} {
		if _, _, err := call(t, c.method, url+c.path, "application/json-patch+json", c.body); !c.is(err) {
			t.Errorf("%s %s %q: %v", c.method, c.path, c.body, err)
		}
	}
}

// TestKubeconfig: the kubeconfig names the server and the namespace in its
// current context.
func TestKubeconfig(t *testing.T) {
	var cfg struct {
		Current  string `json:"current-context"`
		Clusters []struct {
			Name    string
			Cluster struct{ Server string }
		}
		Contexts []struct {
			Name    string
			Context struct{ Cluster, Namespace string }
		}
	}
	if err := json.Unmarshal(Kubeconfig("http://127.0.0.1:1", "kube-system"), &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Contexts) != 1 || cfg.Contexts[0].Name != cfg.Current || cfg.Contexts[0].Context.Namespace != "kube-system" ||
		len(cfg.Clusters) != 1 || cfg.Clusters[0].Name != cfg.Contexts[0].Context.Cluster || cfg.Clusters[0].Cluster.Server != "http://127.0.0.1:1" {
		t.Errorf("kubeconfig: %+v", cfg)
	}
}
