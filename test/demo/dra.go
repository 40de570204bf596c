package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/chelsio-k8s/chelsio-sriov/internal/kubelettest"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/deviceplugin"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/dra"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/emulate"
)

// `make demo-dra`: the same flow with a DRA claim per worker instead of the
// extended resource. The DRA driver of pkg/dra runs on each worker's tree against
// a fake API server; the test kubelet registers it through the plugin registry and
// prepares the claim over its DRA socket; the VF's PCI address is read from the
// claim's CDI spec (PCIDEVICE_…), and libcni gives it to chelsio-sriov as deviceID,
// as Multus does with the claim's k8s.cni.cncf.io/deviceID.
var draMode = flag.Bool("dra", false, "claims through the DRA driver instead of the device plugin's extended resource")

// vfFor gives worker w one VF, through the device plugin or, with -dra, a claim.
func (d *demo) vfFor(ctx context.Context, w int, cfg string) (string, error) {
	if *draMode {
		return d.prepareClaim(ctx, w)
	}
	return d.allocate(ctx, w, cfg)
}

// prepareClaim runs the DRA driver on worker w, allocates a claim of one netdevice
// VF it publishes, and has the test kubelet prepare it.
func (d *demo) prepareClaim(ctx context.Context, w int) (string, error) {
	step("worker %d: the DRA driver vf.chelsio.com publishes the VFs; kubelet prepares a claim of one", w)
	st, err := emulate.Load("/run", d.name)
	if err != nil {
		return "", err
	}
	wk, err := st.Worker(w)
	if err != nil {
		return "", err
	}
	node := fmt.Sprintf("worker-%d", w)
	client := fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node, UID: types.UID(node)}})
	sock, err := os.MkdirTemp("", "dra-") // unix socket paths are short
	if err != nil {
		return "", err
	}
	d.onExit(func() { _ = os.RemoveAll(sock) })
	work := filepath.Join(d.work, "dra-"+node)
	root := wk.Root()
	drv := &dra.Driver{
		Root: root, Scanner: dra.NewScanner(root, dra.DefaultConfig(), nil, d.stateDir(w), nil), NodeName: node,
		ResourceName: resource, Taints: true, Interval: time.Second,
		CDIDir: filepath.Join(work, "cdi"), DeviceInfoDir: filepath.Join(work, "devinfo"), CheckpointPath: filepath.Join(work, "checkpoint.json"),
	}
	// Stopped by the cleanup, after the claim is unprepared: not by the demo's
	// context, which ends before the cleanup runs.
	sctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- drv.Serve(sctx, client, dra.Sockets{RegistryDir: filepath.Join(sock, "registry"), PluginDir: filepath.Join(sock, "plugin")})
	}()
	d.onExit(func() {
		cancel()
		if err := <-done; err != nil {
			fmt.Fprintf(os.Stderr, "worker %d: the DRA driver: %v\n", w, err)
		}
	})
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	dev, err := firstNetdevice(wctx, client)
	if err != nil {
		return "", fmt.Errorf("worker %d: %w", w, err)
	}
	k, err := kubelettest.RegisterDRA(wctx, filepath.Join(sock, "registry"), dra.DriverName)
	if err != nil {
		return "", err
	}
	d.onExit(k.Close)
	return d.prepare(wctx, w, client, k, node, dev, drv.CDIDir)
}

// firstNetdevice waits for the driver's slices and picks, as the scheduler would
// for the DeviceClass chelsio-vf-netdevice, the first VF on cxgb4vf.
func firstNetdevice(ctx context.Context, client *fake.Clientset) (string, error) {
	for {
		list, err := client.ResourceV1().ResourceSlices().List(ctx, metav1.ListOptions{})
		if err != nil {
			return "", err
		}
		for _, s := range list.Items {
			fmt.Printf("ResourceSlice of driver %s, pool %s: %d devices\n", s.Spec.Driver, s.Spec.Pool.Name, len(s.Spec.Devices))
			for _, dev := range s.Spec.Devices {
				if a := dev.Attributes[dra.AttrDriver]; a.StringValue != nil && *a.StringValue == "cxgb4vf" && len(dev.Taints) == 0 {
					return dev.Name, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return "", errors.New("no untainted cxgb4vf VF published")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// prepare allocates a claim of dev, prepares it and returns the PCI address that
// the claim's CDI device sets in PCIDEVICE_….
func (d *demo) prepare(ctx context.Context, w int, client *fake.Clientset, k *kubelettest.DRAPlugin, node, dev, cdiDir string) (string, error) {
	c := &resourceapi.ResourceClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: fmt.Sprintf("testpod%d-vf", w), UID: types.UID(fmt.Sprintf("claim-w%d", w))}}
	c.Status.Allocation = &resourceapi.AllocationResult{}
	c.Status.Allocation.Devices.Results = []resourceapi.DeviceRequestAllocationResult{{Request: "vf", Driver: dra.DriverName, Pool: node, Device: dev}}
	if _, err := client.ResourceV1().ResourceClaims(c.Namespace).Create(ctx, c, metav1.CreateOptions{}); err != nil {
		return "", err
	}
	ref := kubelettest.DRAClaim{Namespace: c.Namespace, Name: c.Name, UID: string(c.UID)}
	resp, err := k.Prepare(ctx, ref)
	if err != nil {
		return "", err
	}
	r := resp[string(c.UID)]
	if r == nil || r.Error != "" || len(r.Devices) != 1 {
		return "", fmt.Errorf("worker %d: prepare: %+v", w, r)
	}
	d.onExit(func() {
		if _, err := k.Unprepare(context.Background(), ref); err != nil {
			fmt.Fprintf(os.Stderr, "worker %d: unprepare: %v\n", w, err)
		}
	})
	fmt.Printf("NodePrepareResources: %s → CDI %v\n", dev, r.Devices[0].CdiDeviceIds)
	return pciFromCDI(dra.CDISpecPath(cdiDir, c.UID))
}

// pciFromCDI reads PCIDEVICE_CHELSIO_COM_CHELSIO_SRIOV_NETDEVICE from a claim's
// CDI spec, as the container sees it.
func pciFromCDI(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var spec struct {
		Devices []struct {
			ContainerEdits struct {
				Env []string `json:"env"`
			} `json:"containerEdits"`
		} `json:"devices"`
	}
	if err := json.Unmarshal(b, &spec); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	env := deviceplugin.EnvName("chelsio.com", "chelsio_sriov_netdevice") + "="
	for _, dev := range spec.Devices {
		for _, e := range dev.ContainerEdits.Env {
			if v, ok := strings.CutPrefix(e, env); ok {
				fmt.Printf("CDI spec: %s%s\n", env, v)
				return v, nil
			}
		}
	}
	return "", fmt.Errorf("%s sets no %s", path, env)
}
