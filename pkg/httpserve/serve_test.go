package httpserve

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestAddress(t *testing.T) {
	for _, tt := range []struct{ in, want, err string }{
		{in: "127.0.0.1:29100", want: "127.0.0.1:29100"},
		{in: ":29100", want: ":29100"},
		{in: "[fd00::5]:29100", want: "[fd00::5]:29100"},
		{in: "fd00::5:29100", want: "[fd00::5]:29100"},
		{in: "node1.example:29100", want: "node1.example:29100"},
		{in: "127.0.0.1", err: `"127.0.0.1" is not host:port`},
		{in: "fd00::5", err: `is not host:port`},
		{in: "1.2.3.4:http-alt-nope", err: `port "http-alt-nope" is not a port number`},
		{in: "127.0.0.1:", err: `port "" is not a port number`},
		{in: "[fd00::5:29100", err: "is not host:port"},
	} {
		got, err := Address(tt.in)
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("Address(%q) = %q, %v; want an error with %q", tt.in, got, err, tt.err)
		case tt.err == "" && (err != nil || got != tt.want):
			t.Errorf("Address(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestServe(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	addr, stop, err := Serve("127.0.0.1:0", h)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if string(b) != "ok\n" {
		t.Errorf("served %q", b)
	}
	stop()
	if _, err := http.Get("http://" + addr + "/healthz"); err == nil {
		t.Error("still served after stop")
	}
	if _, _, err := Serve("127.0.0.1:bad", h); err == nil {
		t.Error("Serve took a bad port")
	}
}

// TestHealth: /healthz follows ready (503 with its error); /livez answers 200
// whatever ready says: liveness must not restart a binary that only waits.
func TestHealth(t *testing.T) {
	for _, tt := range []struct {
		name        string
		ready       func() error
		healthz     int
		healthzSays string
	}{
		{"no readiness", nil, http.StatusOK, "ok"},
		{"ready", func() error { return nil }, http.StatusOK, "ok"},
		{"not ready", func() error { return errors.New("chelsio.com/vf is not registered with kubelet") }, http.StatusServiceUnavailable, "chelsio.com/vf is not registered with kubelet"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mux := http.NewServeMux()
			Health(mux, tt.ready)
			for _, c := range []struct {
				path string
				code int
				says string
			}{{"/healthz", tt.healthz, tt.healthzSays}, {"/livez", http.StatusOK, "ok"}} {
				rec := httptest.NewRecorder()
				mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, c.path, nil))
				if rec.Code != c.code || !strings.Contains(rec.Body.String(), c.says) {
					t.Errorf("GET %s = %d %q, want %d with %q", c.path, rec.Code, rec.Body.String(), c.code, c.says)
				}
			}
		})
	}
}
