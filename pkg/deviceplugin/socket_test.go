package deviceplugin_test

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/chelsio-k8s/chelsio-sriov/internal/kubelettest"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/deviceplugin"
)

// TestSocketModeIgnoresUmask runs the plugin under umask 0: its socket, served at
// start and served again after it was removed, must still be the owner's alone
// (0600), or any local user could Allocate devices.
func TestSocketModeIgnoresUmask(t *testing.T) {
	old := unix.Umask(0)
	t.Cleanup(func() { unix.Umask(old) })
	h := start(t, deviceplugin.DeviceTree{"chelsio.com/vf": twoNUMATwoPorts("chelsio.com", "vf")})
	wait(t, h.kubelet, "listed", func(p map[string]*kubelettest.Plugin) bool {
		return p["chelsio.com/vf"] != nil && p["chelsio.com/vf"].Lists > 0
	})
	p, _ := h.kubelet.Snapshot("chelsio.com/vf")
	socket := filepath.Join(h.kubelet.Dir, p.Endpoint)
	checkMode := func(when string) {
		t.Helper()
		st, err := os.Lstat(socket)
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		if st.Mode().Type() != os.ModeSocket || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %s has mode %v, want a socket with 0600", when, socket, st.Mode())
		}
	}
	checkMode("at start")

	if err := os.Remove(socket); err != nil {
		t.Fatal(err)
	}
	registeredAgain(t, h.kubelet, "chelsio.com/vf")
	checkMode("served again")
}
