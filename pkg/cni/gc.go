package cni

import (
	"errors"
	"fmt"

	"github.com/containernetworking/cni/pkg/types"
)

// gc is the work of GC.
func (p *Plugin) gc(inv *invocation) error {
	valid := map[types.GCAttachment]bool{}
	for _, v := range inv.conf.Valid {
		valid[v] = true
	}
	all, lerr := inv.store.Attachments()
	var errs []error
	if lerr != nil {
		errs = append(errs, lerr)
	}
	for _, a := range all {
		// The valid list is this network's: another network's attachments (the
		// default dataDir is shared) are its own GC's business.
		if a.Network != inv.conf.Name || valid[types.GCAttachment{ContainerID: a.ContainerID, IfName: a.IfName}] {
			continue
		}
		inv.log.Info("GC: releasing stale attachment", "stale", a.ContainerID, "stale-ifname", a.IfName, "vf", a.VF)
		sub := *inv.args
		sub.ContainerID, sub.IfName, sub.Netns = a.ContainerID, a.IfName, a.Netns
		if err := p.release(inv, &sub, a, true); err != nil {
			errs = append(errs, fmt.Errorf("GC %s %s: %w", a.ContainerID, a.IfName, err))
		}
	}
	if inv.conf.IPAMType != "" {
		if _, err := p.execIPAM("GC", inv.conf.IPAMType, inv.conf.Raw, inv.args); err != nil && !errors.Is(err, errIPAMMissing) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
