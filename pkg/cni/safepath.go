package cni

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// unsafePathError refuses a dataDir or logFile that chelsio-sriov will not use: a
// symbolic link anywhere in it, a directory someone else could change under it, a
// state or log file that is not a plain file. It names the key, the configured
// path and, when the fault is in a part of it, that part.
type unsafePathError struct {
	key     string // "dataDir" or "logFile"
	path    string // the configured path
	at      string // the component or file at fault; "" or path itself: the path
	problem string // what is wrong, and what to do
}

// Error names the part at fault relative to the path when it is below it
// ("locks/0000:81:01.0.lock"), in full when it is above it.
func (e *unsafePathError) Error() string {
	if e.at == "" || e.at == e.path {
		return fmt.Sprintf("%q %q %s", e.key, e.path, e.problem)
	}
	at := e.at
	if rel, ok := strings.CutPrefix(at, strings.TrimSuffix(e.path, "/")+"/"); ok && rel != "" {
		at = rel
	}
	return fmt.Sprintf("%q %q: %q %s", e.key, e.path, at, e.problem)
}

// refuse returns the refusal as a CNI error (code 7: the config names the path).
func refuse(key, path, at, format string, args ...any) error {
	return withCode(CodeInvalidConfig, &unsafePathError{key: key, path: path, at: at, problem: fmt.Sprintf(format, args...)})
}

// isRefusal reports whether err is an unsafePathError.
func isRefusal(err error) bool {
	var ue *unsafePathError
	return errors.As(err, &ue)
}

// walkMode says which directories openDirNoFollow accepts on its way down.
type walkMode int

const (
	// walkLinksOnly refuses symbolic links, nothing else (logFile's directory).
	walkLinksOnly walkMode = iota
	// walkPrivate also refuses, above the last component, a directory that anyone but
	// root or the plugin's user could change (owned by another user, or writable by
	// group or others without the sticky bit), and at the last component one that is
	// not the plugin's user's own with mode 0700 or stricter (dataDir).
	walkPrivate
)

// errLoose marks a state directory that is the plugin user's own but grants group
// or others access: the caller tightens it, or refuses it (see Store).
type errLoose struct{ perm uint32 }

func (e *errLoose) Error() string { return fmt.Sprintf("mode %04o", e.perm) }

// onMissing says what a walk does at a directory that does not exist.
type onMissing int

const (
	missingFails onMissing = iota // the walk fails with an error that matches fs.ErrNotExist
	missingMade                   // the directory is made, mode 0700
	missingStops                  // the walk ends at the directory above it
)

// openDirNoFollow opens the absolute directory dir (path itself, or the directory
// of the file that path names; errors name path) one component at a time from "/",
// each one with O_NOFOLLOW relative to the one before, and returns an O_PATH
// descriptor of it. Nothing is resolved by path again afterwards, so a
// component checked here cannot be swapped for a link before its use: whatever the
// caller does below the directory goes through the descriptor. Every component,
// "/" included, is checked before the walk goes below it: its type (a link is
// refused), with walkPrivate its owner and mode, and its filesystem, which must not
// be a pseudo filesystem of the kernel (fsCheck). With create, missing directories
// are made, mode 0700; a refusal always comes before the first mkdir, since only
// missing components are made and everything below one is missing too.
// A missing directory without create is an error that matches fs.ErrNotExist. With
// walkPrivate, loose is the mode of a last component that is the plugin user's own
// but grants group or others access (0 when it grants none).
func openDirNoFollow(key, path, dir string, mode walkMode, create bool) (fd int, loose uint32, _ error) {
	missing := missingFails
	if create {
		missing = missingMade
	}
	fd, _, loose, err := walkDir(key, path, dir, mode, missing)
	return fd, loose, err
}

// openDeepest is openDirNoFollow for the deepest directory of dir that exists:
// dir itself, or the one under which ADD would make the rest, checked as ADD
// would check it before making them. It makes nothing, and returns the path of the
// directory it opened.
func openDeepest(key, path, dir string, mode walkMode) (fd int, at string, _ error) {
	fd, at, _, err := walkDir(key, path, dir, mode, missingStops)
	return fd, at, err
}

// walkDir is openDirNoFollow and openDeepest.
func walkDir(key, path, dir string, mode walkMode, missing onMissing) (fd int, at string, loose uint32, _ error) {
	fd, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, "", 0, withCode(CodeIOFailure, &fs.PathError{Op: "open", Path: "/", Err: err})
	}
	comps := strings.FieldsFunc(dir, func(r rune) bool { return r == '/' })
	at = "/"
	var fsc fsCheck
	check := func(last bool) error {
		err := checkDir(key, path, at, fd, mode, last)
		var le *errLoose
		if errors.As(err, &le) {
			loose, err = le.perm, nil
		}
		if err != nil {
			return err
		}
		return fsc.refusePseudo(key, path, at, fd)
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
			if errors.Is(err, unix.ENOENT) {
				return -1, "", 0, &fs.PathError{Op: "open", Path: at, Err: err}
			}
			return -1, "", 0, withCode(CodeIOFailure, &fs.PathError{Op: "open", Path: at, Err: err})
		}
		fd = next
		if err := check(i == len(comps)-1); err != nil {
			unix.Close(fd)
			return -1, "", 0, err
		}
	}
	return fd, at, loose, nil
}

// checkDir checks the component at of path, open as fd, for openDirNoFollow.
func checkDir(key, path, at string, fd int, mode walkMode, last bool) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return withCode(CodeIOFailure, &fs.PathError{Op: "stat", Path: at, Err: err})
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
	case unix.S_IFLNK:
		return refuse(key, path, at, "is a symbolic link; chelsio-sriov follows none in %s: give the real directory", key)
	default:
		return refuse(key, path, at, "is not a directory")
	}
	if mode != walkPrivate {
		return nil
	}
	euid := uint32(os.Geteuid())
	perm := st.Mode & 0o7777
	if last {
		return checkPrivate(key, path, at, &st, euid)
	}
	if st.Uid != 0 && st.Uid != euid {
		return refuse(key, path, at, "belongs to uid %d, who could replace what is below it: every directory above %s must be root's or chelsio-sriov's (uid %d)", st.Uid, key, euid)
	}
	if perm&0o022 != 0 && perm&unix.S_ISVTX == 0 {
		return refuse(key, path, at, "is writable by group or others (mode %04o) without the sticky bit, so they could replace what is below it", perm)
	}
	return nil
}

// checkPrivate refuses a state directory that is not the plugin user's own, and
// reports (errLoose) one that grants group or others any access: Store tightens it
// to 0700 if it holds nothing but the plugin's own, else refuses it.
func checkPrivate(key, path, at string, st *unix.Stat_t, euid uint32) error {
	perm := st.Mode & 0o7777
	if st.Uid != euid {
		return refuse(key, path, at, "belongs to uid %d, not to chelsio-sriov's uid %d: name a directory of its own", st.Uid, euid)
	}
	if perm&0o077 != 0 {
		return &errLoose{perm: perm}
	}
	return nil
}

// tighten sets the directory open as the O_PATH descriptor fd to mode 0700. The
// descriptor is the directory that was checked: no path is resolved again.
func tighten(fd int, at string) error {
	rfd, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err == nil {
		err = unix.Fchmod(rfd, 0o700)
		unix.Close(rfd)
	}
	if err != nil {
		return withCode(CodeIOFailure, &fs.PathError{Op: "chmod", Path: at, Err: err})
	}
	return nil
}

// dirNames lists the entries of the directory open as the O_PATH descriptor fd.
func dirNames(fd int, at string) ([]string, error) {
	rfd, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, withCode(CodeIOFailure, &fs.PathError{Op: "open", Path: at, Err: err})
	}
	f := os.NewFile(uintptr(rfd), at)
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, withCode(CodeIOFailure, err)
	}
	return names, nil
}

// openSubdir opens the subdirectory name of the state directory dir (at path), an
// O_PATH descriptor, without following a link at it, and checks it as the state
// directory itself; loose as for openDirNoFollow. A missing one is an error that
// matches fs.ErrNotExist.
func openSubdir(key, path string, dir int, name string) (fd int, loose uint32, _ error) {
	at := path + "/" + name
	if strings.HasSuffix(path, "/") {
		at = path + name
	}
	fd, err := unix.Openat(dir, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return -1, 0, &fs.PathError{Op: "open", Path: at, Err: err}
		}
		return -1, 0, withCode(CodeIOFailure, &fs.PathError{Op: "open", Path: at, Err: err})
	}
	err = checkDir(key, path, at, fd, walkPrivate, true)
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

// openFileNoFollow opens name in the directory dir with flags plus O_NOFOLLOW and
// O_NONBLOCK (a FIFO planted there must not hang the plugin), and refuses anything
// but a regular file with one link. at names the file in errors.
func openFileNoFollow(key, path, at string, dir int, name string, flags int, perm uint32) (*os.File, error) {
	fd, err := unix.Openat(dir, name, flags|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, perm)
	switch {
	case errors.Is(err, unix.ELOOP):
		return nil, refuse(key, path, at, "is a symbolic link; chelsio-sriov never follows one there: remove it")
	case errors.Is(err, unix.EISDIR):
		return nil, refuse(key, path, at, "is a directory, not a file")
	case errors.Is(err, unix.ENXIO):
		return nil, refuse(key, path, at, "is not a regular file (a FIFO or socket?)")
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
		return nil, refuse(key, path, at, "is not a regular file")
	}
	if st.Nlink > 1 {
		unix.Close(fd)
		return nil, refuse(key, path, at, "has %d hard links; chelsio-sriov writes only to a file of its own: remove it", st.Nlink)
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "fcntl", Path: at, Err: err}
	}
	return os.NewFile(uintptr(fd), at), nil
}

// checkNotLink refuses an entry name of dir that exists and is not a regular file
// with one link (a symbolic link above all), before a write replaces it.
func checkNotLink(key, path, at string, dir int, name string) error {
	var st unix.Stat_t
	err := unix.Fstatat(dir, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	switch {
	case errors.Is(err, unix.ENOENT):
		return nil
	case err != nil:
		return withCode(CodeIOFailure, &fs.PathError{Op: "stat", Path: at, Err: err})
	case st.Mode&unix.S_IFMT == unix.S_IFLNK:
		return refuse(key, path, at, "is a symbolic link; chelsio-sriov never follows one there: remove it")
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return refuse(key, path, at, "is not a regular file")
	case st.Nlink > 1:
		return refuse(key, path, at, "has %d hard links; chelsio-sriov writes only to a file of its own: remove it", st.Nlink)
	}
	return nil
}
