package cnistore

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/cut"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/safepath"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// stateDir is the state directory open for one operation, and the subdirectories
// it opened.
type stateDir struct {
	s    Store
	fd   int
	subs map[string]int
}

// open opens and checks the state directory and those of its subdirectories that
// exist, so that any operation refuses an unsafe one, whichever it uses; see
// openDir. A missing directory is an error that matches fs.ErrNotExist.
func (s Store) open() (*stateDir, error) { return s.openDir(false, false) }

// openDir opens the state directory, makes it (and missing directories above it,
// 0700) with create, and checks it and its existing subdirectories. A directory of
// the plugin user's that grants group or others access is either the plugin's
// (dataDir holding nothing but attachments, vfs and locks, such as an empty one
// that mkdir -p or a hostPath volume made) or shared: the plugin's is tightened to
// 0700 with tightenLoose (Ensure, ADD's alone), a shared one refused, since
// changing its mode would break what shares it. Every check comes before any
// change.
func (s Store) openDir(create, tightenLoose bool) (*stateDir, error) {
	fd, loose, err := s.setting().OpenDir(s.Dir, safepath.Private, create)
	if err != nil {
		return nil, err
	}
	d := &stateDir{s: s, fd: fd, subs: map[string]int{}}
	type looseDir struct {
		fd int
		at string
	}
	var fix []looseDir
	if loose != 0 {
		names, err := safepath.DirNames(fd, s.Dir)
		if err != nil {
			d.close()
			return nil, err
		}
		for _, n := range names {
			if !slices.Contains(stateSubdirs, n) {
				d.close()
				return nil, s.setting().Refuse("", "has mode %04o and holds %q, which is not chelsio-sriov's: a directory that may be shared is neither used nor changed; chmod 700 it, or name a directory of chelsio-sriov's own", loose, cut.Value(n))
			}
		}
		fix = append(fix, looseDir{fd, s.Dir})
	}
	for _, name := range stateSubdirs {
		sfd, sloose, err := s.setting().OpenSubdir(fd, name)
		if isNotExist(err) {
			continue
		}
		if err != nil {
			d.close()
			return nil, err
		}
		d.subs[name] = sfd
		if sloose != 0 {
			fix = append(fix, looseDir{sfd, d.at(name, "")})
		}
	}
	if tightenLoose {
		for _, l := range fix {
			if err := safepath.Tighten(l.fd, l.at); err != nil {
				d.close()
				return nil, err
			}
		}
	}
	return d, nil
}

// Preflight refuses, before a verb does anything, what it would meet in the state
// directory and must not use: an unsafe directory or subdirectory, or, in the place
// of the attachment's state file (when a key is given) or of the VF's owner record
// and lock (when an address is given), a symbolic link or anything but a regular
// file with one link. It creates nothing, and a missing directory or file is fine:
// the verb makes them. Other errors are left for the verb to meet.
func (s Store) Preflight(containerID, ifName string, addr vf.PCIAddr) error {
	d, err := s.open()
	if err != nil {
		if safepath.IsRefusal(err) {
			return err
		}
		return nil
	}
	defer d.close()
	var files [][2]string
	if containerID != "" {
		files = append(files, [2]string{"attachments", AttachmentFile(containerID, ifName)})
	}
	if !addr.IsZero() {
		files = append(files, [2]string{"vfs", addr.String() + ".json"}, [2]string{"locks", addr.String() + ".lock"})
	}
	for _, f := range files {
		dir, err := d.sub(f[0])
		if err != nil {
			continue // missing (open refused an unsafe one)
		}
		if err := s.setting().CheckFile(d.at(f[0], f[1]), dir, f[1]); safepath.IsRefusal(err) {
			return err
		}
	}
	return nil
}

// sub returns the subdirectory name; a missing one matches fs.ErrNotExist.
func (d *stateDir) sub(name string) (int, error) {
	if fd, ok := d.subs[name]; ok {
		return fd, nil
	}
	return -1, &fs.PathError{Op: "open", Path: d.at(name, ""), Err: unix.ENOENT}
}

func (d *stateDir) close() {
	for _, fd := range d.subs {
		unix.Close(fd)
	}
	unix.Close(d.fd)
}

// at is the path of a file of the subdirectory sub, for messages.
func (d *stateDir) at(sub, name string) string { return filepath.Join(d.s.Dir, sub, name) }

// Ensure creates the state directory and its subdirectories (0700) as needed,
// checks them and tightens the plugin's own (see openDir). Every check comes before
// the first change: a refused dataDir leaves everything as it was. ADD alone calls
// it: a directory that the other verbs do not find, they leave missing, and one
// they find, they leave as it is.
func (s Store) Ensure() error {
	d, err := s.openDir(true, true)
	if err != nil {
		return err
	}
	defer d.close()
	for _, name := range stateSubdirs {
		if _, ok := d.subs[name]; ok {
			continue
		}
		if err := unix.Mkdirat(d.fd, name, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
			return &IOError{wrapped{fmt.Errorf("create state dir %s: %w", d.at(name, ""), err)}}
		}
		fd, _, err := s.setting().OpenSubdir(d.fd, name)
		if err != nil {
			return err
		}
		d.subs[name] = fd
	}
	return nil
}

// writeJSON writes v as the file name of the subdirectory sub atomically: a 0600
// temp file in the same directory, renamed over the target, so that a reader never
// sees half a file. There is no fsync on purpose: the state must survive the
// plugin's own crash (the page cache does), not the node's, because a reboot returns
// every VF to the host and GC then reclaims the stale files; an fsync would cost
// each ADD milliseconds for nothing.
func (d *stateDir) writeJSON(sub, name string, v any) error {
	// A record that cannot be stored is refused before the directory is touched.
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(b) >= maxStateFile {
		return &TooLargeError{wrapped{fmt.Errorf("state %s would be %d bytes, more than DEL reads (%d): the network config or the IPAM result is too large", d.at(sub, name), len(b), maxStateFile)}}
	}
	dir, err := d.sub(sub)
	if err != nil {
		return err
	}
	var f *os.File
	var tmp string
	for range 100 {
		tmp = fmt.Sprintf(".tmp-%016x", rand.Uint64())
		fd, err := unix.Openat(dir, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if errors.Is(err, unix.EEXIST) {
			continue
		}
		if err != nil {
			return &IOError{wrapped{fmt.Errorf("write state %s: %w", d.at(sub, name), err)}}
		}
		f = os.NewFile(uintptr(fd), d.at(sub, tmp))
		break
	}
	if f == nil {
		return &IOError{wrapped{fmt.Errorf("write state %s: no free temporary name", d.at(sub, name))}}
	}
	_, werr := f.Write(append(b, '\n'))
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		_ = unix.Unlinkat(dir, tmp, 0)
		return &IOError{wrapped{fmt.Errorf("write state %s: %w", d.at(sub, name), err)}}
	}
	if err := unix.Renameat(dir, tmp, dir, name); err != nil {
		_ = unix.Unlinkat(dir, tmp, 0)
		return &IOError{wrapped{fmt.Errorf("write state %s: %w", d.at(sub, name), err)}}
	}
	return nil
}

// CheckWritable answers STATUS's question, can ADD write its state, and makes no
// directory and changes no mode: with attachments/ in place it creates and removes
// a file there, through the checked descriptors; where dataDir or attachments/ is
// missing (ADD makes them), it checks the deepest directory that exists as ADD
// would before making the rest, and that it is writable.
func (s Store) CheckWritable() error {
	d, err := s.open()
	if isNotExist(err) {
		fd, at, err := s.setting().OpenDeepest(s.Dir, safepath.Private)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return writable(fd, at)
	}
	if err != nil {
		return err
	}
	defer d.close()
	dir, err := d.sub("attachments")
	if isNotExist(err) {
		return writable(d.fd, s.Dir)
	}
	if err != nil {
		return err
	}
	name := fmt.Sprintf(".status-%016x", rand.Uint64())
	fd, err := unix.Openat(dir, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return &fs.PathError{Op: "create", Path: d.at("attachments", name), Err: err}
	}
	unix.Close(fd)
	return d.remove("attachments", name)
}

// writable checks that the directory open as the O_PATH descriptor fd would let
// the plugin make entries in it (a read-only filesystem would not).
func writable(fd int, at string) error {
	if err := unix.Faccessat(fd, ".", unix.W_OK|unix.X_OK, 0); err != nil {
		return &fs.PathError{Op: "access", Path: at, Err: err}
	}
	return nil
}

// readJSON reads the file name of the subdirectory sub without following a
// symbolic link; a missing file matches fs.ErrNotExist, and one that does not
// decode is a *CorruptError.
func (d *stateDir) readJSON(sub, name string, v any) error {
	dir, err := d.sub(sub)
	if err != nil {
		return err
	}
	f, err := d.s.setting().OpenFile(d.at(sub, name), dir, name, unix.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := json.NewDecoder(io.LimitReader(f, maxStateFile)).Decode(v); err != nil {
		if corrupt(err) {
			return &CorruptError{Path: d.at(sub, name), Err: err}
		}
		return fmt.Errorf("read state %s: %w", d.at(sub, name), err)
	}
	return nil
}

// remove removes the file name of the subdirectory sub; a link is removed, never
// followed. A missing file or directory is no error.
func (d *stateDir) remove(sub, name string) error {
	dir, err := d.sub(sub)
	if isNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := unix.Unlinkat(dir, name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return &fs.PathError{Op: "remove", Path: d.at(sub, name), Err: err}
	}
	return nil
}
