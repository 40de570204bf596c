package deviceplugin

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/chelsio-k8s/chelsio-sriov/internal/roottest"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/emulate/sysfstree"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/sysfs"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/uevent"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// ueventTree is a tree of one T62100-CR (bus 81) with 2 VFs on PF0.
func ueventTree(t *testing.T) sysfs.Root {
	t.Helper()
	tree, err := sysfstree.Build(t.TempDir(), sysfstree.Options{}, sysfstree.Adapter{VFs: [4]int{2}})
	if err != nil {
		t.Fatal(err)
	}
	return tree.Root
}

const vfDevpath = "/devices/pci0000:80/0000:80:03.0/0000:81:01.0"

// msg builds a uevent as the kernel sends it.
func msg(action, devpath, subsystem string, env ...string) []byte {
	m := &uevent.Message{Action: action, DevPath: devpath, Env: map[string]string{"SUBSYSTEM": subsystem, "SEQNUM": "1"}}
	for i := 0; i+1 < len(env); i += 2 {
		m.Env[env[i]] = env[i+1]
	}
	return m.Marshal()
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestUeventVerdicts(t *testing.T) {
	root := ueventTree(t)
	chelsio := []string{"PCI_ID", "1425:680D", "PCI_SLOT_NAME", "0000:81:01.0"}
	for _, c := range []struct {
		name     string
		b        []byte
		sender   uint32
		emulated bool
		want     string
	}{
		{"kernel: VF added", msg("add", vfDevpath, "pci", chelsio...), 0, false, verdictRescan},
		{"kernel: VF bound", msg("bind", vfDevpath, "pci", append(chelsio, "DRIVER", "cxgb4vf")...), 0, false, verdictRescan},
		{"kernel: VF unbound", msg("unbind", vfDevpath, "pci", chelsio...), 0, false, verdictRescan},
		{"kernel: VF removed, not in the tree", msg("remove", "/devices/pci0000:80/0000:80:03.0/0000:81:07.7", "pci", "PCI_ID", "1425:680d"), 0, false, verdictRescan},
		{"kernel: VF netdev added", msg("add", vfDevpath+"/net/enp129s1", "net", "INTERFACE", "enp129s1"), 0, false, verdictRescan},
		{"kernel: VF netdev moved", msg("move", vfDevpath+"/net/eth3", "net", "DEVPATH_OLD", vfDevpath+"/net/enp129s1"), 0, false, verdictRescan},
		{"kernel: PF changed", msg("change", "/devices/pci0000:80/0000:80:03.0/0000:81:00.0", "pci", "PCI_ID", "1425:6008"), 0, false, verdictRescan},
		{"kernel: another vendor's device", msg("add", "/devices/pci0000:00/0000:00:1f.6", "pci", "PCI_ID", "8086:15BC"), 0, false, verdictIgnored},
		{"kernel: another vendor on an unknown bus, no PCI_ID", msg("add", "/devices/pci0000:00/0000:00:1f.6/net/eno1", "net"), 0, false, verdictIgnored},
		{"kernel: a veth", msg("add", "/devices/virtual/net/veth0", "net", "INTERFACE", "veth0"), 0, false, verdictIgnored},
		{"kernel: a Chelsio VF's other subsystem", msg("add", vfDevpath+"/msi_irqs/42", "msi_irqs"), 0, false, verdictIgnored},
		{"kernel: online is no action of ours", msg("online", vfDevpath, "pci", chelsio...), 0, false, verdictIgnored},
		{"user process, real /sys", msg("add", vfDevpath, "pci", chelsio...), 4242, false, verdictUntrusted},
		{"user process, emulated tree", msg("add", vfDevpath, "pci", chelsio...), 4242, true, verdictRescan},
		{"user process, emulated tree, not Chelsio", msg("add", "/devices/pci0000:00/0000:00:1f.6", "pci", "PCI_ID", "8086:15BC"), 4242, true, verdictIgnored},
		{"kernel: malformed", []byte("add@/devices/x\x00ACTION=add\x00"), 0, false, verdictMalformed},
		{"kernel: libudev", []byte("libudev\x00\xfe\xed\xca\xfe"), 0, true, verdictMalformed},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := newUeventWatcher(root, c.emulated, quietLog())
			w.learnBuses()
			if got := w.judge(c.b, c.sender); got != c.want {
				t.Errorf("verdict %s; want %s", got, c.want)
			}
		})
	}
}

// TestUeventBusLearned: a netdev's removal after its VF left the tree still counts,
// once a Chelsio function on that bus was seen; a bus never seen does not.
func TestUeventBusLearned(t *testing.T) {
	w := newUeventWatcher(sysfs.Root(t.TempDir()), false, quietLog())
	gone := msg("remove", "/devices/pci0000:a0/0000:a0:01.0/0000:a1:00.4/net/eth9", "net")
	if got := w.judge(gone, 0); got != verdictIgnored {
		t.Fatalf("before any Chelsio function on bus a1: %s", got)
	}
	w.judge(msg("add", "/devices/pci0000:a0/0000:a0:01.0/0000:a1:00.0", "pci", "PCI_ID", "1425:6408"), 0)
	if got := w.judge(gone, 0); got != verdictRescan {
		t.Fatalf("after a Chelsio add on bus a1: %s; want %s", got, verdictRescan)
	}
}

func TestCoalescer(t *testing.T) {
	var c coalescer
	rescans := 0
	for range 64 {
		if c.event() {
			rescans++
		}
	}
	if rescans != 1 {
		t.Fatalf("a burst of 64 events: %d rescans at once; want 1", rescans)
	}
	if !c.windowEnd() {
		t.Fatal("no rescan when the burst's window ends")
	}
	if c.windowEnd() {
		t.Fatal("a rescan after a quiet window")
	}
	// A lone event: at once, and once more after its window.
	if !c.event() || !c.windowEnd() || c.windowEnd() {
		t.Fatal("a lone event: want a rescan at once and one after the window, then none")
	}
	// Events spread over 10 windows make at most one rescan per window, plus the first.
	rescans = 0
	for range 10 {
		for range 7 {
			if c.event() {
				rescans++
			}
		}
		if c.windowEnd() {
			rescans++
		}
	}
	for c.windowEnd() {
		rescans++
	}
	if rescans > 12 {
		t.Errorf("events over 10 windows: %d rescans; want at most 12", rescans)
	}
}

// TestPrivilegedUeventBurst sends 64 uevents about the tree's VFs from a user process
// in a scratch namespace: on the emulated tree they make a rescan or a few; on a root
// that is not emulated they are all untrusted and make none.
func TestPrivilegedUeventBurst(t *testing.T) {
	roottest.Require(t)
	root := ueventTree(t)
	if !vf.Emulated(root) {
		t.Fatal("the test tree is not emulated")
	}
	for _, emulated := range []bool{true, false} {
		ns := roottest.ScratchNetns(t)
		conn, err := uevent.ListenAt(ns, ueventRcvBuf)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		w := watchUevents(ctx, conn, newUeventWatcher(root, emulated, quietLog()))
		send, err := uevent.DialAt(ns)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 64 {
			m, _ := uevent.Parse(msg([]string{"add", "bind"}[i%2], vfDevpath, "pci", "PCI_ID", "1425:680D"))
			if err := send.Send(m); err != nil {
				t.Fatal(err)
			}
		}
		_ = send.Close()
		want := verdictUntrusted
		if emulated {
			want = verdictRescan
		}
		waitFor(t, "64 messages judged "+want, func() bool { return counterValue(w.received.WithLabelValues(want)) == 64 })
		waitFor(t, "the coalescer at rest", func() bool {
			w.mu.Lock()
			defer w.mu.Unlock()
			return !w.co.armed && len(w.relevant) == 0
		})
		n := counterValue(w.rescans)
		cancel()
		if !emulated {
			if n != 0 {
				t.Errorf("untrusted messages made %v rescans", n)
			}
			continue
		}
		if n < 1 || n > 3 {
			t.Errorf("a burst of 64 uevents made %v rescans; want 1 to 3", n)
		}
		select {
		case <-w.Changed():
		default:
			t.Error("Changed has no pending rescan")
		}
	}
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

// BenchmarkUeventJudge is the plugin's cost of one uevent: the trust check, the
// strict parse and the relevance test, for a Chelsio VF's bind and for a veth's add
// (what most of a burst on a busy node is).
func BenchmarkUeventJudge(b *testing.B) {
	tree, err := sysfstree.Build(b.TempDir(), sysfstree.Options{}, sysfstree.Adapter{VFs: [4]int{2}})
	if err != nil {
		b.Fatal(err)
	}
	w := newUeventWatcher(tree.Root, true, quietLog())
	w.learnBuses()
	for _, c := range []struct {
		name, want string
		msg        []byte
	}{
		{"chelsio-bind", verdictRescan, msg("bind", vfDevpath, "pci", "PCI_ID", "1425:680D", "PCI_SLOT_NAME", "0000:81:01.0", "DRIVER", "cxgb4vf")},
		{"veth-add", verdictIgnored, msg("add", "/devices/virtual/net/veth0", "net", "INTERFACE", "veth0", "IFINDEX", "7")},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if v := w.judge(c.msg, 4242); v != c.want {
					b.Fatalf("verdict %s; want %s", v, c.want)
				}
			}
		})
	}
}
