package cni

import (
	"errors"
	"fmt"
	"net"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/cnistore"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// pfSetting is one PF-side setting of a VF, which ADD makes and DEL undoes: a row
// of pfSettings.
type pfSetting struct {
	step string        // ADD's step after it (Fault)
	on   bool          // the attachment makes it
	what func() string // the NetConf's key and value, for a message
	set  func() error  // ip link set <mgmt> vf N <setting> <the NetConf's value>
	undo func() error  // the same with the VF's original value
}

// pfSettings is the table of the PF-side settings of the attachment pf, in the
// order ADD makes them: VLAN, MAC, rate, link state; DEL undoes them in reverse.
// c holds the values ADD sets and v is the VF, both nil for DEL, which only undoes.
func pfSettings(m vf.Mgmt, pf *cnistore.PFState, c *NetConf, v *vf.VF) []pfSetting {
	return []pfSetting{{
		step: StepPFVLAN, on: pf.SetVLAN,
		what: func() string { return fmt.Sprintf(`"vlan" %d`, *c.VLAN) },
		set:  func() error { return m.SetVFVLAN(pf.Mgmt, pf.VFIndex, *c.VLAN) },
		undo: func() error { return m.SetVFVLAN(pf.Mgmt, pf.VFIndex, pf.Orig.VLAN) },
	}, {
		step: StepPFMAC, on: pf.SetMAC,
		what: func() string { return "MAC " + c.PodMAC.String() },
		set:  func() error { return withMACHint(m.SetVFMAC(pf.Mgmt, pf.VFIndex, c.PodMAC), v) },
		undo: func() error { return restorePFMAC(m, pf) },
	}, {
		step: StepPFRate, on: pf.SetRate,
		what: func() string { return fmt.Sprintf(`"max_tx_rate" %d`, *c.MaxTxRate) },
		set:  func() error { return m.SetVFRate(pf.Mgmt, pf.VFIndex, *c.MaxTxRate) },
		undo: func() error { return m.SetVFRate(pf.Mgmt, pf.VFIndex, pf.Orig.MaxTxRate) },
	}, {
		step: StepPFState, on: pf.SetState,
		what: func() string { return `"link_state" ` + string(c.State) },
		set:  func() error { return m.SetVFLinkState(pf.Mgmt, pf.VFIndex, c.State) },
		undo: func() error { return m.SetVFLinkState(pf.Mgmt, pf.VFIndex, orState(pf.Orig.LinkState)) },
	}}
}

// restorePF puts back every PF-side setting ADD applied, the last first.
func restorePF(m vf.Mgmt, pf *cnistore.PFState) error {
	settings := pfSettings(m, pf, nil, nil)
	var errs []error
	for i := len(settings) - 1; i >= 0; i-- {
		if settings[i].on {
			errs = append(errs, settings[i].undo())
		}
	}
	return errors.Join(errs...)
}

// withMACHint adds to a failure to set the MAC of a VF of PF2 or PF3 the kernels
// that cannot.
func withMACHint(err error, v *vf.VF) error {
	if err == nil || v.PFNumber < 2 {
		return err
	}
	return fmt.Errorf("%w (kernels 5.9-6.12 without commit 356983f569c1 cannot set the MAC of VFs of PF2/PF3)", err)
}

// orState maps an unreported link state to auto, cxgb4's default.
func orState(s vf.LinkState) vf.LinkState {
	if s == "" {
		return vf.LinkStateAuto
	}
	return s
}

// restorePFMAC gives the VF back its original PF-side MAC; cxgb4 cannot clear one,
// so an original of none (or zero) is left as set.
func restorePFMAC(m vf.Mgmt, pf *cnistore.PFState) error {
	hw, err := net.ParseMAC(pf.Orig.MAC)
	if err != nil || vf.ValidateMAC(hw) != nil {
		return nil
	}
	return m.SetVFMAC(pf.Mgmt, pf.VFIndex, hw)
}
