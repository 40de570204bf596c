// Package servedby keeps a VF from being offered by two daemons of the node at once:
// the device plugin and the DRA driver each hold a lock file per VF they offer, in
// one directory (/run/chelsio-sriov/served-by by default), and neither offers a VF
// whose lock the other holds.
//
// The locks are flock(2) locks: the kernel drops them when their holder exits, so a
// daemon that crashed leaves nothing that keeps the other out. The files themselves
// stay (removing a lock file races with a daemon opening it); each holds the name of
// its last holder, for messages only.
package servedby

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// DefaultDir is where both daemons keep their locks unless told otherwise.
const DefaultDir = "/run/chelsio-sriov/served-by"

// DirFor is the directory of the locks of the VFs under sysfs root, in base: base
// itself for the node's own /sys, and a subdirectory named after root for any
// other (an emulated node, a copied tree), so that daemons of different trees that
// share PCI addresses never meet while two daemons of one tree always do.
func DirFor(base, root string) string {
	r := filepath.Clean(root)
	if a, err := filepath.Abs(r); err == nil {
		r = a
	}
	if r == "/sys" {
		return base
	}
	sum := sha256.Sum256([]byte(r))
	return filepath.Join(base, "root-"+hex.EncodeToString(sum[:8]))
}

// Locks are the locks of one daemon.
type Locks struct {
	dir, owner string

	mu   sync.Mutex
	held map[string]*os.File // VF address → its locked file
}

// New returns the locks of owner (a binary's name) in dir. Nothing is created until
// the first Take.
func New(dir, owner string) *Locks {
	return &Locks{dir: dir, owner: owner, held: map[string]*os.File{}}
}

// Take locks addr (a canonical PCI address, "0000:81:01.0") for this daemon. ok is
// false when another daemon holds it; holder then names it. Taking a VF already
// held is a no-op.
func (l *Locks) Take(addr string) (ok bool, holder string, err error) {
	if strings.ContainsAny(addr, "/\x00") || addr == "" || addr[0] == '.' {
		return false, "", fmt.Errorf("served-by lock of %q: not a PCI address", addr)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.held[addr]; ok {
		return true, "", nil
	}
	if err := os.MkdirAll(l.dir, 0o755); err != nil {
		return false, "", fmt.Errorf("served-by locks: %w", err)
	}
	p := filepath.Join(l.dir, addr+".lock")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return false, "", fmt.Errorf("served-by lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		b := make([]byte, 128)
		n, _ := f.ReadAt(b, 0)
		_ = f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return false, strings.TrimSpace(string(b[:n])), nil
		}
		return false, "", fmt.Errorf("served-by lock %s: %w", p, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(fmt.Sprintf("%s pid %d\n", l.owner, os.Getpid())), 0)
	}
	l.held[addr] = f
	return true, "", nil
}

// Keep releases every lock whose VF is not in addrs.
func (l *Locks) Keep(addrs map[string]bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for a, f := range l.held {
		if !addrs[a] {
			_ = f.Close() // closing the only descriptor drops the flock
			delete(l.held, a)
		}
	}
}

// Held returns the addresses this daemon holds.
func (l *Locks) Held() map[string]bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]bool, len(l.held))
	for a := range l.held {
		out[a] = true
	}
	return out
}

// Close releases every lock.
func (l *Locks) Close() { l.Keep(nil) }
