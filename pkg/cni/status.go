package cni

import (
	"errors"
	"fmt"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// Status reports whether the node can serve ADDs: the state directory is writable,
// and the IPAM plugin (when configured) reports ready. Failures are code 50.
func (p *Plugin) Status(args *skel.CmdArgs) error {
	inv, err := p.begin(args, "STATUS")
	if err != nil {
		return err
	}
	defer inv.close()
	if err := inv.store.CheckWritable(); err != nil {
		return withCode(CodeNotAvailable, fmt.Errorf("state dir %s is not writable: %w", inv.store.Dir, err))
	}
	if _, err := vf.Discover(p.Root, vf.Options{}); err != nil && !isDeviceErr(err) {
		return withCode(CodeNotAvailable, fmt.Errorf("read VFs: %w", err))
	}
	if inv.conf.IPAMType != "" {
		if _, err := p.execIPAM("STATUS", inv.conf.IPAMType, inv.conf.Raw, args); err != nil {
			return withCode(CodeNotAvailable, err)
		}
	}
	return nil
}

func isDeviceErr(err error) bool {
	var de *vf.DeviceError
	return errors.As(err, &de)
}
