// Package kubeapi is a stand-in for the Kubernetes API server, for the demo and
// the end-to-end tests: a store of namespaced JSON objects of any group and
// resource, served over HTTP with the verbs client-go uses (get, list, create,
// update, delete, JSON and merge patch), the resourceVersion checks that make
// optimistic concurrency work, and metav1.Status errors with the reasons that
// client-go's errors.IsNotFound, IsAlreadyExists, IsConflict and IsInvalid test.
//
// It knows no schema, validates nothing but names and versions, and has no
// watch, authentication, defaulting or subresources. Nothing that ships
// imports it.
package kubeapi

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
)

// Server holds the objects and serves them on any number of listeners.
type Server struct {
	mu    sync.Mutex
	rv    uint64                           // the last resourceVersion given
	objs  map[collection]map[string]object // by collection, then namespace/name
	kinds map[collection]string            // the kind of a collection's objects, as created
	srv   *http.Server
}

// collection is one resource of one group; version and namespace are not part of it.
type collection struct{ group, resource string }

// object is one stored object, decoded.
type object = map[string]any

// New returns an empty server; Listen or ListenIn serve it.
func New() *Server {
	s := &Server{objs: map[collection]map[string]object{}, kinds: map[collection]string{}}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	return s
}

// Listen serves the store on a free port of 127.0.0.1 in the caller's network
// namespace and returns its URL.
func (s *Server) Listen() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("kube API stand-in: listen: %w", err)
	}
	go func() { _ = s.srv.Serve(l) }()
	return "http://" + l.Addr().String(), nil
}

// ListenIn serves the store on a free port of 127.0.0.1 in the network namespace
// at netnsPath (whose loopback must be up), for programs that run there, and
// returns the URL they reach it at. The server itself runs in the caller's
// namespace: a socket stays in the namespace it was made in.
func (s *Server) ListenIn(netnsPath string) (string, error) {
	var url string
	err := ns.WithNetNSPath(netnsPath, func(ns.NetNS) error {
		var err error
		url, err = s.Listen()
		return err
	})
	if err != nil {
		return "", fmt.Errorf("kube API stand-in in %s: %w", netnsPath, err)
	}
	return url, nil
}

// Close stops serving on every listener.
func (s *Server) Close() { _ = s.srv.Close() }

// Kubeconfig returns a kubeconfig (JSON, which is YAML) whose current context
// reaches server with no credentials, in the given namespace.
func Kubeconfig(server, namespace string) []byte {
	cfg := map[string]any{
		"apiVersion": "v1", "kind": "Config", "current-context": "stand-in",
		"clusters": []any{map[string]any{"name": "stand-in", "cluster": map[string]any{"server": server}}},
		"users":    []any{map[string]any{"name": "stand-in", "user": map[string]any{}}},
		"contexts": []any{map[string]any{"name": "stand-in", "context": map[string]any{
			"cluster": "stand-in", "user": "stand-in", "namespace": namespace,
		}}},
	}
	b, _ := json.Marshal(cfg) // maps of strings always marshal
	return b
}

// Get returns a copy of one object, or false if there is none.
func (s *Server) Get(group, resource, namespace, name string) (map[string]any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.objs[collection{group, resource}][key(namespace, name)]
	if !ok {
		return nil, false
	}
	return clone(o), true
}

// List returns copies of a collection's objects in a namespace ("": in all),
// sorted by namespace and name.
func (s *Server) List(group, resource, namespace string) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.list(collection{group, resource}, namespace)
}

func (s *Server) list(c collection, namespace string) []map[string]any {
	keys := make([]string, 0, len(s.objs[c]))
	for k, o := range s.objs[c] {
		if namespace == "" || metaString(o, "namespace") == namespace {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	out := make([]map[string]any, 0, len(keys))
	for _, k := range keys {
		out = append(out, clone(s.objs[c][k]))
	}
	return out
}

func key(namespace, name string) string { return namespace + "/" + name }

// nextRV returns a new resourceVersion, greater than every one before.
func (s *Server) nextRV() string {
	s.rv++
	return strconv.FormatUint(s.rv, 10)
}

// clone deep-copies an object through JSON, which is what it came from.
func clone(o object) object {
	b, _ := json.Marshal(o) // decoded JSON always marshals
	var c object
	_ = json.Unmarshal(b, &c)
	return c
}

// meta returns the object's metadata, made if it has none.
func meta(o object) map[string]any {
	m, ok := o["metadata"].(map[string]any)
	if !ok {
		m = map[string]any{}
		o["metadata"] = m
	}
	return m
}

// metaString is a string field of the metadata, "" if absent or not a string.
func metaString(o object, field string) string {
	m, _ := o["metadata"].(map[string]any)
	v, _ := m[field].(string)
	return v
}

// newUID returns a random UUID (version 4).
func newUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
