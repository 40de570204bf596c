package vf

import (
	"os"
	"regexp"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/sysfs"
)

// The emulation contract (docs/emulation.md): the only two conventions by which an
// emulated node differs from a real one, and the one test that decides whether a
// sysfs root is emulated. Nothing else in the binaries knows about emulation.

// EmulatedMarker is the directory at the root of an emulated sysfs tree (package
// sysfstree, the emulated node) that marks it as emulated: VF settings then go to
// EmulatedMgmt, and VF netdevs carry their PCI address in an alternative name
// (EmulatedAltNameAddr). The kernel's sysfs never has it.
const EmulatedMarker = "chelsio-emulated"

// sysfsMagic is the kernel's SYSFS_MAGIC, the f_type statfs(2) reports for sysfs.
const sysfsMagic = 0x62656572

// Emulated reports whether root is an emulated sysfs tree: it holds the
// EmulatedMarker directory and is not on a sysfs mount. A root on sysfs is never
// emulated, whatever it holds, so that no emulator convention is ever honoured
// on a real node; and only the node administrator chooses the root (the
// CHELSIO_SYSFS_ROOT environment variable, --sysfs-root), never a network config.
func Emulated(root sysfs.Root) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(root.Path(), &st); err != nil || int64(st.Type) == sysfsMagic {
		return false
	}
	fi, err := os.Lstat(root.Path(EmulatedMarker))
	return err == nil && fi.IsDir()
}

// emulatedAltRE is the form of an emulated VF netdev's alternative name:
// <anything>-w<worker>.<domain>.<bus>.<device>.<function>, the PCI address with '.'
// for ':' (an alternative name cannot hold ':').
// Compiled at first use: a real node never needs it.
var emulatedAltRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`-w[0-9]+\.([0-9a-f]{4,5})\.([0-9a-f]{2})\.([0-9a-f]{2})\.([0-7])$`)
})

// EmulatedAltNameAddr returns the PCI address that an alternative name of an
// emulated VF netdev carries, and false for a name of another form. Callers honour
// it only when Emulated(root) holds, and never alone for a netdev in a pod's
// namespace, where the pod can add alternative names of its own.
func EmulatedAltNameAddr(altName string) (PCIAddr, bool) {
	m := emulatedAltRE().FindStringSubmatch(altName)
	if m == nil {
		return PCIAddr{}, false
	}
	a, err := ParsePCIAddr(m[1] + ":" + m[2] + ":" + m[3] + "." + m[4])
	if err != nil {
		return PCIAddr{}, false
	}
	return a, true
}
