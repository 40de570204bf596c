package main

import (
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/deviceplugin"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/podresources"
)

// healFlags are the flags of what the plugin heals: stranded VFs reported
// Unhealthy, device-info files removed once no pod holds their device.
type healFlags struct {
	cniStateDir     string
	podResources    string
	deviceInfoGrace time.Duration
}

func (h *healFlags) add(fs *flag.FlagSet) {
	fs.StringVar(&h.cniStateDir, "cni-state-dir", deviceplugin.DefaultCNIStateDir, "the CNI plugin's state directory, read only: a cxgb4vf VF whose netdev is out of the node's network namespace and that no attachment there records is Unhealthy (stranded); empty turns the check off")
	fs.StringVar(&h.podResources, "pod-resources-socket", podresources.DefaultSocket, "kubelet's pod-resources socket: device-info files of devices that no pod holds are removed; empty turns the removal off")
	fs.DurationVar(&h.deviceInfoGrace, "device-info-grace", deviceplugin.DefaultDeviceInfoGrace, "how long a device-info file whose device no pod holds is kept")
}

func (h *healFlags) check() error {
	if h.deviceInfoGrace <= 0 {
		return fmt.Errorf("--device-info-grace %v: want a positive duration", h.deviceInfoGrace)
	}
	return nil
}

// wire sets the scanner's and the manager's healing from the flags.
func (h *healFlags) wire(s *deviceplugin.ChelsioScanner, m *deviceplugin.Manager, log *slog.Logger) {
	s.CNIStateDir, s.Log = h.cniStateDir, log
	if h.podResources != "" {
		m.PodResources = podresources.Client{Socket: h.podResources}
	}
	m.DeviceInfoGrace = h.deviceInfoGrace
}
