package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/emulate/sysfstree"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/node"
)

func TestParseLabels(t *testing.T) {
	got, err := parseLabels("f", []string{"# a comment", "", `zone="a"`, " chelsio.com/pool = dpdk ", "empty="})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"zone": "a", "chelsio.com/pool": "dpdk", "empty": ""}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parseLabels mismatch (-want +got):\n%s", diff)
	}
	for _, bad := range []string{"zone", "=a"} {
		if _, err := parseLabels("--node-labels", []string{bad}); err == nil || !strings.Contains(err.Error(), `--node-labels: "`+bad+`": want a label as KEY=VALUE`) {
			t.Errorf("parseLabels(%q): %v", bad, err)
		}
	}
}

// TestPolicyOnceLabelsAndStatus: `chelsio-vf policy --once --dry-run` selects the
// adapter policy by the labels of --node-labels-file (the file winning over
// --node-labels), says what it would write, and writes its status file; a bad line
// of the labels file applies nothing.
func TestPolicyOnceLabelsAndStatus(t *testing.T) {
	tree, err := sysfstree.Build(t.TempDir(), sysfstree.Options{}, sysfstree.Adapter{VFs: [4]int{8}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	policy, labels, status := filepath.Join(dir, "policy.yaml"), filepath.Join(dir, "labels"), filepath.Join(dir, "run", "status.json")
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(policy, "adapters: [{nodeSelector: {pool: dpdk}, pfs: [{pf: 0, numVfs: 4}]}]\n")
	policyRun := func(labelsFlag string) (string, string, int) {
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{
			"policy", "--once", "--dry-run", "--file", policy, "--sysfs-root", string(tree.Root),
			"--node-name", "worker-1", "--node-labels", labelsFlag, "--node-labels-file", labels, "--status-file", status,
			"--cni-state-dir", filepath.Join(dir, "none"),
		}, &out, &errb)
		return out.String(), errb.String(), code
	}

	write(labels, "# the node's labels\npool=\"dpdk\"\n")
	out, errb, code := policyRun("pool=cxgb4vf")
	if code != 0 || !strings.Contains(out, `would write "4" to `+tree.Root.Path("bus/pci/devices/0000:81:00.0/sriov_numvfs")) {
		t.Fatalf("exit %d, want the count written:\n%s%s", code, out, errb)
	}
	st, err := node.ReadPolicyStatus(status)
	if err != nil {
		t.Fatal(err)
	}
	if st.Result != node.RoundApplied || !st.DryRun || st.Node != "worker-1" || st.File != policy || len(st.PFs) != 1 || st.IntervalSeconds != 0 {
		t.Errorf("status %+v", st)
	}

	write(labels, "pool=other\n")
	if out, errb, code := policyRun(""); code != 0 || strings.Contains(out, "sriov_numvfs") {
		t.Errorf("another pool: exit %d, want nothing written:\n%s%s", code, out, errb)
	}

	write(labels, "pool\n")
	_, errb, code = policyRun("")
	if code != 1 || !strings.Contains(errb, labels+`: "pool": want a label as KEY=VALUE (nothing applied)`) {
		t.Errorf("a bad labels file: exit %d:\n%s", code, errb)
	}
	if st, err := node.ReadPolicyStatus(status); err != nil || st.Result != node.RoundFailed || !strings.Contains(st.Error, "want a label") {
		t.Errorf("status after a bad labels file: %+v %v", st, err)
	}
}
