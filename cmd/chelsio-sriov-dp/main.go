// Command chelsio-sriov-dp is the kubelet device plugin of chelsio-sriov: it
// advertises the node's Chelsio VFs as extended resources. Flags, signals and
// wiring only; the work is in pkg/deviceplugin.
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
	"path/filepath"
	"syscall"
	"time"

	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/deviceplugin"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/httpserve"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/servedby"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/sysfs"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stderr io.Writer) int {
	f, err := parseFlags(args, stderr)
	if err != nil {
		if !errors.Is(err, deviceplugin.ErrParse) {
			fmt.Fprintf(stderr, "chelsio-sriov-dp: %v\n", err)
		}
		return 2
	}
	if f.showVersion {
		fmt.Fprintln(os.Stdout, version.Line("chelsio-sriov-dp"))
		return 0
	}
	log, err := f.check(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "chelsio-sriov-dp: %v\n", err)
		return 2
	}
	m, err := newManager(ctx, f, log)
	if err != nil {
		fmt.Fprintf(stderr, "chelsio-sriov-dp: %v\n", err)
		return 1
	}
	if f.metricsAddr != "" {
		stop, err := serveMetrics(f.metricsAddr, m.Handler(), log)
		if err != nil {
			fmt.Fprintf(stderr, "chelsio-sriov-dp: %v\n", err)
			return 1
		}
		defer stop()
	}
	v := version.Get()
	log.Info("chelsio-sriov-dp starting", "version", v.Version, "commit", v.Commit, "built", v.Date, "sysfs", f.root, "device-plugin-dir", filepath.Clean(f.dir))
	if err := m.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "chelsio-sriov-dp: %v\n", err)
		return 1
	}
	log.Info("stopped")
	return 0
}

// flags is the command line.
type flags struct {
	configFile, prefix string
	dir, root          string
	metricsAddr        string
	interval           time.Duration
	policy, devInfo    string
	cdiKind, cdiDir    string
	logFormat          string
	showVersion        bool
	uevents, fileWatch bool
	linkEvents         bool
	servedBy           string
	heal               healFlags
}

func parseFlags(args []string, stderr io.Writer) (*flags, error) {
	var f flags
	fs := flag.NewFlagSet("chelsio-sriov-dp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.configFile, "config-file", "/etc/pcidp/config.json", "resource pools (sriov-network-device-plugin's resourceList schema); absent: every cxgb4vf VF as <prefix>/vf and every vfio-pci VF as <prefix>/vf-vfio")
	fs.StringVar(&f.prefix, "resource-prefix", deviceplugin.DefaultResourcePrefix, "resource prefix of pools that name none")
	fs.StringVar(&f.dir, "device-plugin-dir", pluginapi.DevicePluginPath, "kubelet's device-plugin directory (its kubelet.sock, our sockets)")
	fs.StringVar(&f.root, "sysfs-root", string(sysfs.FromEnv()), "sysfs root (env CHELSIO_SYSFS_ROOT)")
	fs.StringVar(&f.metricsAddr, "metrics-address", "127.0.0.1:29100", "address of /metrics and /healthz, the node's loopback by default (:29100 for every address, $(HOST_IP):29100 in the DaemonSet); empty turns them off")
	fs.DurationVar(&f.interval, "rescan-interval", 500*time.Millisecond, "time between sysfs rescans (link events, uevents and file events rescan at once)")
	fs.StringVar(&f.policy, "allocation-policy", deviceplugin.PolicySpread, "GetPreferredAllocation across ports: spread or pack")
	fs.StringVar(&f.devInfo, "device-info-dir", "/var/run/k8s.cni.cncf.io/devinfo/dp", "where Allocate writes Multus device-info files; empty turns them off")
	fs.StringVar(&f.cdiKind, "cdi-kind", "", "CDI kind for vfio VFs (e.g. chelsio.com/vf); empty turns CDI off")
	fs.StringVar(&f.cdiDir, "cdi-spec-dir", "/var/run/cdi", "where the CDI spec of vfio VFs is written, with --cdi-kind")
	fs.StringVar(&f.logFormat, "log-format", "text", "text or json")
	fs.BoolVar(&f.uevents, "uevents", true, "rescan at once on the kernel's uevents about Chelsio PCI functions and their netdevs")
	fs.BoolVar(&f.linkEvents, "link-events", true, "follow the ports' link state through netlink link events (off: each rescan reads sysfs carrier)")
	fs.BoolVar(&f.fileWatch, "file-watch", true, "rescan at once on file events under the sysfs root's bus/pci (only an emulated or copied tree sends them)")
	fs.StringVar(&f.servedBy, "served-by-dir", servedby.DefaultDir, "served-by locks shared with chelsio-sriov-dra: a VF it offers is not offered here (a sysfs root other than /sys gets a subdirectory of its own); empty turns them off")
	fs.BoolVar(&f.showVersion, "version", false, "print the version, commit and build date, and exit")
	f.heal.add(fs)
	if err := deviceplugin.ParseArgs(fs, args); err != nil {
		return nil, err
	}
	return &f, nil
}

// check refuses flag values out of range, and returns the logger --log-format asks for.
func (f *flags) check(stderr io.Writer) (*slog.Logger, error) {
	log, err := deviceplugin.NewLogger(f.logFormat, stderr)
	if err != nil {
		return nil, err
	}
	if f.policy != deviceplugin.PolicySpread && f.policy != deviceplugin.PolicyPack {
		return nil, fmt.Errorf("--allocation-policy %q: want spread or pack", f.policy)
	}
	if f.interval < 50*time.Millisecond {
		return nil, fmt.Errorf("--rescan-interval %v: want at least 50ms", f.interval)
	}
	if err := f.heal.check(); err != nil {
		return nil, err
	}
	return log, nil
}

// newManager loads the pools and wires the scanner, link events, uevents, file watches and
// config reload into a Manager.
func newManager(ctx context.Context, f *flags, log *slog.Logger) (*deviceplugin.Manager, error) {
	cfg, fromFile, err := deviceplugin.Load(f.configFile, f.prefix)
	if err != nil {
		return nil, err // Load's errors name the file (or the flag) already.
	}
	if fromFile {
		log.Info("config loaded", "file", f.configFile, "pools", len(cfg.Pools))
	} else {
		log.Info("no config file: zero-config pools", "file", f.configFile, "pools", len(cfg.Pools))
	}

	var links *deviceplugin.LinkWatcher
	if f.linkEvents {
		links, err = deviceplugin.WatchLinks(ctx, log)
		if err != nil {
			log.Warn("no netlink link events; port health comes from sysfs rescans", "err", err)
		}
	}
	var portLinks deviceplugin.PortLinks
	if links != nil {
		portLinks = links
	}
	r := sysfs.Root(f.root)
	scanner := deviceplugin.NewChelsioScanner(r, cfg, portLinks)
	if f.servedBy != "" {
		scanner.Served = servedby.New(servedby.DirFor(f.servedBy, f.root), "chelsio-sriov-dp")
	}
	m := deviceplugin.NewManager(scanner, log)
	m.Dir, m.Interval, m.Policy, m.DeviceInfoDir, m.CDIKind, m.CDIDir = f.dir, f.interval, f.policy, f.devInfo, f.cdiKind, f.cdiDir
	f.heal.wire(scanner, m, log)
	if links != nil {
		m.Triggers = append(m.Triggers, links.Changed())
	}
	if f.uevents {
		if u, err := deviceplugin.WatchUevents(ctx, r, log); err != nil {
			log.Warn("no kernel uevents; VF changes are seen at the next rescan", "err", err)
		} else {
			m.AddUevents(u)
		}
	}
	if f.fileWatch {
		m.WatchPaths = []string{r.Path("bus/pci/devices"), r.Path("bus/pci/drivers/cxgb4vf"), r.Path("bus/pci/drivers/vfio-pci")}
	}
	m.ConfigFile = f.configFile
	m.Reload = func() error {
		c, ok, err := deviceplugin.Load(f.configFile, f.prefix)
		if err != nil {
			return err
		}
		if !ok {
			return errors.New("the file was removed: restore it, or restart the plugin to serve the zero-config pools")
		}
		scanner.SetConfig(c)
		return nil
	}
	return m, nil
}

// serveMetrics serves h (/metrics and /healthz) on addr until stop is called.
func serveMetrics(addr string, h http.Handler, log *slog.Logger) (stop func(), err error) {
	bound, stop, err := httpserve.Serve(addr, h)
	if err != nil {
		return nil, fmt.Errorf("--metrics-address %s: %w", addr, err)
	}
	log.Info("metrics and health", "address", bound)
	return stop, nil
}
