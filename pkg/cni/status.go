package cni

import (
	"errors"
	"fmt"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// status is the work of Status.
func (p *Plugin) status(inv *invocation) error {
	if err := inv.store.CheckWritable(); err != nil {
		return withCode(CodeNotAvailable, fmt.Errorf("state dir %s is not writable: %w", inv.store.Dir, err))
	}
	if _, err := vf.Discover(p.Root, vf.Options{}); err != nil && !isDeviceErr(err) {
		return withCode(CodeNotAvailable, fmt.Errorf("read VFs: %w", err))
	}
	if inv.conf.IPAMType != "" {
		if _, err := p.execIPAM("STATUS", inv.conf.IPAMType, inv.conf.Raw, inv.args); err != nil {
			return withCode(CodeNotAvailable, err)
		}
	}
	return nil
}

func isDeviceErr(err error) bool {
	var de *vf.DeviceError
	return errors.As(err, &de)
}
