package node

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/emulate/sysfstree"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

const examplePolicy = `
adapters:
  - model: T62100-CR
    pfs:
      - pf: 0
        numVfs: 8
        mtu: 9000
        drivers:
          - {vfs: "0-5", driver: cxgb4vf}
          - {vfs: "6-7", driver: vfio-pci}
  - slot: "0000:83:00"
    nodes: [worker-2]
    pfs:
      - pf: 1
        numVfs: 4
`

func TestLoadPolicy(t *testing.T) {
	p, err := LoadPolicy([]byte(examplePolicy))
	if err != nil {
		t.Fatal(err)
	}
	eight, four := 8, 4
	want := &Policy{Adapters: []AdapterPolicy{
		{Model: "T62100-CR", PFs: []PFPolicy{{PF: 0, NumVFs: &eight, MTU: 9000, Drivers: []DriverRange{{"0-5", "cxgb4vf"}, {"6-7", "vfio-pci"}}}}},
		{Slot: "0000:83:00", Nodes: []string{"worker-2"}, PFs: []PFPolicy{{PF: 1, NumVFs: &four}}},
	}}
	if diff := cmp.Diff(want, p); diff != "" {
		t.Errorf("LoadPolicy mismatch (-want +got):\n%s", diff)
	}
}

func TestLoadPolicyRefuses(t *testing.T) {
	for _, tc := range []struct{ name, policy, want string }{
		{"unknown key", `adapters: [{pfs: [{pf: 0, count: 4}]}]`, `unknown field "count"`},
		{"PF4", `adapters: [{pfs: [{pf: 4}]}]`, "pf 4: only PF0-PF3 have VFs"},
		{"PF twice", `adapters: [{pfs: [{pf: 0}, {pf: 0}]}]`, "PF0 is given twice"},
		{"negative count", `adapters: [{pfs: [{pf: 0, numVfs: -1}]}]`, "numVfs -1"},
		{"MTU", `adapters: [{pfs: [{pf: 0, mtu: 10000}]}]`, "mtu 10000"},
		{"driver", `adapters: [{pfs: [{pf: 0, drivers: [{vfs: all, driver: igbvf}]}]}]`, `driver "igbvf"`},
		{"range", `adapters: [{pfs: [{pf: 0, drivers: [{vfs: "5-2", driver: vfio-pci}]}]}]`, `vfs "5-2"`},
		{"overlap", `adapters: [{pfs: [{pf: 0, drivers: [{vfs: "0-3", driver: vfio-pci}, {vfs: "3", driver: cxgb4vf}]}]}]`, "VF 3 is in two ranges"},
		{"not YAML", "adapters: [", "node policy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadPolicy([]byte(tc.policy))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("LoadPolicy: %v, want an error naming %q", err, tc.want)
			}
		})
	}
}

// TestApplyPolicy: a dry run on a tree writes what the policy asks for and nothing
// else: the count on the selected adapter, the driver of each range, nothing on a
// node the policy does not name, nothing when the node matches already.
func TestApplyPolicy(t *testing.T) {
	tree, err := sysfstree.Build(t.TempDir(), sysfstree.Options{},
		sysfstree.Adapter{VFs: [4]int{8}}, sysfstree.Adapter{VFs: [4]int{0, 2}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := LoadPolicy([]byte(examplePolicy))
	if err != nil {
		t.Fatal(err)
	}
	base := SetupConfig{Sysfs: tree.Root, DryRun: true, CNIStateDir: t.TempDir() + "/none"}
	for _, tc := range []struct {
		node    string
		changed bool
		writes  []string
	}{
		{node: "worker-1", changed: true, writes: append(bindVFIO("0000:81:04.0", "0000:81:04.4"),
			`would write "8" to bus/pci/devices/0000:83:00.0/sriov_numvfs`)},
		{node: "worker-2", changed: true, writes: append(bindVFIO("0000:81:04.0", "0000:81:04.4"),
			`would write "8" to bus/pci/devices/0000:83:00.0/sriov_numvfs`,
			`would write "0" to bus/pci/devices/0000:83:00.1/sriov_numvfs`,
			`would write "4" to bus/pci/devices/0000:83:00.1/sriov_numvfs`)},
	} {
		t.Run(tc.node, func(t *testing.T) {
			var out bytes.Buffer
			r, err := ApplyPolicy(context.Background(), p, PolicyNode{Name: tc.node}, base, &out)
			if err != nil {
				t.Fatalf("ApplyPolicy: %v\n%s", err, out.String())
			}
			if changed := r.Changed; changed != tc.changed {
				t.Errorf("changed = %v, want %v", changed, tc.changed)
			}
			if diff := cmp.Diff(tc.writes, writesOf(string(tree.Root), out.String())); diff != "" {
				t.Errorf("writes mismatch (-want +got):\n%s\n%s", diff, out.String())
			}
		})
	}
	t.Run("the node matches", func(t *testing.T) {
		match, err := LoadPolicy([]byte(`adapters: [{slot: "0000:81:00", pfs: [{pf: 0, numVfs: 8, drivers: [{vfs: all, driver: cxgb4vf}]}]}]`))
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		r, err := ApplyPolicy(context.Background(), match, PolicyNode{Name: "worker-1"}, base, &out)
		if err != nil || r.Changed {
			t.Errorf("ApplyPolicy = %+v, %v, want nothing to change\n%s", r, err, out.String())
		}
		want := []PFResult{{Adapter: "0000:81:00", PF: 0, Result: PFApplied}}
		if diff := cmp.Diff(want, r.PFs); diff != "" {
			t.Errorf("PFs mismatch (-want +got):\n%s", diff)
		}
	})
	t.Run("a pod holds a VF", func(t *testing.T) {
		held, stateDir := heldTree(t)
		lower, err := LoadPolicy([]byte(`adapters: [{pfs: [{pf: 0, numVfs: 4}]}]`))
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		cfg := SetupConfig{Sysfs: held.Root, DryRun: true, CNIStateDir: stateDir}
		r, err := ApplyPolicy(context.Background(), lower, PolicyNode{Name: "worker-1"}, cfg, &out)
		if err == nil || !strings.Contains(err.Error(), "pod default/testpod1") {
			t.Errorf("ApplyPolicy: %v, want a refusal naming the pod", err)
		}
		if strings.Contains(out.String(), "sriov_numvfs") {
			t.Errorf("a refused policy would still write:\n%s", out.String())
		}
		ref := r.Refused()
		if len(ref) != 1 || len(r.Failed()) != 0 || len(ref[0].Holders) != 1 || !strings.Contains(ref[0].Holders[0], "0000:81:01.0: pod default/testpod1") {
			t.Errorf("round %+v: want PF0 refused, naming the pod", r)
		}
		// Forced, it goes on.
		cfg.Force = true
		out.Reset()
		r, err = ApplyPolicy(context.Background(), lower, PolicyNode{Name: "worker-1"}, cfg, &out)
		if err != nil || len(r.Refused()) != 0 || !strings.Contains(out.String(), `would write "4"`) {
			t.Errorf("forced: %+v, %v, want the count written\n%s", r, err, out.String())
		}
	})
}

// bindVFIO is the dry run's writes that bind VFs (VF 6 and 7 of PF0 sit at
// 04.0 and 04.4: PF0-PF3 interleave) to vfio-pci.
func bindVFIO(addrs ...string) []string {
	var w []string
	for _, a := range addrs {
		w = append(w,
			`would write "`+vf.DriverVFIO+`" to bus/pci/devices/`+a+`/driver_override`,
			`would write "`+a+`" to bus/pci/devices/`+a+`/driver/unbind`,
			`would write "`+a+`" to bus/pci/drivers/vfio-pci/bind`)
	}
	return w
}

// TestPolicyNodeSelector: an adapter policy with a nodeSelector applies only on a
// node that has every label it names, and is refused when the node's labels are
// unknown rather than silently skipped.
func TestPolicyNodeSelector(t *testing.T) {
	tree, err := sysfstree.Build(t.TempDir(), sysfstree.Options{}, sysfstree.Adapter{VFs: [4]int{8}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := LoadPolicy([]byte(`adapters: [{nodeSelector: {chelsio.com/pool: dpdk, zone: a}, pfs: [{pf: 0, numVfs: 4}]}]`))
	if err != nil {
		t.Fatal(err)
	}
	base := SetupConfig{Sysfs: tree.Root, DryRun: true, CNIStateDir: t.TempDir() + "/none"}
	for _, tc := range []struct {
		name   string
		node   PolicyNode
		writes bool
		err    string
	}{
		{"every label", PolicyNode{Name: "n", LabelsKnown: true, Labels: map[string]string{"chelsio.com/pool": "dpdk", "zone": "a", "other": "x"}}, true, ""},
		{"one label differs", PolicyNode{Name: "n", LabelsKnown: true, Labels: map[string]string{"chelsio.com/pool": "dpdk", "zone": "b"}}, false, ""},
		{"one label missing", PolicyNode{Name: "n", LabelsKnown: true, Labels: map[string]string{"zone": "a"}}, false, ""},
		{"labels unknown", PolicyNode{Name: "n"}, false, "adapters[0] selects nodes by label, but this node's labels are unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			r, err := ApplyPolicy(context.Background(), p, tc.node, base, &out)
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("ApplyPolicy: %v, want error %q", err, tc.err)
			}
			if got := strings.Contains(out.String(), "sriov_numvfs"); got != tc.writes || r.Changed != tc.writes {
				t.Errorf("writes %v (changed %v), want %v:\n%s", got, r.Changed, tc.writes, out.String())
			}
		})
	}
	if _, err := LoadPolicy([]byte(`adapters: [{nodeSelector: {"": x}, pfs: []}]`)); err == nil || !strings.Contains(err.Error(), "empty label name") {
		t.Errorf("LoadPolicy of an empty label name: %v", err)
	}
}

// TestApplyPolicyErrorsOnOneLine: the errors of several PFs make one line, and
// each can still be told apart (a refusal is a *HeldError).
func TestApplyPolicyErrorsOnOneLine(t *testing.T) {
	held, stateDir := heldTree(t)
	p, err := LoadPolicy([]byte(`adapters: [{pfs: [{pf: 0, numVfs: 4}, {pf: 1, numVfs: 99}]}]`))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	r, err := ApplyPolicy(context.Background(), p, PolicyNode{Name: "n"}, SetupConfig{Sysfs: held.Root, DryRun: true, CNIStateDir: stateDir}, &out)
	if err == nil || strings.Contains(err.Error(), "\n") {
		t.Fatalf("ApplyPolicy: %q, want one line", err)
	}
	for _, w := range []string{"adapter 0000:81:00 PF0: ", "pod default/testpod1", "; adapter 0000:81:00 PF1: ", "more than its sriov_totalvfs"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
	var he *HeldError
	if !errors.As(err, &he) || len(r.Refused()) != 1 || len(r.Failed()) != 1 {
		t.Errorf("round %+v, error %v: want PF0 refused (a *HeldError), PF1 failed", r, err)
	}
}
