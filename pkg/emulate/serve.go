package emulate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/emulate/sysfstree"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/uevent"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// scanInterval is how often the watcher looks for the VF netdevs that are away from
// their worker (see Serve).
const scanInterval = 100 * time.Millisecond

// Serve is the watcher: it keeps every worker's sysfs tree in step with the links of
// the worker's namespace until ctx ends. It writes watcher.pid, then watcher.ready
// once every namespace is subscribed.
//
// While a VF netdev is away from its worker (in a pod), Serve also emulates what the
// kernel does with a physical VF netdev when the pod's namespace is destroyed: it
// returns the netdev to the host. A veth end dies with its namespace, and its peer
// with it, so the watcher looks for every away VF by its alternative name in every
// namespace it can reach (scan) every 100 ms, and at once when a VF end leaves
// its worker namespace. When neither end of a VF's veth is found (in two consecutive
// scans, or in one scan that follows an RTM_DELLINK of an end in its worker
// namespace), it recreates the pair: each end in its own worker namespace (the fabric
// end in the fabric namespace), under the name, MAC and MTU it was last seen with
// (dev%d, the lowest free, when that name is taken there), down. See refund.
func Serve(ctx context.Context, runDir, name string, log io.Writer) error {
	st, err := Load(runDir, name)
	if err != nil {
		return err
	}
	dir := st.Config.StateDir()
	if err := os.WriteFile(filepath.Join(dir, "watcher.pid"), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	var logMu sync.Mutex
	logf := func(format string, args ...any) {
		logMu.Lock()
		defer logMu.Unlock()
		fmt.Fprintf(log, time.Now().Format("15:04:05.000 ")+format+"\n", args...)
	}
	wt := newWatch(st, logf)
	ready := make(chan struct{}, len(st.Workers))
	for i := range st.Workers {
		ww := wt.forWorker(&st.Workers[i])
		nv, err := ww.newNumVFsWatch()
		if err != nil {
			cancel()
			wg.Wait()
			return fmt.Errorf("worker %d: %w", ww.w.Index, err)
		}
		wg.Go(func() { nv.run(ctx) })
		wg.Go(func() {
			if err := ww.run(ctx, ready); err != nil && ctx.Err() == nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("worker %d: %w", ww.w.Index, err))
				mu.Unlock()
				cancel()
			}
		})
	}
	for range st.Workers {
		select {
		case <-ready:
		case <-ctx.Done():
		}
	}
	if ctx.Err() == nil {
		wg.Go(func() { wt.scanLoop(ctx) })
		if err := os.WriteFile(filepath.Join(dir, "watcher.ready"), nil, 0o600); err != nil {
			cancel()
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
		logf("watching %d workers", len(st.Workers))
	}
	wg.Wait()
	return errors.Join(errs...)
}

// watch is the state the watcher's goroutines share: one goroutine per worker
// follows the links of the worker's namespace and writes its tree; the scanner
// follows the VF ends that are away and refunds destroyed pairs. mu guards every
// tracked and pair, and the trees.
type watch struct {
	name  string
	st    *State // the recorded state; its workers' VFs and FabricNS change under mu
	every time.Duration
	logf  func(string, ...any)
	kick  chan struct{} // a VF end left its worker namespace: scan now
	seq   atomic.Uint64 // SEQNUM of the last uevent sent

	mu    sync.Mutex
	byAlt map[string]*tracked // every worker netdev and fabric VF end
	pairs []*pair             // the veths of the VF cables
}

// tracked is one netdev that the watcher follows: a VF or port netdev of a worker,
// or the fabric namespace's end of an unpaired worker's VF.
type tracked struct {
	worker  int    // 1-based; 0 for a fabric end
	netns   string // its home namespace
	alt     string // its alternative name
	dev     vf.PCIAddr
	devPort int
	current string   // name of its net/ entry in the worker's tree; "" while away
	seen    sighting // where and as what it was last seen
	pair    *pair    // the veth it is an end of; nil for ports
	gone    bool     // its VF was removed (sriov_numvfs 0): events about it are stale
}

// sighting is where, and as what, an event or a scan last saw a netdev.
type sighting struct {
	netns string // a name under /run/netns, another mount point of a namespace, or "pid N"
	ino   uint64 // inode of that namespace; 0 when seen through an event
	name  string
	mac   string
	mtu   int
}

// pair is the veth of one VF cable.
type pair struct {
	ends     [2]*tracked
	misses   int    // consecutive conclusive scans that found neither end
	dellinks uint64 // RTM_DELLINKs of an end in its worker namespace
	checked  uint64 // how many of those a conclusive scan has followed
	failures int    // failed refunds in a row
}

// maxRefundFailures is how many refunds of one pair may fail in a row before the
// watcher gives up on that pair.
const maxRefundFailures = 3

// watched reports whether the scanner looks for the pair: one of its worker ends is
// away, or an RTM_DELLINK of one of its ends is not followed yet. Call with mu held.
func (p *pair) watched() bool {
	if p.failures >= maxRefundFailures {
		return false
	}
	if p.dellinks > p.checked {
		return true
	}
	for _, t := range p.ends {
		if t.worker > 0 && t.current == "" {
			return true
		}
	}
	return false
}

func newWatch(st *State, logf func(string, ...any)) *watch {
	wt := &watch{
		name:  st.Config.Name,
		st:    st,
		every: scanInterval,
		logf:  logf,
		kick:  make(chan struct{}, 1),
		byAlt: map[string]*tracked{},
	}
	mtu := st.Config.MTU
	for _, w := range st.Workers {
		for _, v := range w.VFs {
			t := &tracked{
				worker: w.Index, netns: w.Netns, alt: v.AltName, dev: v.Addr, devPort: v.Port,
				seen: sighting{netns: w.Netns, name: v.Netdev, mac: v.MAC, mtu: mtu},
			}
			if names, err := w.Root().ReadDir(sysfstree.DevicePath(v.Addr) + "/net"); err == nil && len(names) > 0 {
				t.current = names[0]
			}
			wt.byAlt[v.AltName] = t
		}
		for _, p := range w.Ports {
			wt.byAlt[p.AltName] = &tracked{worker: w.Index, netns: w.Netns, alt: p.AltName, dev: p.Addr, devPort: p.Index, current: p.Netdev}
		}
	}
	link := func(a, b *tracked) {
		p := &pair{ends: [2]*tracked{a, b}}
		a.pair, b.pair = p, p
		wt.pairs = append(wt.pairs, p)
	}
	for _, w := range st.Workers {
		switch {
		case w.PeerOf > w.Index && w.PeerOf <= len(st.Workers):
			peer := st.Workers[w.PeerOf-1]
			for k, v := range w.VFs {
				if k < len(peer.VFs) {
					link(wt.byAlt[v.AltName], wt.byAlt[peer.VFs[k].AltName])
				}
			}
		case w.PeerOf == 0 && st.FabricNS != "":
			for k, v := range w.VFs {
				f := &tracked{
					netns: st.FabricNS, alt: fabricAltName(st.Config.Name, v.Addr.String()), dev: v.Addr,
					seen: sighting{netns: st.FabricNS, name: fabricVF(k), mtu: mtu},
				}
				wt.byAlt[f.alt] = f
				link(wt.byAlt[v.AltName], f)
			}
		}
	}
	return wt
}

// scanNow asks the scanner for a scan without waiting for it.
func (wt *watch) scanNow() {
	select {
	case wt.kick <- struct{}{}:
	default:
	}
}

// workerWatch follows the links of one worker's namespace.
type workerWatch struct {
	wt      *watch
	w       *Worker
	tree    *sysfstree.Tree
	prefix  string
	byIndex map[int]*tracked        // guarded by wt.mu
	adapter *sysfstree.BuiltAdapter // the worker's adapter as the tree has it; guarded by wt.mu
	uev     *uevent.Conn            // sends the worker's uevents; nil when it cannot
}

func (wt *watch) forWorker(w *Worker) *workerWatch {
	return &workerWatch{
		wt:      wt,
		w:       w,
		tree:    &sysfstree.Tree{Root: w.Root(), Opts: sysfstree.Options{AbsoluteLinks: true}},
		prefix:  fmt.Sprintf("%s-w%d.", wt.name, w.Index),
		byIndex: map[int]*tracked{},
	}
}

func (ww *workerWatch) run(ctx context.Context, ready chan<- struct{}) error {
	w, logf := ww.w, ww.wt.logf
	signalled := false
	for ctx.Err() == nil {
		ns, err := netns.GetFromPath(w.NetnsPath())
		if err != nil {
			return err
		}
		ch := make(chan netlink.LinkUpdate, 1024)
		done := make(chan struct{})
		subErr := make(chan error, 1)
		err = netlink.LinkSubscribeWithOptions(ch, done, netlink.LinkSubscribeOptions{
			Namespace:         &ns,
			ListExisting:      true,
			ReceiveBufferSize: 4 << 20,
			ErrorCallback: func(err error) {
				select {
				case subErr <- err:
				default:
				}
			},
		})
		ns.Close()
		if err != nil {
			return fmt.Errorf("subscribe to links of netns %s: %w", w.Netns, err)
		}
		if !signalled {
			// Ready means the tree matches the namespace now, not once the
			// subscription's own listing has been read.
			if err := ww.syncAll(); err != nil {
				logf("worker %d: initial sync: %v", w.Index, err)
			}
			ready <- struct{}{}
			signalled = true
		}
	loop:
		for {
			select {
			case <-ctx.Done():
				close(done)
				return nil
			case err := <-subErr:
				logf("worker %d: netlink: %v; resubscribing", w.Index, err)
				close(done)
				break loop
			case u, ok := <-ch:
				if !ok {
					logf("worker %d: subscription closed; resubscribing", w.Index)
					break loop
				}
				if err := ww.apply(u); err != nil {
					logf("worker %d: %v", w.Index, err)
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// syncAll applies every link of the worker's namespace as if it had just appeared.
func (ww *workerWatch) syncAll() error {
	h, nsh, err := handleAt(ww.w.Netns)
	if err != nil {
		return err
	}
	defer nsh.Close()
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return err
	}
	var errs []error
	for _, l := range links {
		errs = append(errs, ww.apply(netlink.LinkUpdate{Header: unix.NlMsghdr{Type: unix.RTM_NEWLINK}, Link: l}))
	}
	return errors.Join(errs...)
}

// apply updates the tree for one link message.
func (ww *workerWatch) apply(u netlink.LinkUpdate) error {
	ww.wt.mu.Lock()
	defer ww.wt.mu.Unlock()
	return ww.applyLocked(u)
}

// applyLocked is apply with wt.mu held.
func (ww *workerWatch) applyLocked(u netlink.LinkUpdate) error {
	wt, wi := ww.wt, ww.w.Index
	a := u.Attrs()
	var t *tracked
	for _, alt := range a.AltNames {
		if strings.HasPrefix(alt, ww.prefix) {
			t = wt.byAlt[alt]
			break
		}
	}
	if t == nil {
		t = ww.byIndex[a.Index]
	}
	if t == nil {
		return nil // not one of ours: lo, or something a test made
	}
	if t.gone {
		delete(ww.byIndex, a.Index)
		return nil // a removed VF's end, moved away or deleted
	}
	// Where it was last seen: here, also when it just left (moved or destroyed).
	t.seen = sighting{netns: ww.w.Netns, name: a.Name, mac: a.HardwareAddr.String(), mtu: a.MTU}
	if u.Header.Type == unix.RTM_DELLINK {
		delete(ww.byIndex, a.Index)
		if t.pair != nil {
			// Moved into a pod, or destroyed with its peer: the scanner tells which.
			t.pair.dellinks++
			wt.scanNow()
		}
		if t.current == "" {
			return nil
		}
		wt.logf("worker %d: %s (%s) left the namespace", wi, t.current, t.dev)
		err := ww.tree.RemoveNetdev(t.dev, t.current)
		t.current = ""
		return err
	}
	ww.byIndex[a.Index] = t
	if t.current != a.Name {
		if t.current != "" {
			if err := ww.tree.RemoveNetdev(t.dev, t.current); err != nil {
				return err
			}
			wt.logf("worker %d: %s (%s) renamed to %s", wi, t.current, t.dev, a.Name)
		} else {
			wt.logf("worker %d: %s (%s) is in the namespace", wi, a.Name, t.dev)
		}
		t.current = ""
		if err := ww.tree.AddNetdev(t.dev, sysfstree.Netdev{Name: a.Name, MAC: a.HardwareAddr.String(), MTU: a.MTU, DevPort: t.devPort, Type: 1}); err != nil {
			return err
		}
		t.current = a.Name
	}
	carrier := "0"
	if a.RawFlags&unix.IFF_LOWER_UP != 0 {
		carrier = "1"
	}
	for attr, val := range map[string]string{
		"mtu": strconv.Itoa(a.MTU), "address": a.HardwareAddr.String(),
		"operstate": operstate(a.OperState), "carrier": carrier,
	} {
		// Rewrite only what changed: a reader never sees an unchanged file empty.
		if cur, err := ww.tree.Root.ReadString("class/net/" + a.Name + "/" + attr); err == nil && cur == val {
			continue
		}
		if err := ww.tree.SetNetdevAttr(a.Name, attr, val); err != nil {
			return err
		}
	}
	return nil
}

func operstate(s netlink.LinkOperState) string {
	switch s {
	case netlink.OperUp:
		return "up"
	case netlink.OperDown:
		return "down"
	case netlink.OperLowerLayerDown:
		return "lowerlayerdown"
	case netlink.OperDormant:
		return "dormant"
	case netlink.OperNotPresent:
		return "notpresent"
	case netlink.OperTesting:
		return "testing"
	}
	return "unknown"
}
