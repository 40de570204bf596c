package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// Policy is a node policy: for the adapters it selects, per PF, the VF count, the
// MTU of the ports and VFs and the driver of each VF range. `chelsio-vf policy`
// applies it at boot and keeps it (docs/node-policy.md).
type Policy struct {
	Adapters []AdapterPolicy `json:"adapters"`
}

// AdapterPolicy is the policy of the adapters that match all of its selectors
// given; with none, of every adapter.
type AdapterPolicy struct {
	Model string   `json:"model,omitempty"` // product name, e.g. "T62100-CR"
	Slot  string   `json:"slot,omitempty"`  // PCI slot, e.g. "0000:81:00"
	Nodes []string `json:"nodes,omitempty"` // node names it applies on; none: every node
	// NodeSelector: the node labels it applies on (every one must have its value);
	// none: every node. The agent learns its node's labels from --node-labels or
	// --node-labels-file.
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`
	PFs          []PFPolicy        `json:"pfs"`
}

// PolicyNode is the node a policy is applied on: its name and, when LabelsKnown,
// its labels.
type PolicyNode struct {
	Name        string
	Labels      map[string]string
	LabelsKnown bool
}

// PFPolicy is what one PF (0-3) of an adapter should have.
type PFPolicy struct {
	PF      int           `json:"pf"`
	NumVFs  *int          `json:"numVfs,omitempty"` // absent: leave the count as it is
	MTU     int           `json:"mtu,omitempty"`    // ports and VF netdevs; 0: leave
	Drivers []DriverRange `json:"drivers,omitempty"`
}

// DriverRange binds a range of a PF's VFs (by VF index) to a driver.
type DriverRange struct {
	VFs    string `json:"vfs"`    // "0-5", "6", or "all"
	Driver string `json:"driver"` // cxgb4vf or vfio-pci
}

// LoadPolicy decodes a policy in YAML or JSON, strictly (an unknown key is an
// error that names it), and checks it.
func LoadPolicy(data []byte) (*Policy, error) {
	j, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("node policy: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	var p Policy
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("node policy: %w", err)
	}
	for i, a := range p.Adapters {
		if err := a.check(); err != nil {
			return nil, fmt.Errorf("node policy: adapters[%d]: %w", i, err)
		}
	}
	return &p, nil
}

func (a AdapterPolicy) check() error {
	for k := range a.NodeSelector {
		if strings.TrimSpace(k) == "" {
			return errors.New("nodeSelector: an empty label name")
		}
	}
	seen := map[int]bool{}
	for j, pf := range a.PFs {
		switch {
		case pf.PF < 0 || pf.PF > 3:
			return fmt.Errorf("pfs[%d]: pf %d: only PF0-PF3 have VFs", j, pf.PF)
		case seen[pf.PF]:
			return fmt.Errorf("pfs[%d]: PF%d is given twice", j, pf.PF)
		case pf.NumVFs != nil && *pf.NumVFs < 0:
			return fmt.Errorf("pfs[%d]: numVfs %d: want 0 or more", j, *pf.NumVFs)
		case pf.MTU != 0 && (pf.MTU < 81 || pf.MTU > 9600):
			return fmt.Errorf("pfs[%d]: mtu %d: a Chelsio VF takes 81..9600", j, pf.MTU)
		}
		seen[pf.PF] = true
		if _, _, err := pf.drivers(); err != nil {
			return fmt.Errorf("pfs[%d]: %w", j, err)
		}
	}
	return nil
}

// drivers returns the driver of all VFs ("" when no range says "all") and those of
// single VFs by index.
func (pf PFPolicy) drivers() (all string, byVF map[int]string, _ error) {
	byVF = map[int]string{}
	for k, r := range pf.Drivers {
		if !validDriver(r.Driver) {
			return "", nil, fmt.Errorf("drivers[%d]: driver %q: want %s or %s", k, r.Driver, vf.DriverCxgb4VF, vf.DriverVFIO)
		}
		if r.VFs == "all" {
			if all != "" {
				return "", nil, fmt.Errorf("drivers[%d]: a second range \"all\"", k)
			}
			all = r.Driver
			continue
		}
		lo, hi, err := vfRange(r.VFs)
		if err != nil {
			return "", nil, fmt.Errorf("drivers[%d]: %w", k, err)
		}
		for i := lo; i <= hi; i++ {
			if _, dup := byVF[i]; dup {
				return "", nil, fmt.Errorf("drivers[%d]: VF %d is in two ranges", k, i)
			}
			byVF[i] = r.Driver
		}
	}
	return all, byVF, nil
}

// vfRange parses "N" or "N-M".
func vfRange(s string) (lo, hi int, _ error) {
	a, b, isRange := strings.Cut(s, "-")
	lo, err1 := strconv.Atoi(strings.TrimSpace(a))
	hi = lo
	var err2 error
	if isRange {
		hi, err2 = strconv.Atoi(strings.TrimSpace(b))
	}
	if err1 != nil || err2 != nil || lo < 0 || hi < lo || hi > 255 {
		return 0, 0, fmt.Errorf("vfs %q: want a VF index, a range like \"0-5\", or \"all\"", s)
	}
	return lo, hi, nil
}

// selects reports whether the policy applies to adapter ad on node n.
func (a AdapterPolicy) selects(ad *vf.Adapter, n PolicyNode) bool {
	for k, v := range a.NodeSelector {
		if got, ok := n.Labels[k]; !ok || got != v {
			return false
		}
	}
	return (len(a.Nodes) == 0 || slices.Contains(a.Nodes, n.Name)) &&
		(a.Model == "" || a.Model == ad.Model()) &&
		(a.Slot == "" || a.Slot == ad.Slot)
}

// Results of one PF in a round of the policy.
const (
	PFApplied = "applied" // the PF is as the policy says
	PFRefused = "refused" // the change would take VFs that pods hold: nothing done
	PFFailed  = "failed"  // any other error
)

// PFResult is what a round of the policy did on one PF.
type PFResult struct {
	Adapter string `json:"adapter"` // slot
	PF      int    `json:"pf"`
	Result  string `json:"result"`            // PFApplied, PFRefused or PFFailed
	Changed bool   `json:"changed,omitempty"` // something was written
	// Holders name, for a refusal, each VF held and its pod.
	Holders []string `json:"holders,omitempty"`
	Error   string   `json:"error,omitempty"`
}

// PolicyRound is what one application of the policy did.
type PolicyRound struct {
	Changed bool       // anything was written
	PFs     []PFResult // in the order of the policy, then of the adapters
}

// Refused returns the PFs whose change was refused.
func (r PolicyRound) Refused() []PFResult { return r.only(PFRefused) }

// Failed returns the PFs that failed.
func (r PolicyRound) Failed() []PFResult { return r.only(PFFailed) }

func (r PolicyRound) only(result string) []PFResult {
	var out []PFResult
	for _, p := range r.PFs {
		if p.Result == result {
			out = append(out, p)
		}
	}
	return out
}

// ApplyPolicy brings the node n to what the policy says for it, adapter by adapter
// and PF by PF, through Setup with base's roots, state directory, dry run, waits and
// Force: what already matches is left alone, and a change that would take VFs from
// pods is refused unless base.Force (the policy waits until the node is drained).
// It goes on past a PF that fails and returns every error with the round.
func ApplyPolicy(ctx context.Context, p *Policy, n PolicyNode, base SetupConfig, out io.Writer) (PolicyRound, error) {
	var r PolicyRound
	if err := base.defaults(); err != nil {
		return r, err
	}
	if !n.LabelsKnown {
		for i, ap := range p.Adapters {
			if len(ap.NodeSelector) > 0 {
				return r, fmt.Errorf("node policy: adapters[%d] selects nodes by label, but this node's labels are unknown: pass --node-labels or --node-labels-file", i)
			}
		}
	}
	hw, err := vf.Discover(base.Sysfs, vf.Options{})
	if hw == nil {
		return r, err
	}
	var errs []error
	for _, ap := range p.Adapters {
		for _, ad := range hw.Adapters {
			if !ap.selects(ad, n) {
				continue
			}
			for _, pf := range ap.PFs {
				res, err := pf.apply(ctx, base, ad.Slot, out)
				r.PFs = append(r.PFs, res)
				r.Changed = r.Changed || res.Changed
				if err != nil {
					errs = append(errs, fmt.Errorf("adapter %s PF%d: %w", ad.Slot, pf.PF, err))
				}
			}
		}
	}
	return r, joinLine(errs)
}

// lineErrors are several errors on one line, "; "-separated (errors.Join's
// newlines would split one message over lines of a log).
type lineErrors []error

func (e lineErrors) Error() string {
	msgs := make([]string, len(e))
	for i, err := range e {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "; ")
}

func (e lineErrors) Unwrap() []error { return e }

// joinLine returns nil, the one error, or the errors as lineErrors.
func joinLine(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return lineErrors(errs)
}

// apply runs the Setup of one PF of the adapter in slot, and says what came of it.
func (pf PFPolicy) apply(ctx context.Context, base SetupConfig, slot string, out io.Writer) (PFResult, error) {
	res := PFResult{Adapter: slot, PF: pf.PF, Result: PFApplied}
	c, err := pf.setup(base, slot)
	if err == nil {
		var buf bytes.Buffer
		err = Setup(ctx, c, io.MultiWriter(out, &buf))
		res.Changed = strings.Contains(buf.String(), "write \"")
	}
	var held *HeldError
	switch {
	case errors.As(err, &held):
		res.Result, res.Holders, res.Error = PFRefused, held.Holders, err.Error()
	case err != nil:
		res.Result, res.Error = PFFailed, err.Error()
	}
	return res, err
}

// setup is the Setup of one PF of the adapter in slot.
func (pf PFPolicy) setup(base SetupConfig, slot string) (SetupConfig, error) {
	c := base
	c.Adapter, c.PF, c.MTU = slot, pf.PF, pf.MTU
	c.VFs = LeaveVFs
	if pf.NumVFs != nil {
		c.VFs = *pf.NumVFs
	}
	all, byVF, err := pf.drivers()
	if err != nil {
		return c, err
	}
	c.Driver, c.Drivers = vf.DriverCxgb4VF, byVF
	if all != "" {
		c.Driver = all
	}
	return c, nil
}
