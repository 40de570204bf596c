package emulate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/emulate/sysfstree"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// ErrAlreadyUp reports an emulated node of that name that is already up.
var ErrAlreadyUp = errors.New("emulated node is already up")

// Up builds the emulated node and starts its watcher, running `self emulate serve`
// (self is the chelsio-vf binary). Progress lines go to log. On any failure it
// removes what it made.
func Up(ctx context.Context, cfg Config, self string, log io.Writer) (st *State, retErr error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	dir := cfg.StateDir()
	if _, err := os.Stat(filepath.Join(dir, "state.json")); err == nil {
		return nil, fmt.Errorf("%w: %q (state in %s); run `chelsio-vf emulate down --name %s` first", ErrAlreadyUp, cfg.Name, dir, cfg.Name)
	}
	for w := 1; w <= cfg.Workers; w++ {
		if _, err := os.Stat(netnsPath(workerNetns(cfg.Name, w))); err == nil {
			return nil, fmt.Errorf("%w: netns %s exists; run `chelsio-vf emulate down --name %s` first", ErrAlreadyUp, workerNetns(cfg.Name, w), cfg.Name)
		}
	}
	if err := os.MkdirAll(cfg.RunDir, 0o755); err != nil {
		return nil, err
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create state dir: %w (a stale one? run `chelsio-vf emulate down --name %s`)", err, cfg.Name)
	}
	st = &State{Config: cfg}
	defer func() {
		if retErr != nil {
			retErr = errors.Join(retErr, teardown(st, io.Discard))
			st = nil
		}
	}()
	prod, _ := vf.LookupModel(cfg.Model)
	for w := 1; w <= cfg.Workers; w++ {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		wk, err := buildWorker(cfg, prod, w)
		if err != nil {
			return st, err
		}
		st.Workers = append(st.Workers, *wk)
		fmt.Fprintf(log, "worker %d: netns %s, %s with %d VFs, sysfs %s\n", w, wk.Netns, prod.Model, len(wk.VFs), wk.Sysfs)
	}
	if err := cable(st, log); err != nil {
		return st, err
	}
	if err := st.save(); err != nil {
		return st, err
	}
	pid, err := startWatcher(ctx, st, self)
	if err != nil {
		return st, err
	}
	st.WatcherPID = pid
	if err := st.save(); err != nil {
		return st, err
	}
	fmt.Fprintf(log, "watcher: pid %d, log %s\n", pid, filepath.Join(dir, "watcher.log"))
	return st, nil
}

func workerNetns(name string, w int) string { return fmt.Sprintf("%s-w%d", name, w) }

// buildWorker makes the worker's namespace and sysfs tree (no netdevs yet).
func buildWorker(cfg Config, prod vf.Product, w int) (*Worker, error) {
	wk := &Worker{Index: w, Netns: workerNetns(cfg.Name, w), Sysfs: filepath.Join(cfg.StateDir(), "w"+strconv.Itoa(w), "sys")}
	if err := createNetns(wk.Netns); err != nil {
		return nil, err
	}
	var per [4]int
	for i := range cfg.VFs {
		if cfg.Spread {
			per[i%4]++
		} else {
			per[i/16]++
		}
	}
	tree, err := sysfstree.Build(wk.Sysfs, sysfstree.Options{AbsoluteLinks: true}, sysfstree.Adapter{
		Model: prod.Model, VFs: per, MACBase: 0x810000 | uint32(w)<<8,
	})
	if err != nil {
		return nil, fmt.Errorf("build sysfs tree of worker %d: %w", w, err)
	}
	b := tree.Adapters[0]
	for _, p := range b.Ports {
		wk.Ports = append(wk.Ports, Port{Index: p.DevPort, Addr: b.PF4, Netdev: p.Name, MAC: p.MAC, AltName: altName(cfg.Name, w, "port"+strconv.Itoa(p.DevPort))})
		if err := tree.SetNetdevAttr(p.Name, "mtu", strconv.Itoa(cfg.MTU)); err != nil {
			return nil, err
		}
	}
	for pf := range 4 {
		for k, bv := range b.VFs[pf] {
			wk.VFs = append(wk.VFs, VF{Addr: bv.Addr, PF: pf, Index: k, Port: bv.Port, Netdev: bv.Netdev.Name, MAC: bv.Netdev.MAC, AltName: altName(cfg.Name, w, bv.Addr.String())})
			if err := tree.SetNetdevAttr(bv.Netdev.Name, "mtu", strconv.Itoa(cfg.MTU)); err != nil {
				return nil, err
			}
		}
	}
	return wk, nil
}

// end is one side of a veth cable: the namespace it goes into, its name, MAC ("" lets
// the kernel choose), MTU and alternative name ("" for none).
type end struct {
	netns, name, mac, alt string
	mtu                   int
}

// cable creates the veths: VF k and port p of worker 2i-1 face those of worker 2i;
// an unpaired last worker faces a fabric namespace.
func cable(st *State, log io.Writer) error {
	cfg := st.Config
	for i := 0; i < len(st.Workers); i += 2 {
		a := &st.Workers[i]
		var b *Worker
		peerNS := ""
		if i+1 < len(st.Workers) {
			b = &st.Workers[i+1]
			peerNS = b.Netns
			a.PeerOf, b.PeerOf = b.Index, a.Index
		} else {
			st.FabricNS = cfg.Name + "-fabric"
			if err := createNetns(st.FabricNS); err != nil {
				return err
			}
			peerNS = st.FabricNS
		}
		for k, v := range a.VFs {
			y := end{netns: peerNS, name: fabricVF(k), alt: fabricAltName(cfg.Name, v.Addr.String()), mtu: cfg.MTU}
			if b != nil {
				y = end{netns: peerNS, name: b.VFs[k].Netdev, mac: b.VFs[k].MAC, alt: b.VFs[k].AltName, mtu: cfg.MTU}
			}
			if err := addVeth(end{a.Netns, v.Netdev, v.MAC, v.AltName, cfg.MTU}, y); err != nil {
				return err
			}
		}
		for k, p := range a.Ports {
			y := end{netns: peerNS, name: fmt.Sprintf("fabp%d", k), alt: fabricAltName(cfg.Name, "port"+strconv.Itoa(p.Index)), mtu: cfg.MTU}
			if b != nil {
				y = end{netns: peerNS, name: b.Ports[k].Netdev, mac: b.Ports[k].MAC, alt: b.Ports[k].AltName, mtu: cfg.MTU}
			}
			if err := addVeth(end{a.Netns, p.Netdev, p.MAC, p.AltName, cfg.MTU}, y); err != nil {
				return err
			}
			if err := setUp(a.Netns, p.Netdev); err != nil {
				return err
			}
			if err := setUp(y.netns, y.name); err != nil {
				return err
			}
		}
		if b != nil {
			fmt.Fprintf(log, "cables: worker %d VF k <-> worker %d VF k (%d VFs, %d ports)\n", a.Index, b.Index, len(a.VFs), len(a.Ports))
		}
	}
	return nil
}

// fabricVF is the name of the fabric namespace's end of the cable of the unpaired
// worker's VF k.
func fabricVF(k int) string { return fmt.Sprintf("fab%d", k) }

// addVeth creates the veth x <-> y between two named namespaces.
func addVeth(x, y end) error {
	nsx, err := netns.GetFromPath(netnsPath(x.netns))
	if err != nil {
		return fmt.Errorf("open netns %s: %w", x.netns, err)
	}
	defer nsx.Close()
	nsy, err := netns.GetFromPath(netnsPath(y.netns))
	if err != nil {
		return fmt.Errorf("open netns %s: %w", y.netns, err)
	}
	defer nsy.Close()
	if err := addVethAt(nsx, nsy, x, y); err != nil {
		return fmt.Errorf("netns %s <-> netns %s: %w", x.netns, y.netns, err)
	}
	return nil
}

// addVethAt creates the veth x <-> y with x in namespace nsx and y in nsy, each end
// with its MAC, MTU and alternative name; the ends stay down. The netns fields of x
// and y are not used. Equivalent to:
//
//	ip -n X link add X.name address X.mac mtu X.mtu type veth peer name Y.name address Y.mac mtu Y.mtu netns Y
//	ip -n X link property add dev X.name altname X.alt
//	ip -n Y link property add dev Y.name altname Y.alt
//
// The kernel announces an alternative name only for a link that is up, so a watcher
// of X or Y sees the new ends without theirs (refund works around that).
func addVethAt(nsx, nsy netns.NsHandle, x, y end) (retErr error) {
	hx, err := netlink.NewHandleAt(nsx, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	defer hx.Close()
	hy, err := netlink.NewHandleAt(nsy, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	defer hy.Close()
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: x.name, MTU: x.mtu},
		PeerName:      y.name,
		PeerNamespace: netlink.NsFd(nsy),
		PeerMTU:       uint32(max(y.mtu, 0)),
	}
	if x.mac != "" {
		if veth.HardwareAddr, err = net.ParseMAC(x.mac); err != nil {
			return err
		}
	}
	if y.mac != "" {
		if veth.PeerHardwareAddr, err = net.ParseMAC(y.mac); err != nil {
			return err
		}
	}
	if err := hx.LinkAdd(veth); err != nil {
		return fmt.Errorf("add veth %s <-> %s: %w", x.name, y.name, err)
	}
	defer func() {
		if retErr != nil {
			// Deleting one end deletes the pair.
			if err := hx.LinkDel(veth); err != nil {
				retErr = errors.Join(retErr, fmt.Errorf("delete veth %s: %w", x.name, err))
			}
		}
	}()
	for _, e := range []struct {
		h *netlink.Handle
		end
	}{{hx, x}, {hy, y}} {
		if e.alt == "" {
			continue
		}
		l, err := e.h.LinkByName(e.name)
		if err != nil {
			return err
		}
		if err := e.h.LinkAddAltName(l, e.alt); err != nil {
			return fmt.Errorf("add altname %s to %s: %w", e.alt, e.name, err)
		}
	}
	return nil
}

func setUp(ns, name string) error {
	h, nsh, err := handleAt(ns)
	if err != nil {
		return err
	}
	defer nsh.Close()
	defer h.Close()
	l, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("netns %s: %w", ns, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("netns %s: set %s up: %w", ns, name, err)
	}
	return nil
}

// startWatcher runs `self emulate serve --name N --run-dir D` in its own session,
// logging to <state dir>/watcher.log, and waits until it reports ready.
func startWatcher(ctx context.Context, st *State, self string) (int, error) {
	dir := st.Config.StateDir()
	logf, err := os.OpenFile(filepath.Join(dir, "watcher.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	ready := filepath.Join(dir, "watcher.ready")
	cmd := exec.Command(self, "emulate", "serve", "--name", st.Config.Name, "--run-dir", st.Config.RunDir)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start watcher %s: %w", self, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			return 0, fmt.Errorf("watcher exited before it was ready (%w); see %s", err, logf.Name())
		case <-deadline.C:
			_ = cmd.Process.Kill()
			return 0, fmt.Errorf("watcher not ready after 10s; see %s", logf.Name())
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			return 0, ctx.Err()
		case <-tick.C:
			if _, err := os.Stat(ready); err == nil {
				return cmd.Process.Pid, nil
			}
		}
	}
}
