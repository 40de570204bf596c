package emulate

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/sysfs"
)

// BindTargets are the real sysfs directories that Exec covers with the worker's tree.
var BindTargets = []string{"bus/pci/devices", "bus/pci/drivers", "class/net"}

// Exec replaces the calling process with argv, run as if on worker w: in the
// worker's network namespace, with $CHELSIO_SYSFS_ROOT set to its tree, and, in a
// private mount namespace, the tree's bus/pci/devices, bus/pci/drivers and class/net
// bind-mounted over the real ones, so that programs reading fixed /sys paths see the
// emulated adapter too. It returns only on failure.
func Exec(w *Worker, argv []string, env []string) error {
	if len(argv) == 0 {
		return fmt.Errorf("exec: no command given")
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return err
	}
	// Namespaces belong to threads: stay on this one until exec replaces the process.
	runtime.LockOSThread()
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("exec: new mount namespace: %w", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("exec: make mounts private: %w", err)
	}
	for _, rel := range BindTargets {
		src, dst := w.Root().Path(rel), sysfs.DefaultRoot.Path(rel)
		if err := unix.Mount(src, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("exec: bind %s over %s: %w", src, dst, err)
		}
	}
	ns, err := netns.GetFromPath(w.NetnsPath())
	if err != nil {
		return fmt.Errorf("exec: open netns %s: %w", w.Netns, err)
	}
	if err := netns.Set(ns); err != nil {
		return fmt.Errorf("exec: enter netns %s: %w", w.Netns, err)
	}
	env = append(env, sysfs.EnvRoot+"="+w.Sysfs, "CHELSIO_EMULATED_WORKER="+fmt.Sprint(w.Index))
	return syscall.Exec(path, argv, env)
}

// Environ returns os.Environ without the variables Exec sets.
func Environ() []string {
	var out []string
	for _, kv := range os.Environ() {
		if len(kv) >= len(sysfs.EnvRoot)+1 && kv[:len(sysfs.EnvRoot)+1] == sysfs.EnvRoot+"=" {
			continue
		}
		out = append(out, kv)
	}
	return out
}
