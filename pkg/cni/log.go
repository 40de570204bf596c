package cni

import (
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/safepath"
)

// parseLevel maps sriov-cni's logLevel values to slog levels; "" is info.
func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "", "info":
		return slog.LevelInfo, nil
	case "debug":
		return slog.LevelDebug, nil
	case "warning", "warn":
		return slog.LevelWarn, nil
	case "error", "panic":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("unknown log level %q", s)
}

// openLog returns the logger of one invocation: logFile (appended, 0600) or
// stderr. It never writes to stdout, which carries only the result. A logFile that
// chelsio-sriov will not write to (a symbolic link at it or in its directory, a
// file that is not a regular file of its own) is refused with an error; one that
// merely cannot be opened (its directory missing, a read-only filesystem) is
// reported on stderr, and the log goes there.
func openLog(c *NetConf, stderr io.Writer) (*slog.Logger, func(), error) {
	lvl, _ := parseLevel(c.LogLevel)
	w, closeFn := stderr, func() {}
	if c.LogFile != "" {
		f, err := openLogFile(c.LogFile)
		switch {
		case safepath.IsRefusal(err):
			return nil, nil, err
		case err != nil:
			if stderr != nil {
				fmt.Fprintf(stderr, "chelsio-sriov: logFile %q: %v; logging to stderr\n", c.LogFile, err)
			}
		default:
			w, closeFn = f, func() { _ = f.Close() }
		}
	}
	if w == nil {
		w = io.Discard
	}
	h := slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl})
	return slog.New(h).With("plugin", "chelsio-sriov"), closeFn, nil
}

// openLogFile opens the log file for appending without following a symbolic link
// anywhere in its path: its directory is reached one component at a time with
// O_NOFOLLOW, and the file is opened relative to that descriptor, so that no link
// can be slipped in between the checks and the open. No directory on the way may
// be on a pseudo filesystem (procfs, sysfs, cgroupfs…): the refusal comes before
// the open. What was opened is checked after the open, before anything is written
// (a regular file with one link, on no pseudo filesystem either), and a file of
// another user is refused where others could have planted it (a directory writable
// by group or others). Where the file may be (the node's allowed directories) is
// the caller's to check.
func openLogFile(path string) (*os.File, error) {
	logFile := safepath.Setting{Key: "logFile", Path: path}
	dir, name := filepath.Split(path)
	if name == "" || !filepath.IsAbs(path) {
		return nil, logFile.Refuse("", "is not the absolute path of a file")
	}
	dfd, _, err := logFile.OpenDir(dir, safepath.LinksOnly, false)
	if err != nil {
		return nil, err
	}
	defer unix.Close(dfd)
	f, err := logFile.OpenFile(path, dfd, name, unix.O_WRONLY|unix.O_APPEND|unix.O_CREAT, 0o600)
	if err != nil {
		return nil, err
	}
	// A file mounted over one in the log's directory is on a filesystem of its own.
	if err := logFile.RefusePseudo(path, int(f.Fd())); err != nil {
		f.Close()
		return nil, err
	}
	var fst, dst unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &fst); err != nil {
		f.Close()
		return nil, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	if err := unix.Fstat(dfd, &dst); err != nil {
		f.Close()
		return nil, &fs.PathError{Op: "stat", Path: dir, Err: err}
	}
	if euid := uint32(os.Geteuid()); fst.Uid != euid && dst.Mode&0o022 != 0 {
		f.Close()
		return nil, logFile.Refuse("", "belongs to uid %d, in a directory that others can write (mode %04o): anyone could have planted it; remove it or log elsewhere", fst.Uid, dst.Mode&0o7777)
	}
	return f, nil
}
