package safepath

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Setting is a path as a config gives it: the key and its value. Every refusal
// names both.
type Setting struct {
	Key  string // "dataDir", "logFile"
	Path string // the key's value: an absolute path
}

// Refusal refuses a path that the caller will not use: a symbolic link anywhere in
// it, a directory someone else could change under it, a file that is not a plain
// file, a pseudo filesystem. It names the key, the configured path and, when the
// fault is in a part of it, that part.
type Refusal struct {
	Key     string // "dataDir" or "logFile"
	Path    string // the configured path
	At      string // the component or file at fault; "" or Path itself: the path
	Problem string // what is wrong, and what to do
}

// Error names the part at fault relative to the path when it is below it
// ("locks/0000:81:01.0.lock"), in full when it is above it.
func (e *Refusal) Error() string {
	if e.At == "" || e.At == e.Path {
		return fmt.Sprintf("%q %q %s", e.Key, e.Path, e.Problem)
	}
	at := e.At
	if rel, ok := strings.CutPrefix(at, strings.TrimSuffix(e.Path, "/")+"/"); ok && rel != "" {
		at = rel
	}
	return fmt.Sprintf("%q %q: %q %s", e.Key, e.Path, at, e.Problem)
}

// IsRefusal reports whether err is, or wraps, a *Refusal.
func IsRefusal(err error) bool {
	var r *Refusal
	return errors.As(err, &r)
}

// IOError is a system call on the way that failed for another reason than a
// missing entry: the path may be fine, the node is not (permissions, a read-only
// or full filesystem, an I/O error).
type IOError struct{ Err error }

func (e *IOError) Error() string { return e.Err.Error() }
func (e *IOError) Unwrap() error { return e.Err }

// Refuse returns a *Refusal of the part at of s (the whole path when at is "").
func (s Setting) Refuse(at, format string, args ...any) error {
	return &Refusal{Key: s.Key, Path: s.Path, At: at, Problem: fmt.Sprintf(format, args...)}
}

// Mode says which directories a walk accepts on its way down.
type Mode int

const (
	// LinksOnly refuses symbolic links, nothing else (logFile's directory).
	LinksOnly Mode = iota
	// Private also refuses, above the last component, a directory that anyone but
	// root or the caller's user could change (owned by another user, or writable by
	// group or others without the sticky bit), and at the last component one that is
	// not the caller's user's own with mode 0700 or stricter (dataDir).
	Private
)

// errLoose marks a private directory that is the caller's user's own but grants
// group or others access: the caller tightens it, or refuses it.
type errLoose struct{ perm uint32 }

func (e *errLoose) Error() string { return fmt.Sprintf("mode %04o", e.perm) }

// onMissing says what a walk does at a directory that does not exist.
type onMissing int

const (
	missingFails onMissing = iota // the walk fails with an error that matches fs.ErrNotExist
	missingMade                   // the directory is made, mode 0700
	missingStops                  // the walk ends at the directory above it
)

// OpenDir opens the absolute directory dir (s.Path itself, or the directory of the
// file that s.Path names) one component at a time from "/", each one with
// O_NOFOLLOW relative to the one before, and returns an O_PATH descriptor of it.
// Nothing is resolved by path again afterwards: whatever the caller does below the
// directory goes through the descriptor. Every component, "/" included, is checked
// before the walk goes below it: its type (a link is refused), with Private its
// owner and mode, and its filesystem (no pseudo filesystem of the kernel). With
// create, missing directories are made, mode 0700; a refusal always comes before
// the first mkdir, since only missing components are made and everything below one
// is missing too. A missing directory without create is an error that matches
// fs.ErrNotExist. With Private, loose is the mode of a last component that is the
// caller's user's own but grants group or others access (0 when it grants none).
func (s Setting) OpenDir(dir string, mode Mode, create bool) (fd int, loose uint32, _ error) {
	missing := missingFails
	if create {
		missing = missingMade
	}
	fd, _, loose, err := s.walk(dir, mode, missing)
	return fd, loose, err
}

// OpenDeepest is OpenDir for the deepest directory of dir that exists: dir itself,
// or the one under which a create would make the rest, checked as it would be
// checked before making them. It makes nothing, and returns the path of the
// directory it opened.
func (s Setting) OpenDeepest(dir string, mode Mode) (fd int, at string, _ error) {
	fd, at, _, err := s.walk(dir, mode, missingStops)
	return fd, at, err
}

// walk is OpenDir and OpenDeepest.
func (s Setting) walk(dir string, mode Mode, missing onMissing) (fd int, at string, loose uint32, _ error) {
	fd, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, "", 0, &IOError{Err: &fs.PathError{Op: "open", Path: "/", Err: err}}
	}
	comps := strings.FieldsFunc(dir, func(r rune) bool { return r == '/' })
	at = "/"
	var fsc fsCheck
	check := func(last bool) error {
		err := s.checkDir(at, fd, mode, last)
		var le *errLoose
		if errors.As(err, &le) {
			loose, err = le.perm, nil
		}
		if err != nil {
			return err
		}
		return fsc.refusePseudo(s, at, fd)
	}
	if err := check(len(comps) == 0); err != nil {
		unix.Close(fd)
		return -1, "", 0, err
	}
	for i, name := range comps {
		parent := at
		at = "/" + strings.Join(comps[:i+1], "/")
		next, err := unix.Openat(fd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOENT) {
			switch missing {
			case missingStops:
				return fd, parent, 0, nil
			case missingMade:
				if err = unix.Mkdirat(fd, name, 0o700); err == nil || errors.Is(err, unix.EEXIST) {
					next, err = unix.Openat(fd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
				}
			}
		}
		unix.Close(fd)
		if err != nil {
			return -1, "", 0, openError(at, err)
		}
		fd = next
		if err := check(i == len(comps)-1); err != nil {
			unix.Close(fd)
			return -1, "", 0, err
		}
	}
	return fd, at, loose, nil
}

// openError is the error of an open of at that failed with err: one that matches
// fs.ErrNotExist for a missing entry, else an *IOError.
func openError(at string, err error) error {
	pe := &fs.PathError{Op: "open", Path: at, Err: err}
	if errors.Is(err, unix.ENOENT) {
		return pe
	}
	return &IOError{Err: pe}
}

// checkDir checks the component at of s.Path, open as fd, for a walk.
func (s Setting) checkDir(at string, fd int, mode Mode, last bool) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &IOError{Err: &fs.PathError{Op: "stat", Path: at, Err: err}}
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
	case unix.S_IFLNK:
		return s.Refuse(at, "is a symbolic link; chelsio-sriov follows none in %s: give the real directory", s.Key)
	default:
		return s.Refuse(at, "is not a directory")
	}
	if mode != Private {
		return nil
	}
	euid := uint32(os.Geteuid())
	perm := st.Mode & 0o7777
	if last {
		return s.checkPrivate(at, &st, euid)
	}
	if st.Uid != 0 && st.Uid != euid {
		return s.Refuse(at, "belongs to uid %d, who could replace what is below it: every directory above %s must be root's or chelsio-sriov's (uid %d)", st.Uid, s.Key, euid)
	}
	if perm&0o022 != 0 && perm&unix.S_ISVTX == 0 {
		return s.Refuse(at, "is writable by group or others (mode %04o) without the sticky bit, so they could replace what is below it", perm)
	}
	return nil
}

// checkPrivate refuses a private directory that is not the caller's user's own,
// and reports (errLoose) one that grants group or others any access.
func (s Setting) checkPrivate(at string, st *unix.Stat_t, euid uint32) error {
	perm := st.Mode & 0o7777
	if st.Uid != euid {
		return s.Refuse(at, "belongs to uid %d, not to chelsio-sriov's uid %d: name a directory of its own", st.Uid, euid)
	}
	if perm&0o077 != 0 {
		return &errLoose{perm: perm}
	}
	return nil
}

// OpenSubdir opens the subdirectory name of the directory dir, which is s.Path
// open as a descriptor, as an O_PATH descriptor, without following a link at it,
// and checks it as the last component of a Private walk; loose as for OpenDir. A
// missing one is an error that matches fs.ErrNotExist.
func (s Setting) OpenSubdir(dir int, name string) (fd int, loose uint32, _ error) {
	at := s.Path + "/" + name
	if strings.HasSuffix(s.Path, "/") {
		at = s.Path + name
	}
	fd, err := unix.Openat(dir, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, 0, openError(at, err)
	}
	err = s.checkDir(at, fd, Private, true)
	var le *errLoose
	if errors.As(err, &le) {
		return fd, le.perm, nil
	}
	if err != nil {
		unix.Close(fd)
		return -1, 0, err
	}
	return fd, 0, nil
}

// Tighten sets the directory open as the O_PATH descriptor fd to mode 0700. The
// descriptor is the directory that was checked: no path is resolved again. at
// names it in errors.
func Tighten(fd int, at string) error {
	rfd, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err == nil {
		err = unix.Fchmod(rfd, 0o700)
		unix.Close(rfd)
	}
	if err != nil {
		return &IOError{Err: &fs.PathError{Op: "chmod", Path: at, Err: err}}
	}
	return nil
}

// DirNames lists the entries of the directory open as the O_PATH descriptor fd;
// at names it in errors.
func DirNames(fd int, at string) ([]string, error) {
	rfd, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &IOError{Err: &fs.PathError{Op: "open", Path: at, Err: err}}
	}
	f := os.NewFile(uintptr(rfd), at)
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, &IOError{Err: err}
	}
	return names, nil
}

// OpenFile opens name in the directory dir with flags plus O_NOFOLLOW and
// O_NONBLOCK (a FIFO planted there must not hang the caller), and refuses anything
// but a regular file with one link. at names the file in errors.
func (s Setting) OpenFile(at string, dir int, name string, flags int, perm uint32) (*os.File, error) {
	fd, err := unix.Openat(dir, name, flags|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, perm)
	switch {
	case errors.Is(err, unix.ELOOP):
		return nil, s.Refuse(at, "is a symbolic link; chelsio-sriov never follows one there: remove it")
	case errors.Is(err, unix.EISDIR):
		return nil, s.Refuse(at, "is a directory, not a file")
	case errors.Is(err, unix.ENXIO):
		return nil, s.Refuse(at, "is not a regular file (a FIFO or socket?)")
	case err != nil:
		return nil, &fs.PathError{Op: "open", Path: at, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "stat", Path: at, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, s.Refuse(at, "is not a regular file")
	}
	if st.Nlink > 1 {
		unix.Close(fd)
		return nil, s.Refuse(at, "has %d hard links; chelsio-sriov writes only to a file of its own: remove it", st.Nlink)
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "fcntl", Path: at, Err: err}
	}
	return os.NewFile(uintptr(fd), at), nil
}

// CheckFile refuses an entry name of the directory dir that exists and is not a
// regular file with one link (a symbolic link above all), before a write replaces
// it. A missing entry is fine. at names it in errors.
func (s Setting) CheckFile(at string, dir int, name string) error {
	var st unix.Stat_t
	err := unix.Fstatat(dir, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	switch {
	case errors.Is(err, unix.ENOENT):
		return nil
	case err != nil:
		return &IOError{Err: &fs.PathError{Op: "stat", Path: at, Err: err}}
	case st.Mode&unix.S_IFMT == unix.S_IFLNK:
		return s.Refuse(at, "is a symbolic link; chelsio-sriov never follows one there: remove it")
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return s.Refuse(at, "is not a regular file")
	case st.Nlink > 1:
		return s.Refuse(at, "has %d hard links; chelsio-sriov writes only to a file of its own: remove it", st.Nlink)
	}
	return nil
}
