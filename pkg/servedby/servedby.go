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
	note       []byte // what each lock file says while this daemon holds it

	mu   sync.Mutex
	held map[string]int // VF address → the descriptor of its locked file
}

// noteSize is the length of a holder's note: a lock file is overwritten in place
// with a note padded to this length rather than truncated and written anew, which
// on a disk filesystem costs a journal transaction per VF (a daemon's start takes
// hundreds). A note that was longer is cut at its first line by the reader.
const noteSize = 64

// New returns the locks of owner (a binary's name) in dir. Nothing is created until
// the first Take.
func New(dir, owner string) *Locks {
	line := fmt.Sprintf("%s pid %d", owner, os.Getpid())
	note := []byte(line + strings.Repeat(" ", max(noteSize-len(line)-1, 0)) + "\n")
	return &Locks{dir: dir, owner: owner, note: note, held: map[string]int{}}
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
	p := filepath.Join(l.dir, addr+".lock")
	fd, err := l.open(p)
	if err != nil {
		return false, "", err
	}
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		holder := readNote(fd)
		_ = unix.Close(fd)
		if errors.Is(err, unix.EWOULDBLOCK) {
			return false, holder, nil
		}
		return false, "", fmt.Errorf("served-by lock %s: %w", p, err)
	}
	_, _ = unix.Pwrite(fd, l.note, 0) // for messages only
	l.held[addr] = fd
	return true, "", nil
}

// open opens (or creates) the lock file p, and the directory on first use. A
// descriptor of its own, not an *os.File: a start opens hundreds and keeps them,
// and needs nothing of the runtime's poller for them.
func (l *Locks) open(p string) (int, error) {
	const flags = unix.O_RDWR | unix.O_CREAT | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Open(p, flags, 0o644)
	if errors.Is(err, unix.ENOENT) {
		if err := os.MkdirAll(l.dir, 0o755); err != nil {
			return -1, fmt.Errorf("served-by locks: %w", err)
		}
		fd, err = unix.Open(p, flags, 0o644)
	}
	if err != nil {
		return -1, fmt.Errorf("served-by lock: %w", &os.PathError{Op: "open", Path: p, Err: err})
	}
	return fd, nil
}

// readNote returns the first line of the note of a lock file's holder.
func readNote(fd int) string {
	b := make([]byte, 128)
	n, _ := unix.Pread(fd, b, 0)
	line, _, _ := strings.Cut(string(b[:max(n, 0)]), "\n")
	return strings.TrimSpace(line)
}

// Keep releases every lock whose VF is not in addrs.
func (l *Locks) Keep(addrs map[string]bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for a, fd := range l.held {
		if !addrs[a] {
			_ = unix.Close(fd) // closing the only descriptor drops the flock
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
