package emulate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/fsnotify/fsnotify"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/emulate/sysfstree"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// numVFsWatch follows writes to the sriov_numvfs files of one worker's PF0-PF3 and
// answers them as the kernel does (docs/hardware.md section 3, "Creating VFs"):
//
//   - the same value: nothing;
//   - more than sriov_totalvfs (ERANGE), a PF not bound to cxgb4 (ENOENT), PF4 not up
//     (not bound to cxgb4 or without port netdevs: EOPNOTSUPP), or a nonzero count
//     over another nonzero one (EBUSY): refused. The kernel leaves the file unchanged
//     and fails the write; here the write has already landed in a plain file, so the
//     watcher writes the previous value back and logs why. A writer sees the value
//     did not take when it re-reads, as it must on a real node anyway;
//   - 0 → N: the management netdev, then N VFs in the tree, each with a veth end in
//     the worker namespace (its name, MAC and the node's MTU, down), cabled to the same
//     VF of the peer worker when that VF exists and faces the fabric, else to a new
//     end in the fabric namespace;
//   - N → 0: the VFs' ends (also those in pods) leave, the VFs and the management
//     netdev leave the tree. A peer worker's VF that faced a removed VF is cabled to
//     the fabric namespace instead, without being disturbed.
//
// The write and the watcher's answer are asynchronous: a writer that writes 0 and at
// once N may find N refused as nonzero → nonzero, so writers wait for the VFs to go
// (as `chelsio-vf setup` does) before writing N.
type numVFsWatch struct {
	ww   *workerWatch
	fsw  *fsnotify.Watcher
	dirs map[string]int // real directory of PFn → n
}

// newNumVFsWatch subscribes to the PF directories of the worker's tree and
// reconstructs the worker's adapter as the tree has it.
func (ww *workerWatch) newNumVFsWatch() (*numVFsWatch, error) {
	cfg := ww.wt.st.Config
	var per [4]int
	for _, v := range ww.w.VFs {
		if v.PF >= 0 && v.PF < 4 {
			per[v.PF]++
		}
	}
	spec := sysfstree.Adapter{Model: cfg.Model, VFs: per, MACBase: 0x810000 | uint32(ww.w.Index)<<8}
	b, err := shadowAdapter(cfg.StateDir(), spec)
	if err != nil {
		return nil, err
	}
	ww.adapter = b
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch sriov_numvfs: %w", err)
	}
	nv := &numVFsWatch{ww: ww, fsw: fsw, dirs: map[string]int{}}
	for pf, addr := range b.PFs {
		dir, err := ww.tree.FunctionDir(addr)
		if err == nil {
			err = fsw.Add(ww.tree.Root.Path(dir))
		}
		if err != nil {
			return nil, errors.Join(fmt.Errorf("watch sriov_numvfs of PF%d %s: %w", pf, addr, err), fsw.Close())
		}
		nv.dirs[filepath.Clean(ww.tree.Root.Path(dir))] = pf
	}
	ww.openUevents()
	return nv, nil
}

// shadowAdapter builds the adapter described by spec in a scratch tree, which it then
// removes, and returns the record of what was built: sysfstree.Tree.SetNumVFs works from
// that record, and the worker's tree was built from the same spec.
func shadowAdapter(stateDir string, spec sysfstree.Adapter) (*sysfstree.BuiltAdapter, error) {
	tmp, err := os.MkdirTemp(stateDir, "shadow-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	t, err := sysfstree.Build(tmp, sysfstree.Options{AbsoluteLinks: true}, spec)
	if err != nil {
		return nil, fmt.Errorf("rebuild the adapter record: %w", err)
	}
	return t.Adapters[0], nil
}

func (nv *numVFsWatch) run(ctx context.Context) {
	logf := nv.ww.wt.logf
	defer nv.ww.closeUevents()
	defer func() {
		if err := nv.fsw.Close(); err != nil {
			logf("worker %d: close sriov_numvfs watch: %v", nv.ww.w.Index, err)
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case err, ok := <-nv.fsw.Errors:
			if !ok {
				return
			}
			logf("worker %d: watch sriov_numvfs: %v", nv.ww.w.Index, err)
		case ev, ok := <-nv.fsw.Events:
			if !ok {
				return
			}
			if filepath.Base(ev.Name) != "sriov_numvfs" || !ev.Has(fsnotify.Write) && !ev.Has(fsnotify.Create) {
				continue
			}
			pf, ok := nv.dirs[filepath.Dir(ev.Name)]
			if !ok {
				continue
			}
			if err := nv.ww.numVFsWritten(pf); err != nil {
				logf("worker %d: PF%d sriov_numvfs: %v", nv.ww.w.Index, pf, err)
			}
		}
	}
}

// numVFsWritten answers a write to PF pf's sriov_numvfs.
func (ww *workerWatch) numVFsWritten(pf int) error {
	wt, b := ww.wt, ww.adapter
	wt.mu.Lock()
	defer wt.mu.Unlock()
	rel := sysfstree.DevicePath(b.PFs[pf]) + "/sriov_numvfs"
	s, err := ww.tree.Root.ReadString(rel)
	if err != nil || s == "" {
		return nil // truncated, not yet written: the write's own event follows
	}
	cur := len(b.VFs[pf])
	if s == strconv.Itoa(cur) {
		return nil
	}
	n, err := strconv.Atoi(s)
	why := ""
	switch {
	case err != nil || n < 0:
		why = fmt.Sprintf("EINVAL: %q is not a VF count", s)
	default:
		why = ww.refusal(pf, cur, n)
	}
	if why != "" {
		wt.logf("worker %d: PF%d %s: sriov_numvfs %d -> %s refused: %s", ww.w.Index, pf, b.PFs[pf], cur, s, why)
		return ww.tree.WriteFile(rel, strconv.Itoa(cur))
	}
	if n == 0 {
		gone := ww.vfUevents(pf, false)
		err = ww.removeVFs(pf)
		ww.sendUevents(gone)
	} else {
		err = ww.createVFs(pf, n)
		ww.sendUevents(ww.vfUevents(pf, true))
	}
	ww.recordVFs()
	if serr := wt.st.save(); serr != nil {
		err = errors.Join(err, fmt.Errorf("save state: %w", serr))
	}
	return err
}

// refusal returns why the kernel refuses cur → n VFs on PF pf, or "".
func (ww *workerWatch) refusal(pf, cur, n int) string {
	b, root := ww.adapter, ww.tree.Root
	total, err := root.ReadInt(sysfstree.DevicePath(b.PFs[pf]) + "/sriov_totalvfs")
	if err != nil {
		total = b.Spec.TotalVFs
	}
	if n > total {
		return fmt.Sprintf("ERANGE: %d > sriov_totalvfs %d", n, total)
	}
	if d, _ := root.LinkBase(sysfstree.DevicePath(b.PFs[pf]) + "/driver"); d != vf.DriverCxgb4 {
		return fmt.Sprintf("ENOENT: PF%d is not bound to cxgb4", pf)
	}
	d, _ := root.LinkBase(sysfstree.DevicePath(b.PF4) + "/driver")
	ports, _ := root.ReadDir(sysfstree.DevicePath(b.PF4) + "/net")
	if d != vf.DriverCxgb4 || len(ports) == 0 {
		return fmt.Sprintf("EOPNOTSUPP: PF4 %s is not up (Device not initialized)", b.PF4)
	}
	if cur != 0 && n != 0 {
		return fmt.Sprintf("EBUSY: %d VFs exist; write 0 first", cur)
	}
	return ""
}

// fabricEndName is the name of the fabric namespace's end of the cable of worker w's
// VF k of PF pf, when made by a write to sriov_numvfs.
func fabricEndName(w, pf, k int) string { return fmt.Sprintf("fw%dp%dv%d", w, pf, k) }

// fabricEndAlt is its alternative name.
func (wt *watch) fabricEndAlt(w int, addr vf.PCIAddr) string {
	return fabricAltName(wt.name, fmt.Sprintf("w%d.%s", w, addr))
}

// ensureFabric creates the fabric namespace if the node has none yet.
func (wt *watch) ensureFabric() (string, error) {
	if wt.st.FabricNS != "" {
		return wt.st.FabricNS, nil
	}
	name := wt.name + "-fabric"
	if err := createNetns(name); err != nil {
		return "", err
	}
	wt.st.FabricNS = name
	return name, wt.st.save()
}

// createVFs makes n VFs on PF pf (with wt.mu held): first every VF's veth end in the
// worker namespace, then the tree, so that a VF that appears in the tree has its
// netdev.
func (ww *workerWatch) createVFs(pf, n int) error {
	wt, b, wi := ww.wt, ww.adapter, ww.w.Index
	mtu := wt.st.Config.MTU
	base := vf.PCIAddr{Domain: b.Spec.Domain, Bus: b.Spec.Bus}
	port := vf.PortOfPF(pf, b.Spec.Ports)
	var made []*tracked
	var errs []error
	for k := range n {
		addr := sysfstree.VFAddr(base, pf, k)
		e := end{netns: ww.w.Netns, name: sysfstree.NetdevName(addr, port), mac: sysfstree.VFMAC(b.Spec.MACBase, pf, k, b.Spec.TotalVFs), alt: altName(wt.name, wi, addr.String()), mtu: mtu}
		t := &tracked{worker: wi, netns: e.netns, alt: e.alt, dev: addr, devPort: port, seen: sighting{netns: e.netns, name: e.name, mac: e.mac, mtu: mtu}}
		if err := ww.cableNew(t, e, pf, k); err != nil {
			errs = append(errs, fmt.Errorf("VF %d (%s): %w", k, addr, err))
			continue
		}
		wt.byAlt[t.alt] = t
		made = append(made, t)
	}
	if err := ww.tree.SetNumVFs(b, pf, n); err != nil {
		return errors.Join(append(errs, err)...)
	}
	h, nsh, err := handleAt(ww.w.Netns)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	defer nsh.Close()
	defer h.Close()
	for _, t := range made {
		t.current = t.seen.name // SetNumVFs wrote its net/ entry
		l, err := h.LinkByName(t.seen.name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ww.byIndex[l.Attrs().Index] = t
		errs = append(errs, ww.applyLocked(netlink.LinkUpdate{Header: unix.NlMsghdr{Type: unix.RTM_NEWLINK}, Link: l}))
	}
	wt.logf("worker %d: PF%d %s: %d VFs created (mgmt netdev %s)", wi, pf, b.PFs[pf], n, b.Mgmt[pf])
	return errors.Join(errs...)
}

// cableNew gives the new VF t its veth end e: the peer worker's VF of the same PF and
// index, when it exists and faces the fabric, has its fabric end taken over (renamed,
// re-addressed and moved into the worker namespace); otherwise a new veth goes to the
// fabric namespace.
func (ww *workerWatch) cableNew(t *tracked, e end, pf, k int) error {
	wt := ww.wt
	if peer := ww.w.PeerOf; peer > 0 {
		pt := wt.byAlt[altName(wt.name, peer, t.dev.String())]
		if pt != nil && !pt.gone && pt.pair != nil {
			p := pt.pair
			for i, f := range p.ends {
				if f.worker != 0 {
					continue
				}
				if err := adoptFabricEnd(f, e); err != nil {
					return err
				}
				delete(wt.byAlt, f.alt)
				p.ends[i], t.pair = t, p
				return nil
			}
		}
	}
	fabric, err := wt.ensureFabric()
	if err != nil {
		return err
	}
	f := &tracked{netns: fabric, alt: wt.fabricEndAlt(ww.w.Index, t.dev), dev: t.dev, seen: sighting{netns: fabric, name: fabricEndName(ww.w.Index, pf, k), mtu: e.mtu}}
	if err := addVeth(e, end{netns: fabric, name: f.seen.name, alt: f.alt, mtu: e.mtu}); err != nil {
		return err
	}
	p := &pair{ends: [2]*tracked{t, f}}
	t.pair, f.pair = p, p
	wt.byAlt[f.alt] = f
	wt.pairs = append(wt.pairs, p)
	return nil
}

// adoptFabricEnd turns the fabric end f into the worker end e: down, renamed,
// re-addressed, its alternative name replaced, then moved into e's namespace.
// Equivalent to:
//
//	ip -n FABRIC link set F down name E.name address E.mac mtu E.mtu
//	ip -n FABRIC link property del dev E.name altname F.alt
//	ip -n FABRIC link property add dev E.name altname E.alt
//	ip -n FABRIC link set E.name netns E.netns
func adoptFabricEnd(f *tracked, e end) error {
	h, nsh, err := handleAt(f.netns)
	if err != nil {
		return err
	}
	defer nsh.Close()
	defer h.Close()
	l, err := linkByAlt(h, f.alt)
	if err != nil {
		return fmt.Errorf("netns %s: %w", f.netns, err)
	}
	to, err := netns.GetFromPath(netnsPath(e.netns))
	if err != nil {
		return fmt.Errorf("open netns %s: %w", e.netns, err)
	}
	defer to.Close()
	mac, err := net.ParseMAC(e.mac)
	if err != nil {
		return err
	}
	for _, step := range []func() error{
		func() error { return h.LinkSetDown(l) },
		func() error { return h.LinkSetName(l, e.name) },
		func() error { return h.LinkSetHardwareAddr(l, mac) },
		func() error { return h.LinkSetMTU(l, e.mtu) },
		func() error { return h.LinkDelAltName(l, f.alt) },
		func() error { return h.LinkAddAltName(l, e.alt) },
		func() error { return h.LinkSetNsFd(l, int(to)) },
	} {
		if err := step(); err != nil {
			return fmt.Errorf("netns %s: take over %s as %s: %w", f.netns, l.Attrs().Name, e.name, err)
		}
	}
	return nil
}

// removeVFs removes every VF of PF pf (with wt.mu held): their veth ends wherever they
// are, then the VFs and the management netdev from the tree.
func (ww *workerWatch) removeVFs(pf int) error {
	wt, b, wi := ww.wt, ww.adapter, ww.w.Index
	var errs []error
	for k, bv := range b.VFs[pf] {
		t := wt.byAlt[altName(wt.name, wi, bv.Addr.String())]
		if t == nil {
			continue
		}
		if err := ww.uncable(t, pf, k); err != nil {
			errs = append(errs, fmt.Errorf("VF %d (%s): %w", k, bv.Addr, err))
		}
		t.gone, t.pair, t.current = true, nil, ""
		delete(wt.byAlt, t.alt)
	}
	errs = append(errs, ww.tree.SetNumVFs(b, pf, 0))
	wt.logf("worker %d: PF%d %s: VFs and mgmt netdev removed", wi, pf, b.PFs[pf])
	return errors.Join(errs...)
}

// uncable takes the removed VF t's veth end away: when the other end is a peer
// worker's VF, t's end becomes that VF's fabric end (renamed, its alternative name
// replaced, moved into the fabric namespace); otherwise the veth is deleted.
func (ww *workerWatch) uncable(t *tracked, pf, k int) error {
	wt := ww.wt
	p := t.pair
	if p == nil {
		return nil
	}
	var other *tracked
	for _, e := range p.ends {
		if e != t {
			other = e
		}
	}
	where, found := findByAlt(t.alt, ww.w.Netns)
	if other != nil && other.worker > 0 {
		fabric, err := wt.ensureFabric()
		if err != nil {
			return err
		}
		f := &tracked{netns: fabric, alt: wt.fabricEndAlt(other.worker, other.dev), dev: other.dev, seen: sighting{netns: fabric, name: fabricEndName(other.worker, pf, k), mtu: t.seen.mtu}}
		if !found {
			return fmt.Errorf("its veth end %s is nowhere to be found", t.alt)
		}
		if err := releaseEnd(where, t.alt, f); err != nil {
			return err
		}
		for i, e := range p.ends {
			if e == t {
				p.ends[i], f.pair = f, p
			}
		}
		wt.byAlt[f.alt] = f
		return nil
	}
	wt.pairs = deletePair(wt.pairs, p)
	if other != nil {
		other.gone = true
		delete(wt.byAlt, other.alt)
	}
	switch {
	case found:
		return deleteByAlt(where, t.alt)
	case other != nil:
		// Our end is not to be seen: delete the pair through the fabric end.
		return deleteByAlt(netnsPath(other.netns), other.alt)
	}
	return nil
}

func deletePair(pairs []*pair, p *pair) []*pair {
	out := pairs[:0]
	for _, q := range pairs {
		if q != p {
			out = append(out, q)
		}
	}
	return out
}

// findByAlt returns the path of the namespace that holds the link with the
// alternative name alt: the worker namespace home first, then every reachable one.
func findByAlt(alt, home string) (string, bool) {
	refs := append([]nsRef{{path: netnsPath(home)}}, reachableNetns()...)
	for _, ref := range refs {
		ns, err := netns.GetFromPath(ref.path)
		if err != nil {
			continue
		}
		h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
		if err != nil {
			ns.Close()
			continue
		}
		_, err = linkByAlt(h, alt)
		h.Close()
		ns.Close()
		if err == nil {
			return ref.path, true
		}
	}
	return "", false
}

// linkByAlt returns the link of h's namespace whose alternative name is alt.
func linkByAlt(h *netlink.Handle, alt string) (netlink.Link, error) {
	links, err := linkList(h)
	if err != nil {
		return nil, err
	}
	for _, l := range links {
		for _, a := range l.Attrs().AltNames {
			if a == alt {
				return l, nil
			}
		}
	}
	return nil, fmt.Errorf("no link with altname %s", alt)
}

// releaseEnd turns the link with alternative name alt, in the namespace at path, into
// the fabric end f. Equivalent to:
//
//	ip -n NS link set NAME down name F.name
//	ip -n NS link property del dev F.name altname ALT
//	ip -n NS link property add dev F.name altname F.alt
//	ip -n NS link set F.name netns F.netns
func releaseEnd(path, alt string, f *tracked) error {
	to, err := netns.GetFromPath(netnsPath(f.netns))
	if err != nil {
		return err
	}
	defer to.Close()
	return atAlt(path, alt, func(h *netlink.Handle, l netlink.Link) error {
		for _, step := range []func() error{
			func() error { return h.LinkSetDown(l) },
			func() error { return h.LinkSetName(l, f.seen.name) },
			func() error { return h.LinkDelAltName(l, alt) },
			func() error { return h.LinkAddAltName(l, f.alt) },
			func() error { return h.LinkSetNsFd(l, int(to)) },
		} {
			if err := step(); err != nil {
				return fmt.Errorf("release %s to netns %s as %s: %w", l.Attrs().Name, f.netns, f.seen.name, err)
			}
		}
		return nil
	})
}

// atAlt runs f with a netlink handle in the namespace at path and the link whose
// alternative name is alt.
func atAlt(path, alt string, f func(h *netlink.Handle, l netlink.Link) error) error {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return err
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := linkByAlt(h, alt)
	if err != nil {
		return err
	}
	return f(h, l)
}

// deleteByAlt deletes the link with alternative name alt in the namespace at path
// (a veth: with its peer).
func deleteByAlt(path, alt string) error {
	return atAlt(path, alt, func(h *netlink.Handle, l netlink.Link) error {
		if err := h.LinkDel(l); err != nil && !errors.As(err, new(netlink.LinkNotFoundError)) {
			return fmt.Errorf("delete %s: %w", l.Attrs().Name, err)
		}
		return nil
	})
}

// recordVFs rewrites the worker's VF list in the state from the adapter (wt.mu held).
func (ww *workerWatch) recordVFs() {
	b := ww.adapter
	var vfs []VF
	for pf := range 4 {
		for k, bv := range b.VFs[pf] {
			vfs = append(vfs, VF{Addr: bv.Addr, PF: pf, Index: k, Port: bv.Port, Netdev: bv.Netdev.Name, MAC: bv.Netdev.MAC, AltName: altName(ww.wt.name, ww.w.Index, bv.Addr.String())})
		}
	}
	ww.w.VFs = vfs
}
