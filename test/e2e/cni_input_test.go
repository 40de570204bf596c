package e2e

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/chelsio-k8s/chelsio-sriov/internal/roottest"
	"github.com/chelsio-k8s/chelsio-sriov/internal/treesnap"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/emulate/sysfstree"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/sysfs"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

const (
	inputVF = "0000:81:01.0"
	// nonChelsio is an Intel function the test adds to worker 1's tree.
	nonChelsio = "0000:82:00.0"
)

// TestPrivilegedCNIRefusesBadInput feeds bad input to the real binary through libcni
// and checks each refusal: a *types.Error with the right code and a one-line
// message naming the key, and nothing touched: the VF still in its worker as it was
// (name, MTU, MAC, admin state), no net1 in the pod, no lease, no file in dataDir,
// and nothing changed in the scratch directory that hostile layouts live in
// (dataDir and logFile through symbolic links, planted state files and locks).
func TestPrivilegedCNIRefusesBadInput(t *testing.T) {
	roottest.Require(t)
	node := upNode(t, "--vfs", "2")
	// A non-Chelsio PCI function in worker 1's tree.
	tree := &sysfstree.Tree{Root: sysfs.Root(filepath.Join(node.runDir, node.name, "w1", "sys")), Opts: sysfstree.Options{AbsoluteLinks: true}}
	if err := tree.AddFunction(sysfstree.Function{Addr: vf.MustParsePCIAddr(nonChelsio), Vendor: 0x8086, Device: 0x154c, Driver: ""}); err != nil {
		t.Fatal(err)
	}

	type setup struct {
		deviceID    string
		over        map[string]any
		ifName      string
		containerID string
		capArgs     map[string]any // the runtime's capability arguments
		// layout makes a hostile layout under scratch and returns keys to merge into
		// the config (dataDir, logFile).
		layout func(t *testing.T, scratch string) map[string]any
	}
	kib4 := strings.Repeat("a", 4096)
	tests := []struct {
		name    string
		in      setup
		code    uint
		mention []string // the message names these
	}{
		{"unknown deviceID", setup{deviceID: "0000:81:09.0"}, types.ErrInvalidNetworkConfig, []string{"deviceID", "0000:81:09.0"}},
		{"non-Chelsio deviceID", setup{deviceID: nonChelsio}, types.ErrInvalidNetworkConfig, []string{"deviceID", nonChelsio}},
		{"deviceID of a PF", setup{deviceID: "0000:81:00.0"}, types.ErrInvalidNetworkConfig, []string{"deviceID", "0000:81:00.0"}},
		{"bad mac", setup{over: map[string]any{"mac": "0a:58:c6:33:64:zz"}}, types.ErrInvalidNetworkConfig, []string{`"mac"`}},
		{"multicast mac", setup{over: map[string]any{"mac": "01:00:5e:00:00:01"}}, types.ErrInvalidNetworkConfig, []string{`"mac"`}},
		{"vlan 5000", setup{over: map[string]any{"vlan": 5000}}, types.ErrInvalidNetworkConfig, []string{`"vlan"`, "5000"}},
		{"mtu 50", setup{over: map[string]any{"mtu": 50}}, types.ErrInvalidNetworkConfig, []string{`"mtu"`, "50"}},
		{"mtu 9700", setup{over: map[string]any{"mtu": 9700}}, types.ErrInvalidNetworkConfig, []string{`"mtu"`, "9700"}},
		{"vlanQoS 3", setup{over: map[string]any{"vlan": 100, "vlanQoS": 3}}, types.ErrInvalidNetworkConfig, []string{`"vlanQoS"`}},
		{"spoofchk on", setup{over: map[string]any{"spoofchk": "on"}}, types.ErrInvalidNetworkConfig, []string{`"spoofchk"`}},
		{"trust on", setup{over: map[string]any{"trust": "on"}}, types.ErrInvalidNetworkConfig, []string{`"trust"`}},
		{"min_tx_rate 10", setup{over: map[string]any{"min_tx_rate": 10}}, types.ErrInvalidNetworkConfig, []string{`"min_tx_rate"`}},
		{"vlanProto 802.1ad", setup{over: map[string]any{"vlan": 100, "vlanProto": "802.1ad"}}, types.ErrInvalidNetworkConfig, []string{`"vlanProto"`, "802.1ad"}},
		{"link_state bogus", setup{over: map[string]any{"link_state": "bogus"}}, types.ErrInvalidNetworkConfig, []string{`"link_state"`, "bogus"}},
		{"unknown key", setup{over: map[string]any{"vlna": 100}}, types.ErrInvalidNetworkConfig, []string{"vlna"}},
		{"relative dataDir", setup{over: map[string]any{"dataDir": "../x"}}, types.ErrInvalidNetworkConfig, []string{`"dataDir"`, "../x"}},
		{"vlan of the wrong type", setup{over: map[string]any{"vlan": "100"}}, types.ErrDecodingFailure, []string{"vlan"}},
		{"mtu of the wrong type", setup{over: map[string]any{"mtu": 9000.5}}, types.ErrDecodingFailure, []string{"mtu"}},
		// libcni refuses these before it runs the plugin, with the utils package's
		// codes and messages (skel would give the same).
		{"ifname with a slash", setup{ifName: "net1/../x"}, types.ErrInvalidEnvironmentVariables, []string{"interface name"}},
		{"ifname over 15 characters", setup{ifName: "net1234567890123"}, types.ErrInvalidEnvironmentVariables, []string{"interface name"}},
		{"containerID with a slash", setup{containerID: "pod/../x"}, types.ErrInvalidEnvironmentVariables, []string{"containerID"}},
		// What libcni lets through reaches the plugin's own checks.
		{"ifname with a control character", setup{ifName: "net\x01"}, types.ErrInvalidEnvironmentVariables, []string{"CNI_IFNAME", "control character"}},
		{"ifname with a percent sign", setup{ifName: "net%d"}, types.ErrInvalidEnvironmentVariables, []string{"CNI_IFNAME", "'%'"}},
		{"containerID of 4 KiB", setup{containerID: kib4}, types.ErrInvalidEnvironmentVariables, []string{"CNI_CONTAINERID", "4096 bytes"}},
		{"deviceID traversal", setup{deviceID: "../../../../etc/passwd"}, types.ErrInvalidNetworkConfig, []string{`"deviceID"`, "PCI address"}},
		{"deviceID with NUL", setup{deviceID: inputVF + "\x00/x"}, types.ErrInvalidNetworkConfig, []string{`"deviceID"`}},
		{"deviceID with an escape sequence", setup{deviceID: "\x1b[2J" + inputVF}, types.ErrInvalidNetworkConfig, []string{`"deviceID"`}},
		{"deviceID of 4 KiB", setup{deviceID: kib4}, types.ErrInvalidNetworkConfig, []string{`"deviceID"`}},
		{"bad pciBusID behind a good deviceID", setup{over: map[string]any{"pciBusID": "../" + inputVF}}, types.ErrInvalidNetworkConfig, []string{`"pciBusID"`}},
		{"runtimeConfig.deviceID traversal", setup{
			over:    map[string]any{"deviceID": nil, "pciBusID": nil, "capabilities": map[string]any{"deviceID": true}},
			capArgs: map[string]any{"deviceID": "../../../sys/bus/pci/devices/" + inputVF},
		}, types.ErrInvalidNetworkConfig, []string{`"runtimeConfig.deviceID"`}},
		{"dataDir with ..", setup{over: map[string]any{"dataDir": "/var/lib/cni/../../../etc"}}, types.ErrInvalidNetworkConfig, []string{`"dataDir"`, "clean path"}},
		{"dataDir with NUL", setup{over: map[string]any{"dataDir": "/var/lib/x\x00"}}, types.ErrInvalidNetworkConfig, []string{`"dataDir"`, "NUL"}},
		{"dataDir with a newline", setup{over: map[string]any{"dataDir": "/var/lib/x\ny"}}, types.ErrInvalidNetworkConfig, []string{`"dataDir"`, "control character"}},
		{"dataDir of 4 KiB", setup{over: map[string]any{"dataDir": "/" + kib4}}, types.ErrInvalidNetworkConfig, []string{`"dataDir"`, "512 bytes"}},
		{"dataDir /", setup{over: map[string]any{"dataDir": "/"}}, types.ErrInvalidNetworkConfig, []string{`"dataDir"`, "root directory"}},
		{"logFile relative", setup{over: map[string]any{"logFile": "chelsio.log"}}, types.ErrInvalidNetworkConfig, []string{`"logFile"`, "absolute"}},
		{"logFile with ..", setup{over: map[string]any{"logFile": "/var/log/../../etc/shadow"}}, types.ErrInvalidNetworkConfig, []string{`"logFile"`, "clean path"}},
		{"dataDir is a symbolic link", setup{layout: func(t *testing.T, scratch string) map[string]any {
			return map[string]any{"dataDir": linkToDir(t, scratch, "state")}
		}}, types.ErrInvalidNetworkConfig, []string{`"dataDir"`, "symbolic link"}},
		{"dataDir below a symbolic link", setup{layout: func(t *testing.T, scratch string) map[string]any {
			return map[string]any{"dataDir": filepath.Join(linkToDir(t, scratch, "link"), "state")}
		}}, types.ErrInvalidNetworkConfig, []string{`"dataDir"`, "link", "symbolic link"}},
		{"dataDir's locks is a symbolic link", setup{layout: func(t *testing.T, scratch string) map[string]any {
			d := stateDirIn(t, scratch)
			mkdir0700(t, filepath.Join(scratch, "elsewhere"))
			if err := os.Remove(filepath.Join(d, "locks")); err != nil {
				t.Fatal(err)
			}
			symlinkOrFail(t, filepath.Join(scratch, "elsewhere"), filepath.Join(d, "locks"))
			return map[string]any{"dataDir": d}
		}}, types.ErrInvalidNetworkConfig, []string{`"dataDir"`, "locks", "symbolic link"}},
		{"a shared dataDir of mode 0755", setup{layout: func(t *testing.T, scratch string) map[string]any {
			d := stateDirIn(t, scratch)
			if err := os.WriteFile(filepath.Join(d, "other.db"), []byte("not ours"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
			return map[string]any{"dataDir": d}
		}}, types.ErrInvalidNetworkConfig, []string{`"dataDir"`, "0755", "other.db"}},
		{"the attachment's state file is a symbolic link", setup{layout: func(t *testing.T, scratch string) map[string]any {
			d := stateDirIn(t, scratch)
			precious(t, scratch)
			symlinkOrFail(t, filepath.Join(scratch, "precious"), filepath.Join(d, "attachments", "pod-bad_net1.json"))
			return map[string]any{"dataDir": d}
		}}, types.ErrInvalidNetworkConfig, []string{`"dataDir"`, "pod-bad_net1.json", "symbolic link"}},
		{"the VF's lock is a symbolic link", setup{layout: func(t *testing.T, scratch string) map[string]any {
			d := stateDirIn(t, scratch)
			precious(t, scratch)
			symlinkOrFail(t, filepath.Join(scratch, "precious"), filepath.Join(d, "locks", inputVF+".lock"))
			return map[string]any{"dataDir": d}
		}}, types.ErrInvalidNetworkConfig, []string{`"dataDir"`, inputVF + ".lock", "symbolic link"}},
		{"the VF's owner record is a FIFO", setup{layout: func(t *testing.T, scratch string) map[string]any {
			d := stateDirIn(t, scratch)
			if err := unix.Mkfifo(filepath.Join(d, "vfs", inputVF+".json"), 0o600); err != nil {
				t.Fatal(err)
			}
			return map[string]any{"dataDir": d}
		}}, types.ErrInvalidNetworkConfig, []string{`"dataDir"`, inputVF + ".json", "not a regular file"}},
		{"logFile is a symbolic link", setup{layout: func(t *testing.T, scratch string) map[string]any {
			precious(t, scratch)
			symlinkOrFail(t, filepath.Join(scratch, "precious"), filepath.Join(scratch, "chelsio-sriov.log"))
			return map[string]any{"logFile": filepath.Join(scratch, "chelsio-sriov.log")}
		}}, types.ErrInvalidNetworkConfig, []string{`"logFile"`, "symbolic link"}},
		{"logFile's directory is a symbolic link", setup{layout: func(t *testing.T, scratch string) map[string]any {
			return map[string]any{"logFile": filepath.Join(linkToDir(t, scratch, "log"), "chelsio-sriov.log")}
		}}, types.ErrInvalidNetworkConfig, []string{`"logFile"`, "symbolic link"}},
		{"logFile is a FIFO", setup{layout: func(t *testing.T, scratch string) map[string]any {
			if err := unix.Mkfifo(filepath.Join(scratch, "chelsio-sriov.log"), 0o600); err != nil {
				t.Fatal(err)
			}
			return map[string]any{"logFile": filepath.Join(scratch, "chelsio-sriov.log")}
		}}, types.ErrInvalidNetworkConfig, []string{`"logFile"`, "not a regular file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newCNIEnv(t, node)
			before := e.homes(t, 1)
			deviceID := tt.in.deviceID
			if deviceID == "" {
				deviceID = inputVF
			}
			over := map[string]any{"cniVersion": "1.0.0"}
			for k, v := range tt.in.over {
				over[k] = v
			}
			scratch := t.TempDir()
			if tt.in.layout != nil {
				for k, v := range tt.in.layout(t, scratch) {
					over[k] = v
				}
			}
			scratchBefore := treesnap.Of(t, scratch)
			conf := e.conf(1, deviceID, over)
			pod := newPod(t)
			rt := e.rt("pod-bad", pod)
			if tt.in.ifName != "" {
				rt.IfName = tt.in.ifName
			}
			if tt.in.containerID != "" {
				rt.ContainerID = tt.in.containerID
			}
			rt.CapabilityArgs = tt.in.capArgs
			r, err := e.cni(1).AddNetwork(ctx30(t), e.plugin(conf), rt)
			if err == nil {
				t.Fatalf("ADD succeeded: %v", r)
			}
			checkRefusal(t, err, tt.code, tt.mention)

			assertNothingHeld(t, e, pod, before)
			if f := filesUnder(t, e.dataDirs[1]); len(f) != 0 {
				t.Errorf("files in dataDir: %v", f)
			}
			if diff := cmp.Diff(scratchBefore, treesnap.Of(t, scratch)); diff != "" {
				t.Errorf("the refused ADD changed the scratch directory (-before +after):\n%s", diff)
			}
		})
	}

	// The binary's own checks, without libcni's in front: skel refuses a bad
	// CNI_IFNAME or CNI_CONTAINERID before calling the plugin.
	for _, tt := range []struct {
		name, containerID, ifName, mention string
	}{
		{"binary: ifname with a slash", "pod-bad", "net1/../x", "interface name"},
		{"binary: ifname over 15 characters", "pod-bad", "net1234567890123", "interface name"},
		{"binary: containerID with a slash", "pod/../x", "net1", "containerID"},
		// skel lets these through: the plugin refuses them itself.
		{"binary: ifname with a control character", "pod-bad", "net\x7f", "CNI_IFNAME"},
		{"binary: containerID of 4 KiB", kib4, "net1", "CNI_CONTAINERID"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newCNIEnv(t, node)
			before := e.homes(t, 1)
			pod := newPod(t)
			out, err := e.rawExec(t, 1, "ADD", tt.containerID, tt.ifName, pod, e.conf(1, inputVF, map[string]any{"cniVersion": "1.0.0"}))
			if err == nil {
				t.Fatalf("ADD succeeded: %s", out)
			}
			checkRefusal(t, err, types.ErrInvalidEnvironmentVariables, []string{tt.mention})
			if diff := cmp.Diff(before, e.homes(t, 1)); diff != "" {
				t.Errorf("the refused ADD changed the worker's VFs (-before +after):\n%s", diff)
			}
			if f := filesUnder(t, e.dataDirs[1]); len(f) != 0 {
				t.Errorf("files in dataDir: %v", f)
			}
		})
	}
}

// stateDirIn makes a sound state directory under scratch (0700, with its three
// subdirectories) for a test to plant something in.
func stateDirIn(t *testing.T, scratch string) string {
	t.Helper()
	d := filepath.Join(scratch, "state")
	for _, sub := range []string{"", "attachments", "vfs", "locks"} {
		mkdir0700(t, filepath.Join(d, sub))
	}
	return d
}

func mkdir0700(t *testing.T, p string) {
	t.Helper()
	if err := os.Mkdir(p, 0o700); err != nil {
		t.Fatal(err)
	}
}

// linkToDir makes the directory scratch/real and returns scratch/name, a symbolic
// link to it.
func linkToDir(t *testing.T, scratch, name string) string {
	t.Helper()
	mkdir0700(t, filepath.Join(scratch, "real"))
	link := filepath.Join(scratch, name)
	symlinkOrFail(t, filepath.Join(scratch, "real"), link)
	return link
}

func symlinkOrFail(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// precious is a file beside the plugin's paths that a refused ADD must not touch.
func precious(t *testing.T, scratch string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(scratch, "precious"), []byte(`{"containerID":"pod-bad","ifName":"net1"}`), 0o600); err != nil {
		t.Fatal(err)
	}
}

// checkRefusal checks a refused ADD's error: a *types.Error, the code, a one-line
// message that names every word of mention.
func checkRefusal(t *testing.T, err error, code uint, mention []string) {
	t.Helper()
	var te *types.Error
	if !errors.As(err, &te) {
		t.Fatalf("error %v (%T) is not a *types.Error", err, err)
	}
	if te.Code != code {
		t.Errorf("code %d, want %d (%v)", te.Code, code, te)
	}
	msg := te.Error()
	t.Logf("code %d: %s", te.Code, msg)
	for _, m := range mention {
		if !strings.Contains(msg, m) {
			t.Errorf("message %q does not name %s", msg, m)
		}
	}
	if strings.ContainsAny(msg, "\r\n") {
		t.Errorf("message spans lines: %q", msg)
	}
}

// TestPrivilegedCNIBusyVF: pod B's ADD of the VF that pod A holds is refused with
// code 101 and harms nothing of A's (net1 with its MTU, MAC, address, up; its lease);
// B gets no net1 and no lease, and the DEL the runtime sends after B's failed ADD
// changes nothing either. Once A is gone, B's ADD works.
func TestPrivilegedCNIBusyVF(t *testing.T) {
	roottest.Require(t)
	const macA, macB = "0a:58:c6:33:64:41", "0a:58:c6:33:64:42"
	node := upNode(t, "--vfs", "2")
	e := newCNIEnv(t, node)
	before, beforePF := e.home(t, 1, inputVF), e.pfConfig(t, 1, inputVF)
	confA := e.conf(1, inputVF, map[string]any{"cniVersion": "1.0.0", "mtu": 9000, "mac": macA})
	confB := e.conf(1, inputVF, map[string]any{"cniVersion": "1.0.0", "mtu": 4000, "mac": macB})
	podA, podB := newPod(t), newPod(t)
	pa := addOK(t, e, "pod-a", podA, confA, 9000, macA)
	leasesA := e.leaseOwners(t)

	assertAUnharmed := func(when string) {
		t.Helper()
		got, ok := podIfaceOf(t, podA, "net1")
		if !ok {
			t.Fatalf("%s: pod A lost net1", when)
		}
		if diff := cmp.Diff(pa, got); diff != "" {
			t.Errorf("%s: A's net1 changed (-before +after):\n%s", when, diff)
		}
		if _, ok := podIfaceOf(t, podB, "net1"); ok {
			t.Errorf("%s: pod B has a net1", when)
		}
		if diff := cmp.Diff(leasesA, e.leaseOwners(t)); diff != "" {
			t.Errorf("%s: leases changed (-A's +now):\n%s", when, diff)
		}
	}

	_, err := e.add(1, "pod-b", podB, confB)
	if err == nil {
		t.Fatal("B's ADD of A's VF succeeded")
	}
	checkRefusal(t, err, 101, []string{inputVF, "pod-a"})
	assertAUnharmed("after B's ADD")

	if err := e.del(1, "pod-b", podB, confB); err != nil {
		t.Errorf("DEL after B's failed ADD: %v", err)
	}
	assertAUnharmed("after B's DEL")

	delReleased(t, e, "pod-a", podA, confA, inputVF, before, beforePF)
	addOK(t, e, "pod-b", podB, confB, 4000, macB)
	delReleased(t, e, "pod-b", podB, confB, inputVF, before, beforePF)
}
