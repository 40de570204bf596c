package node

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"
)

// staleRounds is how many of the agent's intervals may pass without a new status
// before doctor asks whether the agent still runs.
const staleRounds = 3

// checkPolicy reads what the policy agent (`chelsio-vf policy`) wrote of its last
// round: OK when the node is as the policy says, WARN when a change waits for pods
// to give their VFs back (naming them) or the agent seems to have stopped, FAIL
// when the policy could not be applied.
func checkPolicy(f *Facts) Result {
	st, err := ReadPolicyStatus(f.PolicyStatusFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return Result{Status: OK, Finding: "no node policy agent reports here (no " + f.PolicyStatusFile + ")"}
	case err != nil:
		return Result{
			Status: Warn, Finding: "cannot read the policy agent's status: " + err.Error(),
			Fix: "remove " + f.PolicyStatusFile + "; the agent writes it again at its next round",
		}
	}
	age := f.Now().Sub(st.Time).Round(time.Second)
	what := fmt.Sprintf("policy %s on node %s, %s ago", st.File, st.Node, age)
	if st.DryRun {
		what += " (dry run: nothing written)"
	}
	res := policyResult(st, what)
	interval := time.Duration(st.IntervalSeconds * float64(time.Second))
	if interval > 0 && age > staleRounds*interval+time.Minute {
		res.Finding += fmt.Sprintf("; no round since, although the agent runs every %v", interval)
		if res.Status == OK {
			res.Status = Warn
			res.Fix = "is the agent still running? kubectl -n chelsio-sriov logs ds/chelsio-vf-policy, or systemctl status chelsio-vf-policy"
		}
	}
	return res
}

// policyResult judges the status st of the round that what describes.
func policyResult(st *PolicyStatus, what string) Result {
	switch st.Result {
	case RoundApplied:
		r := Result{Status: OK, Finding: fmt.Sprintf("%s: %s as it says", what, plural(len(st.PFs), "PF"))}
		if !st.LastChange.IsZero() {
			r.Finding += ", last change at " + st.LastChange.UTC().Format(time.RFC3339)
		}
		return r
	case RoundRefused:
		var held []string
		for _, p := range st.Refused() {
			held = append(held, fmt.Sprintf("adapter %s PF%d (%s)", p.Adapter, p.PF, strings.Join(p.Holders, "; ")))
		}
		return Result{
			Status:  Warn,
			Finding: what + ": refused, pods hold VFs that the change would remove: " + strings.Join(held, ", "),
			Fix:     "drain the node (kubectl drain " + st.Node + "); the agent applies the policy at its next round. Or, once the pods may lose their VFs: chelsio-vf policy --once --force",
		}
	}
	reasons := []string{}
	if st.Error != "" {
		reasons = append(reasons, st.Error)
	}
	for _, p := range st.PFs {
		if p.Result == PFFailed {
			reasons = append(reasons, fmt.Sprintf("adapter %s PF%d: %s", p.Adapter, p.PF, p.Error))
		}
	}
	return Result{
		Status:  Fail,
		Finding: what + ": failed: " + listed(reasons, 3),
		Fix:     "see docs/errors.md, chelsio-vf policy; the agent tries again at every round, and applies an edited policy file at its next round",
	}
}

// Refused returns the PFs of the status whose change was refused.
func (st *PolicyStatus) Refused() []PFResult { return PolicyRound{PFs: st.PFs}.Refused() }
