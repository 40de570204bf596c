package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/node"
)

// TestDoctorPrerequisiteFlags: --cni-conf-dir, --ipam and --etc-root reach the
// checks that read them, and an --ipam that is not a plain file name is refused
// in one line before any check runs.
func TestDoctorPrerequisiteFlags(t *testing.T) {
	dir := t.TempDir()
	cniBin, conf, etc := filepath.Join(dir, "bin"), filepath.Join(dir, "net.d"), filepath.Join(dir, "etc")
	for p, mode := range map[string]os.FileMode{
		filepath.Join(cniBin, "host-local"):                        0o755,
		filepath.Join(conf, "10-multus.conflist"):                  0o600,
		filepath.Join(etc, "modules-load.d", "chelsio-sriov.conf"): 0o644,
	} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("cxgb4vf\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	base := []string{"doctor", "--sysfs-root", t.TempDir(), "--cni-bin-dir", cniBin, "--cni-conf-dir", conf, "--etc-root", etc}
	tests := []struct {
		name       string
		args       []string
		want       map[string]node.Status // of the checks named; nil: refused
		wantStderr string
	}{
		{
			name: "host-local named",
			args: []string{"--ipam", "host-local"},
			want: map[string]node.Status{node.CheckMultus: node.OK, node.CheckIPAM: node.OK, node.CheckBootModules: node.OK},
		},
		{
			name: "whereabouts by default",
			want: map[string]node.Status{node.CheckMultus: node.OK, node.CheckIPAM: node.Warn, node.CheckBootModules: node.OK},
		},
		{
			name:       "IPAM name a path",
			args:       []string{"--ipam", "../bin/host-local"},
			wantStderr: "chelsio-vf: doctor: --ipam: invalid file name \"../bin/host-local\": want a plain name such as whereabouts\n",
		},
		{
			name:       "IPAM name empty",
			args:       []string{"--ipam", ""},
			wantStderr: "chelsio-vf: doctor: --ipam: invalid file name \"\": want a plain name such as whereabouts\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append(append(base, "--json"), tt.args...), &stdout, &stderr)
			if code != 1 { // no adapter under the empty sysfs root, or the refusal
				t.Errorf("exit %d, want 1", code)
			}
			if stderr.String() != tt.wantStderr {
				t.Errorf("stderr = %q, want %q", stderr.String(), tt.wantStderr)
			}
			if tt.want == nil {
				if stdout.Len() != 0 {
					t.Errorf("refused, yet printed %q", stdout.String())
				}
				return
			}
			var rep node.Report
			if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
				t.Fatalf("doctor --json: %v\n%s", err, stdout.String())
			}
			got := map[string]node.Status{}
			for _, c := range rep.Checks {
				if _, ok := tt.want[c.Name]; ok {
					got[c.Name] = c.Status
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("statuses mismatch (-want +got):\n%s\n%s", diff, stdout.String())
			}
		})
	}
}
