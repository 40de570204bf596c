package node

import (
	"bytes"
	"context"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/emulate/sysfstree"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// writesOf returns the "would write" lines of a dry run, with the root cut off.
func writesOf(root, out string) []string {
	var w []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "would write ") {
			w = append(w, strings.ReplaceAll(l, root+"/", ""))
		}
	}
	return w
}

func TestSetupDryRun(t *testing.T) {
	const pf0 = "bus/pci/devices/0000:81:00.0/sriov_numvfs"
	for _, tc := range []struct {
		name   string
		have   int
		want   int
		driver string
		writes []string
		say    string
	}{
		{name: "0 to 8", have: 0, want: 8, writes: []string{`would write "8" to ` + pf0}, say: "each new VF netdev"},
		{name: "8 to 4 goes through 0", have: 8, want: 4, writes: []string{`would write "0" to ` + pf0, `would write "4" to ` + pf0}},
		{name: "4 to 4 does nothing", have: 4, want: 4, say: "already 4 VFs"},
		{name: "8 to 0", have: 8, want: 0, writes: []string{`would write "0" to ` + pf0}},
		{name: "rebind to vfio-pci", have: 2, want: 2, driver: vf.DriverVFIO, writes: []string{
			`would write "vfio-pci" to bus/pci/devices/0000:81:01.0/driver_override`,
			`would write "0000:81:01.0" to bus/pci/devices/0000:81:01.0/driver/unbind`,
			`would write "0000:81:01.0" to bus/pci/drivers/vfio-pci/bind`,
			`would write "vfio-pci" to bus/pci/devices/0000:81:01.4/driver_override`,
			`would write "0000:81:01.4" to bus/pci/devices/0000:81:01.4/driver/unbind`,
			`would write "0000:81:01.4" to bus/pci/drivers/vfio-pci/bind`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tree, err := sysfstree.Build(t.TempDir(), sysfstree.Options{}, sysfstree.Adapter{VFs: [4]int{tc.have}})
			if err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, tree)
			var out bytes.Buffer
			err = Setup(context.Background(), SetupConfig{Sysfs: tree.Root, PF: 0, VFs: tc.want, MTU: 9000, Driver: tc.driver, DryRun: true}, &out)
			if err != nil {
				t.Fatalf("Setup: %v\n%s", err, out.String())
			}
			if diff := cmp.Diff(tc.writes, writesOf(string(tree.Root), out.String())); diff != "" {
				t.Errorf("Setup() writes mismatch (-want +got):\n%s\noutput:\n%s", diff, out.String())
			}
			if tc.say != "" && !strings.Contains(out.String(), tc.say) {
				t.Errorf("output lacks %q:\n%s", tc.say, out.String())
			}
			if !strings.Contains(out.String(), "would set mtu 9000 on enp129s0") {
				t.Errorf("output lacks the port MTU:\n%s", out.String())
			}
			if diff := cmp.Diff(before, snapshot(t, tree)); diff != "" {
				t.Errorf("dry run changed the tree (-before +after):\n%s", diff)
			}
		})
	}
}

func snapshot(t *testing.T, tree *sysfstree.Tree) map[string]string {
	t.Helper()
	n, err := vf.Discover(tree.Root, vf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, v := range n.VFs() {
		m[v.Addr.String()] = v.Driver + " " + v.Netdev
	}
	for _, a := range n.Adapters {
		for _, p := range a.PFs {
			s, _ := tree.Root.ReadString("bus/pci/devices/" + p.Addr.String() + "/sriov_numvfs")
			m[p.Addr.String()] = s
		}
	}
	return m
}

func TestSetupErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		adapter sysfstree.Adapter
		change  func(*sysfstree.Tree) error
		cfg     SetupConfig
		want    string
	}{
		{name: "PF4", cfg: SetupConfig{PF: 4, VFs: 4}, want: "PF4 has no SR-IOV"},
		{name: "PF5", cfg: SetupConfig{PF: 5, VFs: 4}, want: "PF5 has no SR-IOV"},
		{name: "too many", cfg: SetupConfig{VFs: 20}, want: "more than its sriov_totalvfs 16 (ERANGE)"},
		{name: "no PF4", adapter: sysfstree.Adapter{NoPF4: true}, cfg: SetupConfig{VFs: 4}, want: "PF4 0000:81:00.4 is not up: load cxgb4 and bring its ports up first"},
		{name: "PF4 without ports", change: func(tr *sysfstree.Tree) error {
			for _, p := range tr.Adapters[0].Ports {
				if err := tr.RemoveNetdev(tr.Adapters[0].PF4, p.Name); err != nil {
					return err
				}
			}
			return nil
		}, cfg: SetupConfig{VFs: 4}, want: "PF4 0000:81:00.4 is not up: load cxgb4 and bring its ports up first"},
		{
			name:   "PF4 unbound",
			change: func(tr *sysfstree.Tree) error { return tr.Bind(tr.Adapters[0].PF4, "") },
			cfg:    SetupConfig{VFs: 4}, want: "PF4 0000:81:00.4 is not up",
		},
		{
			name:   "PF0 unbound",
			change: func(tr *sysfstree.Tree) error { return tr.Bind(tr.Adapters[0].PFs[0], "") },
			cfg:    SetupConfig{VFs: 4}, want: "PF0 0000:81:00.0 is not bound to cxgb4",
		},
		{name: "unknown slot", cfg: SetupConfig{Adapter: "0000:05:00", VFs: 4}, want: "no Chelsio adapter in slot 0000:05:00"},
		{name: "bad driver", cfg: SetupConfig{VFs: 4, Driver: "igb"}, want: `invalid driver "igb"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tree, err := sysfstree.Build(t.TempDir(), sysfstree.Options{}, tc.adapter)
			if err != nil {
				t.Fatal(err)
			}
			if tc.change != nil {
				if err := tc.change(tree); err != nil {
					t.Fatal(err)
				}
			}
			tc.cfg.Sysfs = tree.Root
			for _, dry := range []bool{true, false} {
				tc.cfg.DryRun = dry
				var out bytes.Buffer
				err = Setup(context.Background(), tc.cfg, &out)
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("Setup(dry-run %v) = %v, want an error containing %q", dry, err, tc.want)
				}
				if strings.Contains(out.String(), "write") {
					t.Errorf("Setup(dry-run %v) wrote before failing:\n%s", dry, out.String())
				}
			}
			if s, _ := tree.Root.ReadString("bus/pci/devices/0000:81:00.0/sriov_numvfs"); s != "0" {
				t.Errorf("sriov_numvfs = %q after a failed setup, want 0", s)
			}
		})
	}
}

// TestSetupRefusedErrno checks the messages for the kernel's refusals.
func TestSetupRefusedErrno(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{errnoENOTSUPP, "lacks ARI (errno 524)"},
		{syscall.EOPNOTSUPP, "PF4 is not up (EOPNOTSUPP)"},
	} {
		got := refused(vf.MustParsePCIAddr("0000:81:00.0"), 4, tc.err).Error()
		if !strings.Contains(got, tc.want) || !strings.Contains(got, "the kernel refused 4 VFs on PF 0000:81:00.0") {
			t.Errorf("refused(%v) = %q, want it to contain %q", tc.err, got, tc.want)
		}
	}
}

// TestSetupPFWithoutSRIOV: a PF whose firmware config gives it no VFs has no
// sriov_* files. Asking it for VFs is refused with that reason, before any write;
// asking for none is already true.
func TestSetupPFWithoutSRIOV(t *testing.T) {
	for _, tc := range []struct {
		name    string
		vfs     int
		unbind  bool   // the PF has no driver: no matter, without SR-IOV
		wantErr string // "" for success
		say     string
	}{
		{name: "VFs asked", vfs: 4, wantErr: "PF1 0000:81:00.1 has no SR-IOV (no sriov_totalvfs)"},
		{name: "VFs asked of an unbound PF", vfs: 4, unbind: true, wantErr: "PF1 0000:81:00.1 has no SR-IOV (no sriov_totalvfs)"},
		{name: "no VFs asked", vfs: 0, say: "PF1 0000:81:00.1: already 0 VFs"},
		{name: "no VFs asked of an unbound PF", vfs: 0, unbind: true, say: "PF1 0000:81:00.1: already 0 VFs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tree, err := sysfstree.Build(t.TempDir(), sysfstree.Options{}, sysfstree.Adapter{})
			if err != nil {
				t.Fatal(err)
			}
			dir, err := tree.FunctionDir(tree.Adapters[0].PFs[1])
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{"sriov_totalvfs", "sriov_numvfs", "sriov_offset", "sriov_stride", "sriov_drivers_autoprobe", "sriov_vf_device"} {
				if err := os.Remove(tree.Root.Path(dir, f)); err != nil {
					t.Fatal(err)
				}
			}
			if tc.unbind {
				if err := tree.Bind(tree.Adapters[0].PFs[1], ""); err != nil {
					t.Fatal(err)
				}
			}
			for _, dry := range []bool{true, false} {
				var out bytes.Buffer
				err := Setup(context.Background(), SetupConfig{Sysfs: tree.Root, PF: 1, VFs: tc.vfs, DryRun: dry}, &out)
				switch {
				case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
					t.Errorf("Setup(dry-run %v) = %v, want an error containing %q", dry, err, tc.wantErr)
				case tc.wantErr == "" && err != nil:
					t.Errorf("Setup(dry-run %v) = %v, want success", dry, err)
				}
				if strings.Contains(out.String(), "write") {
					t.Errorf("Setup(dry-run %v) wrote:\n%s", dry, out.String())
				}
				if tc.say != "" && !strings.Contains(out.String(), tc.say) {
					t.Errorf("Setup(dry-run %v) output lacks %q:\n%s", dry, tc.say, out.String())
				}
			}
		})
	}
}
