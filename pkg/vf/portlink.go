package vf

import (
	"errors"
	"io/fs"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/sysfs"
)

// PortLink is a physical port netdev of PF4 with its link, as sysfs shows it.
type PortLink struct {
	Port
	// Down is true when class/net/<if>/carrier reads 0: the port has no link. It is
	// false too when the kernel does not say (it refuses to read the carrier of a
	// netdev that is administratively down).
	Down bool
	// SpeedMbps is class/net/<if>/speed; 0 when unknown (no link, or not read).
	SpeedMbps int
}

// PortLinkOf returns the port netdev of PF4 that VF v sends through (the port
// whose index is v.Port), with its carrier and speed: what cxgb4 judges a VF's
// max_tx_rate by. It is nil, with no error, when PF4 is absent or has no netdev of
// that port in this network namespace.
func PortLinkOf(root sysfs.Root, v *VF) (*PortLink, error) {
	addr := v.PF
	addr.Function = 4
	d, err := openFunc(root, addr.String())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer d.Close()
	pf4, _, err := readPF4(d, addr)
	if err != nil {
		return nil, err
	}
	for _, p := range pf4.Ports {
		if p.Index != v.Port {
			continue
		}
		l := &PortLink{Port: p}
		if c, err := d.ReadString("net/" + p.Netdev + "/carrier"); err == nil {
			l.Down = c != "1"
		}
		if sp, err := d.ReadInt("net/" + p.Netdev + "/speed"); err == nil && sp > 0 {
			l.SpeedMbps = sp
		}
		return l, nil
	}
	return nil, nil
}
