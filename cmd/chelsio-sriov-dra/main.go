// Command chelsio-sriov-dra is the Dynamic Resource Allocation driver of
// chelsio-sriov, driver vf.chelsio.com: it publishes the node's Chelsio VFs in
// ResourceSlices and prepares the claims kubelet gives it. Flags, signals and
// wiring only; the work is in pkg/dra.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/dynamic-resource-allocation/kubeletplugin"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/deviceplugin"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/dra"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/httpserve"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/servedby"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/sysfs"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/version"
)

const name = "chelsio-sriov-dra"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f, err := parseFlags(args, stderr)
	if err != nil {
		if !errors.Is(err, deviceplugin.ErrParse) {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
		}
		return 2
	}
	if f.showVersion {
		fmt.Fprintln(stdout, version.Line(name))
		return 0
	}
	log, err := f.check(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 2
	}
	client, err := f.client()
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	d, err := newDriver(ctx, f, log)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	if f.healthAddr != "" {
		bound, stop, err := httpserve.Serve(f.healthAddr, healthHandler(d))
		if err != nil {
			fmt.Fprintf(stderr, "%s: --health-address %s: %v\n", name, f.healthAddr, err)
			return 1
		}
		defer stop()
		log.Info("health", "address", bound)
	}
	v := version.Get()
	log.Info(name+" starting", "version", v.Version, "commit", v.Commit, "built", v.Date, "node", f.nodeName, "sysfs", f.root)
	if err := d.Serve(ctx, client, dra.Sockets{RegistryDir: f.registryDir, PluginDir: f.pluginDir}); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	log.Info("stopped")
	return 0
}

// flags is the command line.
type flags struct {
	nodeName, kubeconfig, root    string
	configFile, resourceName      string
	registryDir, pluginDir        string
	cdiDir, devInfo, checkpoint   string
	cniState, servedBy, logFormat string
	healthAddr                    string
	interval                      time.Duration
	taints, uevents, linkEvents   bool
	showVersion                   bool
}

func parseFlags(args []string, stderr io.Writer) (*flags, error) {
	var f flags
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.nodeName, "node-name", os.Getenv("NODE_NAME"), "this node's name, the pool of its ResourceSlices (env NODE_NAME)")
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file; empty: the pod's service account (in-cluster)")
	fs.StringVar(&f.root, "sysfs-root", string(sysfs.FromEnv()), "sysfs root (env CHELSIO_SYSFS_ROOT)")
	fs.StringVar(&f.configFile, "config-file", "", "which VFs to offer, in the device plugin's resourceList schema (only the selectors count); empty: every Chelsio VF on cxgb4vf or vfio-pci")
	fs.StringVar(&f.resourceName, "resource-name", dra.DefaultResourceName, "the k8s.cni.cncf.io/resourceName attribute of every device, the NetworkAttachmentDefinition's resourceName annotation, <prefix>/<name>")
	fs.BoolVar(&f.taints, "device-taints", true, "taint an unhealthy VF (NoSchedule); false withdraws it from the ResourceSlice instead, for clusters without DRA device taints")
	fs.DurationVar(&f.interval, "rescan-interval", dra.DefaultInterval, "time between sysfs rescans (uevents and link events rescan at once)")
	fs.BoolVar(&f.uevents, "uevents", true, "rescan at once on the kernel's uevents about Chelsio PCI functions")
	fs.BoolVar(&f.linkEvents, "link-events", true, "follow the ports' link state through netlink link events")
	fs.StringVar(&f.cniState, "cni-state-dir", "/var/lib/cni/chelsio-sriov", "the CNI plugin's state directory, read only: stranded VFs are tainted; empty turns the check off")
	fs.StringVar(&f.servedBy, "served-by-dir", servedby.DefaultDir, "served-by locks shared with chelsio-sriov-dp: a VF it offers is not offered here; empty turns them off")
	fs.StringVar(&f.registryDir, "plugin-registry-dir", kubeletplugin.KubeletRegistryDir, "kubelet's plugin registry, where the registration socket goes")
	fs.StringVar(&f.pluginDir, "plugin-dir", kubeletplugin.KubeletPluginsDir+"/"+dra.DriverName, "where the DRA socket (dra.sock) goes")
	fs.StringVar(&f.cdiDir, "cdi-spec-dir", "/var/run/cdi", "where a CDI spec per prepared claim is written")
	fs.StringVar(&f.devInfo, "device-info-dir", "/var/run/k8s.cni.cncf.io/devinfo/dp", "where a Multus device-info file per prepared VF is written; empty turns them off")
	fs.StringVar(&f.checkpoint, "checkpoint", dra.DefaultCheckpoint, "the file of prepared claims, kept across restarts")
	fs.StringVar(&f.logFormat, "log-format", "text", "text or json")
	fs.StringVar(&f.healthAddr, "health-address", "127.0.0.1:29102", "address of /healthz (200 once the ResourceSlices are published, 503 with the reason before and after a failed publish); $(HOST_IP):29102 in the DaemonSet; empty turns it off")
	fs.BoolVar(&f.showVersion, "version", false, "print the version, commit and build date, and exit")
	if err := deviceplugin.ParseArgs(fs, args); err != nil {
		return nil, err
	}
	return &f, nil
}

// check refuses flag values out of range, then returns the logger --log-format
// asks for.
func (f *flags) check(stderr io.Writer) (*slog.Logger, error) {
	if f.nodeName == "" {
		return nil, errors.New("--node-name is empty: give it, or set NODE_NAME")
	}
	if p, n, ok := strings.Cut(f.resourceName, "/"); !ok || p == "" || n == "" || strings.Contains(n, "/") {
		return nil, fmt.Errorf("--resource-name %q: want <prefix>/<name>", f.resourceName)
	}
	if f.interval < 50*time.Millisecond {
		return nil, fmt.Errorf("--rescan-interval %v: want at least 50ms", f.interval)
	}
	return deviceplugin.NewLogger(f.logFormat, stderr)
}

// client is the API server's client: --kubeconfig, else in-cluster.
func (f *flags) client() (kubernetes.Interface, error) {
	var cfg *rest.Config
	var err error
	if f.kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", f.kubeconfig)
	} else {
		cfg, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("API server client: %w", err)
	}
	return kubernetes.NewForConfig(cfg)
}

// newDriver loads the selectors and wires the scanner, link events and uevents into
// a Driver.
func newDriver(ctx context.Context, f *flags, log *slog.Logger) (*dra.Driver, error) {
	cfg := dra.DefaultConfig()
	if f.configFile != "" {
		c, ok, err := deviceplugin.Load(f.configFile, "")
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("--config-file %s does not exist", f.configFile)
		}
		cfg = c
	}
	r := sysfs.Root(f.root)
	var links deviceplugin.PortLinks
	var triggers []<-chan struct{}
	if f.linkEvents {
		if w, err := deviceplugin.WatchLinks(ctx, log); err != nil {
			log.Warn("no netlink link events; port health comes from sysfs rescans", "err", err)
		} else {
			links, triggers = w, append(triggers, w.Changed())
		}
	}
	if f.uevents {
		if u, err := deviceplugin.WatchUevents(ctx, r, log); err != nil {
			log.Warn("no kernel uevents; VF changes are seen at the next rescan", "err", err)
		} else {
			triggers = append(triggers, u.Changed())
		}
	}
	s := dra.NewScanner(r, cfg, links, f.cniState, log)
	if f.servedBy != "" {
		s.Served = servedby.New(servedby.DirFor(f.servedBy, f.root), name)
	}
	return &dra.Driver{
		Root: r, Scanner: s, NodeName: f.nodeName, ResourceName: f.resourceName, Taints: f.taints,
		Interval: f.interval, Triggers: triggers, Log: log,
		CDIDir: f.cdiDir, DeviceInfoDir: f.devInfo, CheckpointPath: f.checkpoint,
	}, nil
}

// healthHandler serves /healthz (200 while d's ResourceSlices are published) and
// /livez.
func healthHandler(d *dra.Driver) http.Handler {
	mux := http.NewServeMux()
	httpserve.Health(mux, d.Healthy)
	return mux
}
