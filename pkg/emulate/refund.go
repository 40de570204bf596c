package emulate

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// scanLoop runs the scans: every wt.every while a VF end is away from its worker, and
// at once when one leaves its worker namespace.
func (wt *watch) scanLoop(ctx context.Context) {
	timer := time.NewTimer(wt.every)
	defer timer.Stop()
	for {
		var tick <-chan time.Time
		if wt.anyWatched() {
			tick = timer.C
		}
		select {
		case <-ctx.Done():
			return
		case <-wt.kick:
		case <-tick:
		}
		wt.scan(ctx)
		timer.Reset(wt.every)
	}
}

func (wt *watch) anyWatched() bool {
	wt.mu.Lock()
	defer wt.mu.Unlock()
	for _, p := range wt.pairs {
		if p.watched() {
			return true
		}
	}
	return false
}

// scan looks for both ends of every watched pair in every reachable namespace,
// records where and as what it found them, and refunds the pairs that are gone.
func (wt *watch) scan(ctx context.Context) {
	type job struct {
		p        *pair
		dellinks uint64 // RTM_DELLINKs that happened before the scan started
	}
	var jobs []job
	want := map[string]bool{}
	wt.mu.Lock()
	for _, p := range wt.pairs {
		if p.watched() {
			jobs = append(jobs, job{p, p.dellinks})
			for _, t := range p.ends {
				want[t.alt] = true
			}
		}
	}
	wt.mu.Unlock()
	if len(jobs) == 0 {
		return
	}

	found, live, complete := lookEverywhere(want)

	// The lock stays held through the refunds, so that a worker's goroutine applies
	// the arrival of a refunded end only after the refund is logged.
	wt.mu.Lock()
	defer wt.mu.Unlock()
	var plans []refundPlan
	for _, j := range jobs {
		p := j.p
		anyFound := false
		for _, t := range p.ends {
			s, ok := found[t.alt]
			if !ok {
				continue
			}
			anyFound = true
			if t.worker > 0 && s.netns != t.netns && s != t.seen {
				wt.logf("worker %d: %s is in netns %s as %s (%s, mtu %d)", t.worker, t.dev, s.netns, s.name, s.mac, s.mtu)
			}
			t.seen = s
		}
		switch {
		case anyFound:
			p.misses = 0
			p.checked = j.dellinks
		case !complete:
			// A namespace could not be read: the ends may be there.
		default:
			p.misses++
			// A veth end dies only with its peer: after an RTM_DELLINK, finding neither
			// end means the pair is gone; otherwise one may have been in transit.
			if j.dellinks > p.checked || p.misses >= 2 {
				plans = append(plans, wt.plan(p, live))
			}
			p.checked = j.dellinks
		}
	}
	for _, pl := range plans {
		if ctx.Err() != nil {
			return
		}
		names, err := refund(pl)
		pl.p.misses = 0
		if err != nil {
			pl.p.failures++
			wt.logf("%s: refund of the destroyed veth failed: %v", pl.ends[0].who, err)
			if pl.p.failures >= maxRefundFailures {
				wt.logf("%s: giving up after %d failed refunds", pl.ends[0].who, pl.p.failures)
			}
			continue
		}
		pl.p.failures = 0
		for i, e := range pl.ends {
			wt.logf("%s", e.logLine(names[i]))
		}
	}
}

// refundPlan is what a refund of one pair needs.
type refundPlan struct {
	p    *pair
	ends [2]refundEnd
}

// refundEnd is one end of a pair to refund.
type refundEnd struct {
	who      string // "worker 1: 0000:81:01.0", or "fabric: fab0"
	worker   int
	netns    string   // where it goes: its home namespace
	alt      string   // its alternative name
	seen     sighting // its last seen name, MAC and MTU
	wasAway  bool     // it was last seen outside its home namespace
	nsIsGone bool     // ... in a namespace that is gone
}

// plan copies what a refund of p needs. live holds the inodes of the namespaces the
// last scan reached. Call with mu held.
func (wt *watch) plan(p *pair, live map[uint64]bool) refundPlan {
	pl := refundPlan{p: p}
	for i, t := range p.ends {
		e := refundEnd{worker: t.worker, netns: t.netns, alt: t.alt, seen: t.seen, wasAway: t.seen.netns != t.netns}
		e.nsIsGone = e.wasAway && !live[t.seen.ino]
		if t.worker > 0 {
			e.who = fmt.Sprintf("worker %d: %s", t.worker, t.dev)
		} else {
			e.who = "fabric: " + t.seen.name
		}
		pl.ends[i] = e
	}
	return pl
}

func (e refundEnd) logLine(name string) string {
	switch {
	case e.worker == 0:
		return fmt.Sprintf("%s recreated as %s in netns %s (its veth peer is gone, and a veth pair dies as a whole)", e.who, name, e.netns)
	case e.nsIsGone:
		return fmt.Sprintf("%s returned to the host as %s (pod namespace gone)", e.who, name)
	case e.wasAway:
		return fmt.Sprintf("%s returned to the host as %s from netns %s (its veth peer is gone, and a veth pair dies as a whole)", e.who, name, e.seen.netns)
	}
	return fmt.Sprintf("%s recreated as %s (its veth peer is gone, and a veth pair dies as a whole)", e.who, name)
}

// refund recreates a destroyed veth pair as the kernel returns a physical VF netdev
// to the host when its pod's namespace is destroyed: each end goes into its home
// namespace under the name it was last seen with, or dev%d (the lowest free) when that
// name is taken there, with its last seen MAC and MTU and its alternative name, and
// down. It returns the names the ends got.
//
// The kernel announces an alternative name only for a link that is up, so the pair is
// made in two scratch namespaces and each end then moved home: it arrives there with
// one RTM_NEWLINK that carries its alternative name, as a refunded VF does, and the
// worker's watcher adds it to the tree. If anything fails, closing the scratch
// namespaces destroys what was made.
func refund(pl refundPlan) (names [2]string, retErr error) {
	homes := [2]netns.NsHandle{netns.None(), netns.None()}
	scratch := [2]netns.NsHandle{netns.None(), netns.None()}
	var ends [2]end
	defer func() {
		for _, h := range append(homes[:], scratch[:]...) {
			if h.IsOpen() {
				h.Close()
			}
		}
	}()
	for i, e := range pl.ends {
		h, err := netns.GetFromPath(netnsPath(e.netns))
		if err != nil {
			return names, fmt.Errorf("open netns %s: %w", e.netns, err)
		}
		homes[i] = h
		name, err := freeName(h, e.seen.name)
		if err != nil {
			return names, fmt.Errorf("netns %s: %w", e.netns, err)
		}
		ends[i] = end{netns: e.netns, name: name, mac: e.seen.mac, alt: e.alt, mtu: e.seen.mtu}
		if scratch[i], err = scratchNetns(); err != nil {
			return names, err
		}
	}
	if err := addVethAt(scratch[0], scratch[1], ends[0], ends[1]); err != nil {
		return names, err
	}
	for i, e := range ends {
		if err := moveLink(scratch[i], e.name, homes[i]); err != nil {
			return names, fmt.Errorf("move %s into netns %s: %w", e.name, e.netns, err)
		}
		names[i] = e.name
	}
	return names, nil
}

// freeName returns want if no link of the namespace has it as name or alternative
// name, else the lowest free dev%d, as the kernel names a netdev it returns to the
// host.
func freeName(ns netns.NsHandle, want string) (string, error) {
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return "", fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	links, err := linkList(h)
	if err != nil {
		return "", err
	}
	taken := map[string]bool{}
	for _, l := range links {
		taken[l.Attrs().Name] = true
		for _, alt := range l.Attrs().AltNames {
			taken[alt] = true
		}
	}
	if want != "" && len(want) < unix.IFNAMSIZ && !taken[want] {
		return want, nil
	}
	for n := 0; ; n++ {
		if name := "dev" + strconv.Itoa(n); !taken[name] {
			return name, nil
		}
	}
}

// moveLink moves the link called name from namespace from into namespace to.
// Equivalent to: ip -n FROM link set NAME netns TO
func moveLink(from netns.NsHandle, name string, to netns.NsHandle) error {
	h, err := netlink.NewHandleAt(from, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	if err != nil {
		return err
	}
	return h.LinkSetNsFd(l, int(to))
}

// linkList lists the links of h's namespace, again if a change interrupted the dump.
func linkList(h *netlink.Handle) ([]netlink.Link, error) {
	var err error
	for range 5 {
		var links []netlink.Link
		links, err = h.LinkList()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return links, err
		}
	}
	return nil, fmt.Errorf("list links: %w", err)
}

// nsRef is a network namespace that a scan can reach, and how.
type nsRef struct {
	path  string
	label string // the name under /run/netns, the mount point, or "pid N"
	ino   uint64
}

// reachableNetns lists, once each, the network namespaces named under /run/netns,
// mounted elsewhere, or entered by a process.
func reachableNetns() []nsRef {
	type key struct{ dev, ino uint64 }
	done := map[key]bool{}
	var out []nsRef
	add := func(path, label string) {
		var st unix.Stat_t
		if err := unix.Stat(path, &st); err != nil {
			return
		}
		k := key{st.Dev, st.Ino}
		if done[k] {
			return
		}
		done[k] = true
		out = append(out, nsRef{path: path, label: label, ino: st.Ino})
	}
	if entries, err := os.ReadDir("/run/netns"); err == nil {
		for _, e := range entries {
			add(filepath.Join("/run/netns", e.Name()), e.Name())
		}
	}
	for _, mp := range netnsMounts() {
		add(mp, mp)
	}
	if procs, err := os.ReadDir("/proc"); err == nil {
		for _, p := range procs {
			if _, err := strconv.Atoi(p.Name()); err == nil {
				add("/proc/"+p.Name()+"/ns/net", "pid "+p.Name())
			}
		}
	}
	return out
}

// netnsMounts returns the mount points of network namespaces (nsfs mounts of net:[…])
// in this mount namespace, from /proc/self/mountinfo.
func netnsMounts() []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if !ok || !strings.HasPrefix(post, "nsfs ") {
			continue
		}
		f := strings.Fields(pre)
		if len(f) >= 5 && strings.HasPrefix(f[3], "net:[") {
			out = append(out, unescapeMountinfo(f[4]))
		}
	}
	return out
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) of a mountinfo field.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// errNSChanged reports a namespace path that led to another namespace than a moment
// before (its process exited, its PID was reused, or it was unmounted and remounted).
var errNSChanged = errors.New("namespace changed under its path")

// lookEverywhere finds the links with the wanted alternative names in every reachable
// namespace: it opens each namespace, lists its links and closes it at once, so that
// it never keeps a namespace alive. It returns where it found each, the inodes of the
// namespaces it reached, and whether it could read every one of them.
func lookEverywhere(want map[string]bool) (found map[string]sighting, live map[uint64]bool, complete bool) {
	found, live, complete = map[string]sighting{}, map[uint64]bool{}, true
	for _, ref := range reachableNetns() {
		live[ref.ino] = true
		err := lookIn(ref, want, found)
		if err != nil && !gone(err) {
			// A namespace being torn down (its last process exiting, its mount
			// going) can fail one look with another error: a second look tells.
			err = lookIn(ref, want, found)
		}
		switch {
		case err == nil:
		case gone(err):
			// Its process exited or it was unmounted since it was listed.
		default:
			complete = false
		}
	}
	return found, live, complete
}

// gone says whether err means the namespace went away since it was listed.
func gone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ESRCH) || errors.Is(err, errNSChanged)
}

func lookIn(ref nsRef, want map[string]bool, found map[string]sighting) error {
	ns, err := netns.GetFromPath(ref.path)
	if err != nil {
		return err
	}
	defer ns.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(ns), &st); err != nil {
		return err
	}
	if st.Ino != ref.ino {
		return errNSChanged
	}
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer h.Close()
	links, err := linkList(h)
	if err != nil {
		return err
	}
	for _, l := range links {
		a := l.Attrs()
		for _, alt := range a.AltNames {
			if want[alt] {
				found[alt] = sighting{netns: ref.label, ino: ref.ino, name: a.Name, mac: a.HardwareAddr.String(), mtu: a.MTU}
			}
		}
	}
	return nil
}
