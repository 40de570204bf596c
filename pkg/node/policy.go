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
	Model string     `json:"model,omitempty"` // product name, e.g. "T62100-CR"
	Slot  string     `json:"slot,omitempty"`  // PCI slot, e.g. "0000:81:00"
	Nodes []string   `json:"nodes,omitempty"` // node names it applies on; none: every node
	PFs   []PFPolicy `json:"pfs"`
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

// selects reports whether the policy applies to adapter a on the node nodeName.
func (a AdapterPolicy) selects(ad *vf.Adapter, nodeName string) bool {
	return (len(a.Nodes) == 0 || slices.Contains(a.Nodes, nodeName)) &&
		(a.Model == "" || a.Model == ad.Model()) &&
		(a.Slot == "" || a.Slot == ad.Slot)
}

// ApplyPolicy brings the node to what the policy says for it (nodeName), adapter by
// adapter and PF by PF, through Setup with base's roots, state directory, dry run
// and waits: what already matches is left alone, and a change that would take VFs
// from pods is refused (never forced: the policy waits until the node is drained).
// It goes on past a PF that fails and returns every error; changed reports whether
// anything was written.
func ApplyPolicy(ctx context.Context, p *Policy, nodeName string, base SetupConfig, out io.Writer) (changed bool, _ error) {
	if err := base.defaults(); err != nil {
		return false, err
	}
	n, err := vf.Discover(base.Sysfs, vf.Options{})
	if n == nil {
		return false, err
	}
	var errs []error
	for _, ap := range p.Adapters {
		for _, ad := range n.Adapters {
			if !ap.selects(ad, nodeName) {
				continue
			}
			for _, pf := range ap.PFs {
				c, err := pf.setup(base, ad.Slot)
				if err == nil {
					var buf bytes.Buffer
					err = Setup(ctx, c, io.MultiWriter(out, &buf))
					changed = changed || strings.Contains(buf.String(), "write \"")
				}
				if err != nil {
					errs = append(errs, fmt.Errorf("adapter %s PF%d: %w", ad.Slot, pf.PF, err))
				}
			}
		}
	}
	return changed, errors.Join(errs...)
}

// setup is the Setup of one PF of the adapter in slot.
func (pf PFPolicy) setup(base SetupConfig, slot string) (SetupConfig, error) {
	c := base
	c.Adapter, c.PF, c.MTU, c.Force = slot, pf.PF, pf.MTU, false
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
