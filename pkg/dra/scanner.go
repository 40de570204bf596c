package dra

import (
	"log/slog"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/deviceplugin"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/sysfs"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// DefaultConfig selects what the driver offers without --config-file: every
// Chelsio VF on cxgb4vf or vfio-pci, in one pool (the driver is an attribute).
func DefaultConfig() *deviceplugin.Config {
	return &deviceplugin.Config{Pools: []deviceplugin.Pool{{
		ResourceName: "vf", ResourcePrefix: deviceplugin.DefaultResourcePrefix, DeviceType: deviceplugin.DeviceTypeNetDevice,
		Selectors: []deviceplugin.Selector{{Drivers: []string{vf.DriverCxgb4VF, vf.DriverVFIO}}},
	}}}
}

// NewScanner is the device plugin's scanner as the driver uses it: a VF that
// changes driver is offered with its new one (FollowDriver), and one stranded
// (cniState, "" for no check) is unhealthy.
func NewScanner(root sysfs.Root, cfg *deviceplugin.Config, links deviceplugin.PortLinks, cniState string, log *slog.Logger) *deviceplugin.ChelsioScanner {
	s := deviceplugin.NewChelsioScanner(root, cfg, links)
	s.FollowDriver, s.CNIStateDir, s.Log = true, cniState, log
	return s
}
