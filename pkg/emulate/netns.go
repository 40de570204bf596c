package emulate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// createNetns makes a named network namespace under /run/netns (as `ip netns add`)
// and brings its loopback up. The calling goroutine's namespace is left unchanged.
func createNetns(name string) error {
	if _, err := os.Stat(netnsPath(name)); err == nil {
		return fmt.Errorf("create netns %s: %w", name, fs.ErrExist)
	}
	h, err := newNetns("netns "+name, func() (netns.NsHandle, error) { return netns.NewNamed(name) })
	if err != nil {
		return err
	}
	h.Close() // the namespace lives on under its name
	return setUp(name, "lo")
}

// deleteNetns removes a named namespace (as `ip netns del`); a missing one is fine.
func deleteNetns(name string) error {
	if _, err := os.Stat(netnsPath(name)); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err := netns.DeleteNamed(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete netns %s: %w", name, err)
	}
	return nil
}

// handleAt opens a netlink handle inside a named namespace.
func handleAt(name string) (*netlink.Handle, netns.NsHandle, error) {
	ns, err := netns.GetFromPath(netnsPath(name))
	if err != nil {
		return nil, netns.None(), fmt.Errorf("open netns %s: %w", name, err)
	}
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		ns.Close()
		return nil, netns.None(), fmt.Errorf("netlink in netns %s: %w", name, err)
	}
	return h, ns, nil
}

// scratchNetns makes a new, unnamed network namespace that lives only as long as the
// returned handle (and whatever a caller moves out of it before closing it). The
// calling goroutine's namespace is left unchanged.
func scratchNetns() (netns.NsHandle, error) {
	return newNetns("scratch netns", netns.New)
}

// newNetns runs create, which makes a network namespace and moves the calling
// thread into it (netns.New, netns.NewNamed), on a locked thread that it then moves
// back. what names the namespace in errors.
func newNetns(what string, create func() (netns.NsHandle, error)) (netns.NsHandle, error) {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return netns.None(), fmt.Errorf("create %s: %w", what, err)
	}
	defer orig.Close()
	h, err := create()
	if setErr := netns.Set(orig); setErr != nil {
		// The thread is in the wrong namespace: keep it locked so that the runtime
		// discards it when the goroutine ends.
		if err == nil {
			h.Close()
		}
		return netns.None(), errors.Join(err, fmt.Errorf("return to the original netns: %w", setErr))
	}
	runtime.UnlockOSThread()
	if err != nil {
		return netns.None(), fmt.Errorf("create %s: %w", what, err)
	}
	return h, nil
}
