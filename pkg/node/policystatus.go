package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// DefaultPolicyStatusFile is where `chelsio-vf policy` says what its last round did,
// and where `chelsio-vf doctor` reads it: under /run, so that a reboot, which undoes
// what the policy did, also forgets what it says.
const DefaultPolicyStatusFile = "/run/chelsio-sriov/policy-status.json"

// Results of a round of the policy, in PolicyStatus.Result.
const (
	RoundApplied = "applied" // every PF the policy names is as it says
	RoundRefused = "refused" // some changes were refused because pods hold VFs; no other error
	RoundFailed  = "failed"  // the policy could not be read, or a PF failed
)

// PolicyStatus is what the policy agent did last, as it writes it to its status
// file (docs/node-policy.md#the-status-file).
type PolicyStatus struct {
	File   string    `json:"file"` // the policy file
	Node   string    `json:"node"`
	Time   time.Time `json:"time"` // end of the round
	DryRun bool      `json:"dryRun,omitempty"`
	Force  bool      `json:"force,omitempty"`
	// IntervalSeconds is the time between two rounds; 0 for --once.
	IntervalSeconds float64 `json:"intervalSeconds"`
	Result          string  `json:"result"` // RoundApplied, RoundRefused or RoundFailed
	// Changed: this round wrote something.
	Changed bool `json:"changed"`
	// Error is why the round failed as a whole: the policy file is unreadable or
	// invalid (the previous policy's effects stay), or the node's hardware could not
	// be read. The errors of single PFs are in PFs.
	Error string     `json:"error,omitempty"`
	PFs   []PFResult `json:"pfs"`
	// LastChange and LastApplied are the ends of the last round that wrote
	// something, and of the last one whose result was RoundApplied; zero when none
	// since the agent started.
	LastChange  time.Time `json:"lastChange,omitzero"`
	LastApplied time.Time `json:"lastApplied,omitzero"`
}

// NewPolicyStatus is the status of a round that ended at end, after prev (nil at
// the first round): err is ApplyPolicy's error, or the policy file's.
func NewPolicyStatus(prev *PolicyStatus, r PolicyRound, err error, end time.Time) PolicyStatus {
	st := PolicyStatus{Time: end, Changed: r.Changed, PFs: r.PFs, Result: RoundApplied}
	if prev != nil {
		st.LastChange, st.LastApplied = prev.LastChange, prev.LastApplied
	}
	switch {
	case len(r.Failed()) > 0:
		st.Result = RoundFailed
	case err != nil && len(r.Refused()) == 0:
		st.Result, st.Error = RoundFailed, err.Error()
	case len(r.Refused()) > 0:
		st.Result = RoundRefused
	}
	if r.Changed {
		st.LastChange = end
	}
	if st.Result == RoundApplied {
		st.LastApplied = end
	}
	return st
}

// WritePolicyStatus writes st to path atomically: a reader sees the previous file
// or the new one, whole. It creates the file's directory (mode 0755) if need be.
func WritePolicyStatus(path string, st PolicyStatus) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("policy status: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("policy status: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("policy status: %w", err)
	}
	_, werr := f.Write(append(b, '\n'))
	err = errors.Join(werr, f.Chmod(0o644), f.Sync(), f.Close())
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("policy status %s: %w", path, err)
	}
	return nil
}

// ReadPolicyStatus reads a status file that WritePolicyStatus wrote.
func ReadPolicyStatus(path string) (*PolicyStatus, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var st PolicyStatus
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s is not a policy status: %w", path, err)
	}
	return &st, nil
}
