package e2e

import (
	"bytes"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/google/go-cmp/cmp"

	"github.com/chelsio-k8s/chelsio-sriov/internal/roottest"
)

// TestPrivilegedCNIKeys: a config that says one thing to its reader and another to
// the plugin is refused by the real binary with code 7, a message naming the key,
// and nothing changed: every VF of the worker where it was (name, MTU, MAC, admin
// state), no net1 in the pod, no state file, no lease.
//
//   - A NAD's "deviceId" beside the "deviceID" that Multus sets to the pod's VF:
//     libcni, as Multus, re-marshals the config sorted, which puts "deviceId" last,
//     and Go's decoder would take it for "deviceID" and attach the other VF.
//   - "mtu" twice: libcni would merge the two, so the config goes to the binary
//     as a runtime that does not re-marshal would send it.
//   - "ipam" of type chelsio-sriov: the plugin would run itself as its IPAM and
//     wait for the VF lock that it holds.
func TestPrivilegedCNIKeys(t *testing.T) {
	roottest.Require(t)
	const vfA, vfB = "0000:81:01.0", "0000:81:01.4"
	node := upNode(t, "--vfs", "2")
	tests := []struct {
		name    string
		conf    func(e *cniEnv) []byte
		libcni  bool // through libcni; else straight to the binary
		mention []string
	}{
		{"deviceId beside Multus' deviceID", func(e *cniEnv) []byte {
			conf := e.conf(1, vfA, map[string]any{"cniVersion": "1.0.0", "deviceId": vfB})
			if !bytes.Contains(conf, []byte(`"deviceID":"`+vfA+`","deviceId":"`+vfB+`"`)) {
				t.Fatalf("the config does not give deviceId after deviceID: %s", conf)
			}
			return conf
		}, true, []string{`"deviceId"`, `"deviceID"`, "only in case"}},
		{"mtu twice", func(e *cniEnv) []byte {
			conf := e.conf(1, vfA, map[string]any{"cniVersion": "1.0.0", "mtu": 9000})
			return append([]byte(`{"mtu":4000,`), conf[1:]...)
		}, false, []string{`"mtu"`, "twice"}},
		{"ipam of type chelsio-sriov", func(e *cniEnv) []byte {
			return e.conf(1, vfA, map[string]any{"cniVersion": "1.0.0", "ipam": map[string]any{"type": "chelsio-sriov"}})
		}, true, []string{`"ipam"`, `"chelsio-sriov"`, "this plugin itself"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newCNIEnv(t, node)
			before := e.homes(t, 1)
			if _, ok := before[vfA]; !ok {
				t.Fatalf("VF %s is not in worker 1: %v", vfA, before)
			}
			if _, ok := before[vfB]; !ok {
				t.Fatalf("VF %s is not in worker 1: %v", vfB, before)
			}
			pod := newPod(t)
			conf := tt.conf(e)
			var err error
			if tt.libcni {
				var r types.Result
				r, err = e.add(1, "pod-keys", pod, conf)
				if err == nil {
					t.Errorf("ADD succeeded: %v", r)
				}
			} else {
				var out []byte
				out, err = e.rawExec(t, 1, "ADD", "pod-keys", "net1", pod, conf)
				if err == nil {
					t.Errorf("ADD succeeded: %s", out)
				}
			}
			if err != nil {
				checkRefusal(t, err, types.ErrInvalidNetworkConfig, tt.mention)
			} else {
				// Give the VF back for the next case.
				t.Cleanup(func() {
					if err := e.del(1, "pod-keys", pod, conf); err != nil {
						t.Errorf("DEL: %v", err)
					}
				})
			}

			if diff := cmp.Diff(before, e.homes(t, 1)); diff != "" {
				t.Errorf("the refused ADD changed the worker's VFs (-before +after):\n%s", diff)
			}
			if pi, ok := podIfaceOf(t, pod, "net1"); ok {
				t.Errorf("the pod has a net1: %+v", pi)
			}
			if f := e.stateFiles(t, 1); len(f) != 0 {
				t.Errorf("state files: %v", f)
			}
			if l := e.leases(); len(l) != 0 {
				t.Errorf("leases: %v", l)
			}
		})
	}
}
