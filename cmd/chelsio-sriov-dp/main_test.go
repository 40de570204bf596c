package main

import (
	"bytes"
	"context"
	"net"
	"regexp"
	"testing"
)

// TestMetricsAddressDefaultsToLoopback: /metrics and /healthz describe the node's
// devices, so without --metrics-address only the node itself may reach them.
func TestMetricsAddressDefaultsToLoopback(t *testing.T) {
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"-h"}, &stderr); code != 2 {
		t.Fatalf("run -h = %d, want 2", code)
	}
	m := regexp.MustCompile(`-metrics-address string\n[^\n]*\(default "([^"]*)"\)`).FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("no default of --metrics-address in the help:\n%s", stderr.String())
	}
	host, _, err := net.SplitHostPort(m[1])
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		t.Errorf("--metrics-address defaults to %q, want a loopback address and a port", m[1])
	}
}
