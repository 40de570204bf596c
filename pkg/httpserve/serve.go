// Package httpserve serves the binaries' /metrics and /healthz on the address an
// operator gives, as the DaemonSets give it: often the node's address from the
// downward API, which for IPv6 comes without brackets.
package httpserve

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
)

// Address turns what --metrics-address says into an address net.Listen takes:
// "host:port" and "[v6]:port" as they are, and a bare IPv6 address followed by
// ":port" ("fd00::5:29100", what "$(HOST_IP):29100" gives on an IPv6 node)
// bracketed. Anything else is an error that names the value.
func Address(s string) (string, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		i := strings.LastIndexByte(s, ':')
		if i < 0 || strings.ContainsAny(s, "[]") || net.ParseIP(s[:i]) == nil {
			return "", fmt.Errorf("%q is not host:port (e.g. 127.0.0.1:29100, :29100, [fd00::5]:29100)", s)
		}
		host, port = s[:i], s[i+1:]
	}
	if _, err := net.LookupPort("tcp", port); err != nil || port == "" {
		return "", fmt.Errorf("%q: port %q is not a port number", s, port)
	}
	return net.JoinHostPort(host, port), nil
}

// Serve listens on addr (see Address) and serves h there until stop is called. It
// returns the address it listens on (the port chosen when addr's is 0).
func Serve(addr string, h http.Handler) (bound string, stop func(), err error) {
	a, err := Address(addr)
	if err != nil {
		return "", nil, err
	}
	l, err := net.Listen("tcp", a)
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	return l.Addr().String(), func() { _ = srv.Close() }, nil
}

// Health adds the probes' endpoints to mux: /healthz, 200 "ok" while ready returns
// nil and 503 with its error otherwise (nil ready: always 200), for startup and
// readiness; and /livez, 200 "ok" whenever the process answers, for liveness: a
// binary that is waiting for something outside it (kubelet restarting, the API
// server away) is alive, and restarting it would not bring that back.
func Health(mux *http.ServeMux, ready func() error) {
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if ready != nil {
			if err := ready(); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/livez", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
}
