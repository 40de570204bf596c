// Package roottest gates tests that need root (network namespaces, mounts). Such
// tests are named TestPrivileged… and call Require first: outside CI they skip when
// not root; in CI (CI=true), which runs as root, a missing privilege is a failure,
// so that no privileged test can pass by skipping.
package roottest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
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

// RemoveNetns deletes a named network namespace that a test made (a bind mount
// of the namespace, as testutils.NewNS and ip netns add make): it closes n, then
// detaches the mount and removes its file. The detach is lazy: a plain unmount
// fails with EBUSY while anything (an emulated node's watcher looking through
// every namespace) has the file open for a moment, and would leave the namespace
// behind.
func RemoveNetns(n interface {
	Path() string
	Close() error
},
) error {
	path := n.Path()
	_ = n.Close()
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// ScratchNetns makes a new, unnamed network namespace that lives until the test
// ends, and returns a path that opens it (/proc/self/fd/N), for setns(2) and the
// *At functions that take a namespace path. The calling goroutine's namespace is
// left unchanged.
func ScratchNetns(t testing.TB) string {
	t.Helper()
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer orig.Close()
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("new netns: %v", err)
	}
	ns, nsErr := os.Open("/proc/thread-self/ns/net")
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread stays locked in the new namespace; the runtime discards it.
		t.Fatalf("return to the original netns: %v", err)
	}
	runtime.UnlockOSThread()
	if nsErr != nil {
		t.Fatal(nsErr)
	}
	t.Cleanup(func() { _ = ns.Close() })
	return fmt.Sprintf("/proc/self/fd/%d", ns.Fd())
}
