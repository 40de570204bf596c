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
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/deviceplugin"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/sysfs"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("chelsio-sriov-dp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configFile := fs.String("config-file", "/etc/pcidp/config.json", "resource pools (sriov-network-device-plugin's resourceList schema); absent: every cxgb4vf VF as <prefix>/vf and every vfio-pci VF as <prefix>/vf-vfio")
	prefix := fs.String("resource-prefix", deviceplugin.DefaultResourcePrefix, "resource prefix of pools that name none")
	dir := fs.String("device-plugin-dir", pluginapi.DevicePluginPath, "kubelet's device-plugin directory (its kubelet.sock, our sockets)")
	root := fs.String("sysfs-root", string(sysfs.FromEnv()), "sysfs root (env CHELSIO_SYSFS_ROOT)")
	metricsAddr := fs.String("metrics-address", "127.0.0.1:9108", "address of /metrics and /healthz, the node's loopback by default (:9108 for every address); empty turns them off")
	interval := fs.Duration("rescan-interval", 500*time.Millisecond, "time between sysfs rescans (link events and file events rescan at once)")
	policy := fs.String("allocation-policy", deviceplugin.PolicySpread, "GetPreferredAllocation across ports: spread or pack")
	devInfo := fs.String("device-info-dir", "/var/run/k8s.cni.cncf.io/devinfo/dp", "where Allocate writes Multus device-info files; empty turns them off")
	cdiKind := fs.String("cdi-kind", "", "CDI kind for vfio VFs (e.g. chelsio.com/vf); empty turns CDI off")
	cdiDir := fs.String("cdi-spec-dir", "/var/run/cdi", "where the CDI spec of vfio VFs is written, with --cdi-kind")
	logFormat := fs.String("log-format", "text", "text or json")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "chelsio-sriov-dp: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *showVersion {
		fmt.Fprintln(os.Stdout, "chelsio-sriov-dp", version)
		return 0
	}
	var h slog.Handler = slog.NewTextHandler(stderr, nil)
	switch *logFormat {
	case "json":
		h = slog.NewJSONHandler(stderr, nil)
	case "text":
	default:
		fmt.Fprintf(stderr, "chelsio-sriov-dp: --log-format %q: want text or json\n", *logFormat)
		return 2
	}
	log := slog.New(h)
	if *policy != deviceplugin.PolicySpread && *policy != deviceplugin.PolicyPack {
		fmt.Fprintf(stderr, "chelsio-sriov-dp: --allocation-policy %q: want spread or pack\n", *policy)
		return 2
	}
	if *interval < 50*time.Millisecond {
		fmt.Fprintf(stderr, "chelsio-sriov-dp: --rescan-interval %v: want at least 50ms\n", *interval)
		return 2
	}

	cfg, fromFile, err := deviceplugin.Load(*configFile, *prefix)
	if err != nil {
		// Load's errors name the file (or the flag) already.
		fmt.Fprintf(stderr, "chelsio-sriov-dp: %v\n", err)
		return 1
	}
	if fromFile {
		log.Info("config loaded", "file", *configFile, "pools", len(cfg.Pools))
	} else {
		log.Info("no config file: zero-config pools", "file", *configFile, "pools", len(cfg.Pools))
	}

	links, err := deviceplugin.WatchLinks(ctx, log)
	if err != nil {
		log.Warn("no netlink link events; port health comes from sysfs rescans", "err", err)
	}
	var portLinks deviceplugin.PortLinks
	if links != nil {
		portLinks = links
	}
	scanner := deviceplugin.NewChelsioScanner(sysfs.Root(*root), cfg, portLinks)
	m := deviceplugin.NewManager(scanner, log)
	m.Dir, m.Interval, m.Policy, m.DeviceInfoDir, m.CDIKind, m.CDIDir = *dir, *interval, *policy, *devInfo, *cdiKind, *cdiDir
	if links != nil {
		m.Triggers = append(m.Triggers, links.Changed())
	}
	r := sysfs.Root(*root)
	m.WatchPaths = []string{r.Path("bus/pci/devices"), r.Path("bus/pci/drivers/cxgb4vf"), r.Path("bus/pci/drivers/vfio-pci")}
	m.ConfigFile = *configFile
	m.Reload = func() error {
		c, ok, err := deviceplugin.Load(*configFile, *prefix)
		if err != nil {
			return err
		}
		if !ok {
			return errors.New("the file was removed: restore it, or restart the plugin to serve the zero-config pools")
		}
		scanner.SetConfig(c)
		return nil
	}

	if *metricsAddr != "" {
		l, err := net.Listen("tcp", *metricsAddr)
		if err != nil {
			fmt.Fprintf(stderr, "chelsio-sriov-dp: --metrics-address %s: %v\n", *metricsAddr, err)
			return 1
		}
		srv := &http.Server{Handler: m.Handler(), ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(l) }()
		defer func() { _ = srv.Close() }()
		log.Info("metrics and health", "address", l.Addr().String())
	}
	log.Info("chelsio-sriov-dp starting", "version", version, "sysfs", *root, "device-plugin-dir", filepath.Clean(*dir))
	if err := m.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "chelsio-sriov-dp: %v\n", err)
		return 1
	}
	log.Info("stopped")
	return 0
}
