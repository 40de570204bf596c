// Package roottest gates tests that need root (network namespaces, mounts). Such
// tests are named TestPrivileged… and call Require first: outside CI they skip when
// not root; in CI (CI=true), which runs as root, a missing privilege is a failure,
// so that no privileged test can pass by skipping.
package roottest

import (
	"os"
	"os/exec"
	"testing"
)

// Require skips the test unless it runs as root, or fails it when $CI is set.
func Require(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal("this test needs root; CI must run as root (CI is set, so it may not skip)")
	}
	t.Skip("needs root (network namespaces and mounts); run `sudo make test`")
}

// Tool returns the path of a program the test needs: outside CI a missing one
// skips the test; in CI, whose script installs every such program, it fails it.
func Tool(t testing.TB, name, install string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed; CI must install it (%s)", name, install)
	}
	t.Skipf("needs %s: %s", name, install)
	return ""
}
