package dra

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/client-go/kubernetes"
	"k8s.io/dynamic-resource-allocation/kubeletplugin"
)

// Sockets says where kubelet finds the driver.
type Sockets struct {
	// RegistryDir is kubelet's plugin registry (its registration socket goes
	// there): kubeletplugin.KubeletRegistryDir on a node.
	RegistryDir string
	// PluginDir holds the DRA gRPC socket, dra.sock:
	// /var/lib/kubelet/plugins/vf.chelsio.com on a node.
	PluginDir string
}

// Serve reconciles the CDI specs with the checkpoint, registers the driver with
// kubelet through its plugin registry, serves the DRA gRPC service and publishes
// ResourceSlices through client until ctx ends.
func (d *Driver) Serve(ctx context.Context, client kubernetes.Interface, s Sockets) error {
	if err := d.Reconcile(); err != nil {
		return err
	}
	for _, dir := range []string{s.RegistryDir, s.PluginDir} {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return fmt.Errorf("socket directory: %w", err)
		}
	}
	helper, err := kubeletplugin.Start(ctx, d,
		kubeletplugin.DriverName(DriverName), kubeletplugin.KubeClient(client), kubeletplugin.NodeName(d.NodeName),
		kubeletplugin.RegistrarDirectoryPath(s.RegistryDir), kubeletplugin.PluginDataDirectoryPath(s.PluginDir),
		kubeletplugin.HealthService(false))
	if err != nil {
		return fmt.Errorf("start the kubelet plugin: %w", err)
	}
	defer helper.Stop()
	return d.Run(ctx, helper.PublishResources)
}

// Reconcile makes the CDI directory agree with the checkpoint: the spec of a
// claim that the checkpoint does not hold (a Prepare that ended before its
// checkpoint was written) is removed, and a checkpointed claim whose spec is
// missing is logged: kubelet's next Prepare or Unprepare of it still works.
func (d *Driver) Reconcile() error {
	d.prepMu.Lock()
	defer d.prepMu.Unlock()
	cp, err := readCheckpoint(d.CheckpointPath)
	if err != nil {
		return err
	}
	known := map[string]bool{}
	for uid, pc := range cp.Claims {
		known[pc.CDISpec] = true
		if _, err := os.Stat(pc.CDISpec); err != nil {
			d.log().Warn("prepared claim without its CDI spec", "claim", pc.Namespace+"/"+pc.Name, "uid", uid, "err", err)
		}
	}
	entries, err := os.ReadDir(d.CDIDir)
	if err != nil {
		return nil // no CDI directory yet: nothing to reconcile
	}
	for _, e := range entries {
		n := e.Name()
		ours := strings.HasPrefix(n, DriverName+"-") && strings.HasSuffix(n, ".json")
		tmp := strings.HasPrefix(n, "."+DriverName+"-")
		p := filepath.Join(d.CDIDir, n)
		if (ours && !known[p]) || tmp {
			if err := os.Remove(p); err == nil {
				d.log().Info("CDI spec of no prepared claim removed", "file", p)
			}
		}
	}
	return nil
}
