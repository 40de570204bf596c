package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"

	"github.com/chelsio-k8s/chelsio-sriov/internal/roottest"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/cni"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/sysfs"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// stressDuration is how long the runtimes of TestPrivilegedCNIStress run:
// CHELSIO_STRESS_DURATION (make stress), else a short pass for make test.
func stressDuration(t *testing.T) time.Duration {
	if s := os.Getenv("CHELSIO_STRESS_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			t.Fatalf("CHELSIO_STRESS_DURATION=%q: want a positive duration such as 10m", s)
		}
		return d
	}
	return 8 * time.Second
}

// stressRuntime is one container runtime: its own plugin (in process), its own
// random source, the pod it runs now.
type stressRuntime struct {
	id    int
	p     *cni.Plugin
	mu    sync.Mutex // rng: Fault may be called from the plugin's IPAM goroutine
	rng   *rand.Rand
	chaos atomic.Bool // inject faults now
	pod   ns.NetNS
	n     int // attachments started, for unique container IDs
}

func (r *stressRuntime) roll(p float64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rng.Float64() < p
}

func (r *stressRuntime) intn(n int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rng.IntN(n)
}

// stressStats counts what the runtimes did.
type stressStats struct {
	addOK, addFault, addBusy, addOther, dels, delRetries, checks, podsDied atomic.Int64
}

// stressNode is what the runtimes share: the node, the counts, which container
// holds which VF, and the invariant violations seen.
type stressNode struct {
	e        *cniEnv
	addrs    []string
	stats    stressStats
	heldMu   sync.Mutex
	held     map[string]string // VF → the container that holds it
	failMu   sync.Mutex
	failures []string
}

func (w *stressNode) fail(format string, args ...any) {
	w.failMu.Lock()
	defer w.failMu.Unlock()
	if len(w.failures) < 20 {
		w.failures = append(w.failures, fmt.Sprintf(format, args...))
	}
}

func (w *stressNode) newPod() ns.NetNS {
	pod, err := testutils.NewNS()
	if err != nil {
		w.fail("new pod netns: %v", err)
		return nil
	}
	return pod
}

func dropPod(pod ns.NetNS) {
	_ = roottest.RemoveNetns(pod)
}

// TestPrivilegedCNIStress runs 64 runtimes at once against 64 VFs for a bounded
// time, under -race in make test. Each picks a random VF (so that runtimes collide
// on VFs), runs ADD with a fault injected at a random step one time in five, CHECK
// now and then, and DEL as runtimes do (after every ADD, failed or not, retried
// until it succeeds, itself failing at random steps at first); now and then the
// pod's namespace is destroyed before DEL. While it runs, a VF is never in two
// pods: each successful ADD finds no other live attachment of its VF. Afterwards
// every VF is back in the worker as it was (name, MTU, MAC, PF-side settings), no
// lease, no state file and no lock is left.
func TestPrivilegedCNIStress(t *testing.T) {
	roottest.Require(t)
	const runtimes, vfs = 64, 64
	d := stressDuration(t)
	node := upNode(t, "--vfs", "64", "--workers", "1", "--mtu", "1500")
	e := newCNIEnv(t, node)
	host := node.workerNS(1)
	root := sysfs.Root(filepath.Join(node.runDir, node.name, "w1", "sys"))
	all := e.homes(t, 1)
	if len(all) != vfs {
		t.Fatalf("%d VFs with a netdev in the worker, want %d", len(all), vfs)
	}
	var addrs []string
	beforePF := map[string]vf.VFConfig{}
	for a := range all {
		addrs = append(addrs, a)
		beforePF[a] = e.pfConfig(t, 1, a)
	}
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(node.runDir, node.name, "watcher.log"))
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			t.Logf("the emulator's watcher.log, last lines:\n%s", strings.Join(lines[max(0, len(lines)-60):], "\n"))
		}
	})
	seed := uint64(time.Now().UnixNano())
	t.Logf("%d runtimes, %d VFs, %s, seed %d", runtimes, vfs, d, seed)

	w := &stressNode{e: e, addrs: addrs, held: map[string]string{}}
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for i := range runtimes {
		r := &stressRuntime{id: i, rng: rand.New(rand.NewPCG(seed, uint64(i)))}
		r.p = newPlugin(root)
		r.p.HostNS = host
		r.p.LockTimeout = 10 * time.Second
		r.p.Fault = func(step string) error {
			if r.chaos.Load() && r.roll(0.2/float64(len(cni.AddSteps))) {
				return errors.New("chaos")
			}
			return nil
		}
		if r.pod = w.newPod(); r.pod == nil {
			break
		}
		wg.Go(func() {
			defer func() {
				if r.pod != nil {
					dropPod(r.pod)
				}
			}()
			for time.Now().Before(deadline) {
				r.cycle(w)
				if r.pod == nil {
					return
				}
			}
		})
	}
	wg.Wait()
	stats := &w.stats
	t.Logf("ADD: %d attached, %d failed by injected faults, %d refused (VF busy), %d other failures; DEL: %d (%d retries); CHECK: %d; pods destroyed before DEL: %d",
		stats.addOK.Load(), stats.addFault.Load(), stats.addBusy.Load(), stats.addOther.Load(), stats.dels.Load(), stats.delRetries.Load(), stats.checks.Load(), stats.podsDied.Load())
	for _, f := range w.failures {
		t.Error(f)
	}
	if stats.addOK.Load() == 0 {
		t.Error("no ADD succeeded: the stress proved nothing")
	}

	// The runtime's GC, with no attachment left valid, collects what a DEL had to
	// leave for it: the state of a VF that had not come back from a destroyed pod
	// namespace by the end of DEL's wait.
	gc := newPlugin(root)
	gc.HostNS = host
	gcConf := e.conf(1, "", map[string]any{"cniVersion": "1.1.0", "cni.dev/valid-attachments": []any{}})
	if err := gc.GC(e.args("", nil, gcConf)); err != nil {
		t.Errorf("GC: %v", err)
	}

	// Nothing lost.
	wn := node.workerNS(1)
	eventually(t, "every VF back in the worker as before", 15*time.Second, func() (bool, string) {
		l, err := node.listTry(t, 1)
		if err != nil {
			return false, err.Error()
		}
		if len(l) != len(all) {
			return false, fmt.Sprintf("%d VFs listed, want %d", len(l), len(all))
		}
		for _, v := range l {
			if v.Netdev == "" {
				return false, "VF " + v.PCIAddress + ": no netdev in the worker's tree"
			}
			got, err := linkIn(t, wn, v.Netdev)
			if err != nil {
				return false, "VF " + v.PCIAddress + ": " + err.Error()
			}
			want := all[v.PCIAddress]
			got.Up = want.Up
			if d := cmp.Diff(want, got); d != "" {
				return false, "VF " + v.PCIAddress + " mismatch (-before +now):\n" + d
			}
		}
		return true, ""
	})
	for _, a := range addrs {
		if diff := cmp.Diff(beforePF[a], e.pfConfig(t, 1, a)); diff != "" {
			t.Errorf("VF %s: PF-side settings mismatch (-before +after):\n%s", a, diff)
		}
	}
	if l := e.leases(); len(l) != 0 {
		t.Errorf("%d leases left: %v", len(l), l)
	}
	if f := e.stateFiles(t, 1); len(f) != 0 {
		t.Errorf("state files left: %v", f)
	}
	locks, _ := filepath.Glob(filepath.Join(e.dataDirs[1], "locks", "*"))
	for _, l := range locks {
		if held := lockHeld(t, l); held {
			t.Errorf("lock %s still held", filepath.Base(l))
		}
	}
}

// cycle is one pod's life: ADD, maybe CHECK, maybe the namespace destroyed, DEL.
func (r *stressRuntime) cycle(w *stressNode) {
	e, stats, fail := w.e, &w.stats, w.fail
	addr := w.addrs[r.intn(len(w.addrs))]
	r.n++
	id := fmt.Sprintf("stress-%d-%d", r.id, r.n)
	conf := e.conf(1, addr, map[string]any{"cniVersion": "1.1.0", "mtu": 9000, "vlan": 100 + r.id})
	args := e.args(id, r.pod, conf)

	r.chaos.Store(true)
	res, err := r.p.Add(args)
	attached := err == nil
	switch {
	case err == nil:
		stats.addOK.Add(1)
		w.heldMu.Lock()
		if other, ok := w.held[addr]; ok {
			fail("VF %s attached to %s while %s holds it", addr, id, other)
		}
		w.held[addr] = id
		w.heldMu.Unlock()
		if name, ok := podVF(r.pod, "net1"); !ok || name != addr {
			fail("%s: ADD succeeded but the pod's net1 is %q, want VF %s", id, name, addr)
		}
	case strings.Contains(err.Error(), "injected fault"):
		stats.addFault.Add(1)
	case codeOf(err) == cni.CodeVFBusy || codeOf(err) == cni.CodeTryAgainLater:
		stats.addBusy.Add(1)
	default:
		stats.addOther.Add(1)
		fail("%s: ADD of %s: %v", id, addr, err)
	}
	if attached && r.roll(0.3) {
		stats.checks.Add(1)
		// The runtime passes the cached ADD result as prevResult.
		prev, err := json.Marshal(res)
		if err != nil {
			fail("%s: result: %v", id, err)
		}
		cargs := e.args(id, r.pod, e.conf(1, addr, map[string]any{"cniVersion": "1.1.0", "mtu": 9000, "vlan": 100 + r.id, "prevResult": json.RawMessage(prev)}))
		if err := r.p.Check(cargs); err != nil {
			fail("%s: CHECK: %v", id, err)
		}
	}
	if attached {
		w.heldMu.Lock()
		delete(w.held, addr)
		w.heldMu.Unlock()
	}
	if attached && r.roll(0.1) {
		// The pod dies before DEL: the kernel brings the VF home by itself.
		stats.podsDied.Add(1)
		dropPod(r.pod)
		r.pod = w.newPod()
		if r.pod == nil {
			return
		}
	}
	// DEL, as runtimes do after every ADD, retried until it succeeds; the first
	// tries may fail at an injected fault, the last ones run clean.
	stats.dels.Add(1)
	for try := 0; ; try++ {
		r.chaos.Store(try < 2)
		err := r.p.Del(args)
		if err == nil {
			break
		}
		stats.delRetries.Add(1)
		if try == 4 {
			fail("%s: DEL of %s still failing after %d tries: %v", id, addr, try+1, err)
			break
		}
		if !strings.Contains(err.Error(), "injected fault") {
			fail("%s: DEL of %s: %v", id, addr, err)
		}
	}
}

// codeOf returns the CNI error code of err, or 0.
func codeOf(err error) uint {
	if te := cni.AsCNIError(err); te != nil {
		return te.Code
	}
	return 0
}

// podVF returns the PCI address of the VF that the pod's interface name is, read
// from the emulated VF's alternative name.
func podVF(pod ns.NetNS, name string) (string, bool) {
	var addr string
	err := pod.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return err
		}
		for _, alt := range l.Attrs().AltNames {
			if i := strings.LastIndex(alt, "-w"); i >= 0 {
				if _, rest, ok := strings.Cut(alt[i:], "."); ok {
					p := strings.Split(rest, ".")
					if len(p) == 4 {
						addr = p[0] + ":" + p[1] + ":" + p[2] + "." + p[3]
					}
				}
			}
		}
		return nil
	})
	return addr, err == nil && addr != ""
}
