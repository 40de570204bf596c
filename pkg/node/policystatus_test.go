package node

import (
	"errors"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestPolicyStatusRoundTrip: the status of a round says what the round did, keeps
// the times of the last change and the last success across rounds, and reads back
// as written; the write replaces the file whole and leaves no temporary file.
func TestPolicyStatusRoundTrip(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	applied := PolicyRound{Changed: true, PFs: []PFResult{{Adapter: "0000:81:00", PF: 0, Result: PFApplied, Changed: true}}}
	st1 := NewPolicyStatus(nil, applied, nil, t0)
	if st1.Result != RoundApplied || !st1.LastChange.Equal(t0) || !st1.LastApplied.Equal(t0) {
		t.Errorf("first round: %+v", st1)
	}
	refused := PolicyRound{PFs: []PFResult{{Adapter: "0000:81:00", PF: 0, Result: PFRefused, Holders: []string{"0000:81:01.0: pod default/p"}}}}
	t1 := t0.Add(time.Minute)
	st2 := NewPolicyStatus(&st1, refused, errors.New("refused"), t1)
	if st2.Result != RoundRefused || st2.Error != "" || !st2.LastChange.Equal(t0) || !st2.LastApplied.Equal(t0) {
		t.Errorf("refused round: %+v", st2)
	}
	st3 := NewPolicyStatus(&st2, PolicyRound{}, errors.New("policy.yaml: bad"), t1.Add(time.Minute))
	if st3.Result != RoundFailed || st3.Error != "policy.yaml: bad" || !st3.LastApplied.Equal(t0) {
		t.Errorf("failed round: %+v", st3)
	}
	failedPF := PolicyRound{PFs: []PFResult{{Adapter: "0000:81:00", PF: 1, Result: PFFailed, Error: "x"}}}
	if st := NewPolicyStatus(nil, failedPF, errors.New("x"), t1); st.Result != RoundFailed || st.Error != "" {
		t.Errorf("a failed PF: %+v", st)
	}

	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "status.json")
	st2.File, st2.Node, st2.IntervalSeconds = "/etc/chelsio-sriov/policy.yaml", "worker-1", 30
	for _, st := range []PolicyStatus{st1, st2} {
		if err := WritePolicyStatus(path, st); err != nil {
			t.Fatal(err)
		}
	}
	got, err := ReadPolicyStatus(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&st2, got); diff != "" {
		t.Errorf("read back mismatch (-want +got):\n%s", diff)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("the status directory holds %d entries, want the status file alone", len(entries))
	}
	// A directory where the file goes: an error that names it, nothing left.
	if err := WritePolicyStatus(dir, st1); err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("WritePolicyStatus over a directory: %v", err)
	}
}

// TestCheckPolicy: doctor's node-policy check reads the agent's status file.
func TestCheckPolicy(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	base := PolicyStatus{File: "/etc/chelsio-sriov/policy.yaml", Node: "worker-1", IntervalSeconds: 30}
	for _, tc := range []struct {
		name    string
		write   func(path string)
		status  Status
		finding []string
		fix     string
	}{
		{"no agent", nil, OK, []string{"no node policy agent reports here"}, ""},
		{
			"applied", statusAt(base, now.Add(-20*time.Second), RoundApplied, nil), OK,
			[]string{"policy /etc/chelsio-sriov/policy.yaml on node worker-1, 20s ago: 1 PF as it says"},
			"",
		},
		{
			"refused", statusAt(base, now.Add(-5*time.Second), RoundRefused, []PFResult{{Adapter: "0000:81:00", PF: 0, Result: PFRefused, Holders: []string{"0000:81:01.0: pod default/p"}}}), Warn,
			[]string{"refused", "adapter 0000:81:00 PF0 (0000:81:01.0: pod default/p)"},
			"kubectl drain worker-1",
		},
		{
			"failed", statusAt(base, now.Add(-5*time.Second), RoundFailed, []PFResult{{Adapter: "0000:81:00", PF: 1, Result: PFFailed, Error: "PF4 0000:81:00.4 is not up"}}), Fail,
			[]string{"failed: adapter 0000:81:00 PF1: PF4 0000:81:00.4 is not up"},
			"docs/errors.md",
		},
		{
			"stale", statusAt(base, now.Add(-time.Hour), RoundApplied, nil), Warn,
			[]string{"1h0m0s ago", "no round since, although the agent runs every 30s"},
			"still running",
		},
		{
			"garbage", func(path string) { must(t, os.WriteFile(path, []byte("{"), 0o644)) }, Warn,
			[]string{"cannot read the policy agent's status", "is not a policy status"},
			"remove",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "status.json")
			if tc.write != nil {
				tc.write(path)
			}
			f := Gather(Config{Sysfs: "/nonexistent", PolicyStatusFile: path, Now: func() time.Time { return now }})
			r := checkPolicy(f)
			if r.Status != tc.status {
				t.Errorf("status %v, want %v: %+v", r.Status, tc.status, r)
			}
			for _, w := range tc.finding {
				if !strings.Contains(r.Finding, w) {
					t.Errorf("finding %q lacks %q", r.Finding, w)
				}
			}
			if !strings.Contains(r.Fix, tc.fix) {
				t.Errorf("fix %q lacks %q", r.Fix, tc.fix)
			}
		})
	}
}

// statusAt writes a status of a round that ended at end.
func statusAt(base PolicyStatus, end time.Time, result string, pfs []PFResult) func(string) {
	return func(path string) {
		st := base
		st.Time, st.Result, st.PFs = end, result, pfs
		if pfs == nil {
			st.PFs = []PFResult{{Adapter: "0000:81:00", PF: 0, Result: PFApplied}}
		}
		if err := WritePolicyStatus(path, st); err != nil {
			panic(err)
		}
	}
}

// TestPolicyMetrics: the agent's series count what the statuses of its rounds say.
func TestPolicyMetrics(t *testing.T) {
	m := NewPolicyMetrics()
	t0 := time.Unix(1767323045, 0)
	st := NewPolicyStatus(nil, PolicyRound{Changed: true, PFs: []PFResult{{PF: 0, Result: PFApplied, Changed: true}}}, nil, t0)
	m.Observe(st)
	st = NewPolicyStatus(&st, PolicyRound{PFs: []PFResult{{PF: 0, Result: PFRefused}, {PF: 1, Result: PFFailed}}}, errors.New("x"), t0.Add(time.Minute))
	m.Observe(st)
	m.Observe(NewPolicyStatus(&st, PolicyRound{}, errors.New("bad file"), t0.Add(2*time.Minute)))
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, line := range []string{
		`chelsio_vf_policy_rounds_total{result="applied"} 1`,
		`chelsio_vf_policy_rounds_total{result="refused"} 0`,
		`chelsio_vf_policy_rounds_total{result="failed"} 2`,
		"chelsio_vf_policy_changes_total 1",
		"chelsio_vf_policy_refusals_total 1",
		"chelsio_vf_policy_errors_total 2",
		"chelsio_vf_policy_last_success_timestamp_seconds 1.767323045e+09",
	} {
		if !strings.Contains(string(b), line+"\n") {
			t.Errorf("metrics lack %q", line)
		}
	}
	resp, err = srv.Client().Get(srv.URL + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("/healthz: %v %v", resp, err)
	}
	if resp != nil {
		resp.Body.Close()
	}
}
