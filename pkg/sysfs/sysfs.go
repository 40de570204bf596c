package sysfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// DefaultRoot is the sysfs mount point of a running Linux system.
const DefaultRoot Root = "/sys"

// EnvRoot names the environment variable that overrides the sysfs root of every
// chelsio-sriov binary.
const EnvRoot = "CHELSIO_SYSFS_ROOT"

// maxFileSize bounds every read: sysfs attributes are at most one page.
const maxFileSize = 64 << 10

// Root is the directory that stands for /sys.
type Root string

// FromEnv returns the root named by $CHELSIO_SYSFS_ROOT, or DefaultRoot.
func FromEnv() Root {
	if r := os.Getenv(EnvRoot); r != "" {
		return Root(r)
	}
	return DefaultRoot
}

// Path joins the root and the relative path elements.
func (r Root) Path(elem ...string) string {
	return filepath.Join(append([]string{string(r)}, elem...)...)
}

// ParseError reports a file whose content is not of the expected form.
type ParseError struct {
	Path  string // full path of the file
	Value string // content, trimmed and cut to 64 bytes
	Want  string // what was expected, e.g. "an integer"
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("read %s: %q is not %s", e.Path, e.Value, e.Want)
}

// ReadString returns the content of the file with surrounding white space removed.
func (r Root) ReadString(rel string) (string, error) {
	p := r.Path(rel)
	for {
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return "", &fs.PathError{Op: "open", Path: p, Err: err}
		}
		defer unix.Close(fd)
		return readFD(fd, func() string { return p })
	}
}

// ReadInt returns the file's content as a decimal integer ("-1" included).
func (r Root) ReadInt(rel string) (int, error) {
	s, err := r.ReadString(rel)
	if err != nil {
		return 0, err
	}
	return parseIntValue(func() string { return r.Path(rel) }, s)
}

func parseIntValue(path func() string, s string) (int, error) {
	v, err := strconv.Atoi(s)
	if err != nil {
		return 0, &ParseError{Path: path(), Value: cut(s), Want: "an integer"}
	}
	return v, nil
}

// ReadHex returns the file's content as a hexadecimal number, with or without a
// leading "0x" (vendor and device carry it, sriov_vf_device does not).
func (r Root) ReadHex(rel string, bits int) (uint64, error) {
	s, err := r.ReadString(rel)
	if err != nil {
		return 0, err
	}
	return parseHexValue(func() string { return r.Path(rel) }, s, bits)
}

func parseHexValue(path func() string, s string, bits int) (uint64, error) {
	h, ok := strings.CutPrefix(s, "0x")
	if !ok {
		h, _ = strings.CutPrefix(s, "0X") // one prefix at most: "0x0X1" is not a number
	}
	v, err := strconv.ParseUint(h, 16, bits)
	if err != nil || h == "" {
		return 0, &ParseError{Path: path(), Value: cut(s), Want: fmt.Sprintf("a %d-bit hexadecimal number", bits)}
	}
	return v, nil
}

// Readlink returns the target of the symbolic link, as stored.
func (r Root) Readlink(rel string) (string, error) {
	return os.Readlink(r.Path(rel))
}

// LinkBase returns the last element of the symbolic link's target: the device
// address for "physfn" and "virtfnN", the driver name for "driver". Link depth
// depends on the topology, so callers compare base names only.
func (r Root) LinkBase(rel string) (string, error) {
	t, err := r.Readlink(rel)
	if err != nil {
		return "", err
	}
	return linkBase(func() string { return r.Path(rel) }, t)
}

func linkBase(path func() string, target string) (string, error) {
	b := filepath.Base(target)
	if b == "." || b == "/" || b == "" || b == ".." {
		return "", &ParseError{Path: path(), Value: cut(target), Want: "a link to a named entry"}
	}
	return b, nil
}

// ReadDir returns the names of the entries of a directory, sorted.
func (r Root) ReadDir(rel string) ([]string, error) {
	entries, err := os.ReadDir(r.Path(rel))
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names, nil
}

// Exists reports whether the path exists (following symbolic links).
func (r Root) Exists(rel string) bool {
	_, err := os.Stat(r.Path(rel))
	return err == nil
}

// Write writes s to an existing attribute file, as `echo s > file` does. The kernel
// reports a refused value as the error of the write.
func (r Root) Write(rel, s string) error {
	p := r.Path(rel)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(s); err != nil {
		f.Close()
		return &fs.PathError{Op: "write", Path: p, Err: unwrapPathErr(err)}
	}
	if err := f.Close(); err != nil {
		return &fs.PathError{Op: "write", Path: p, Err: unwrapPathErr(err)}
	}
	return nil
}

func unwrapPathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func cut(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
