package sysfs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// Dir is an open directory of the tree: reads relative to it resolve the directory
// (and the bus/pci/devices link that led to it) once, not once per file. Discovery
// reads a dozen attributes of each function this way.
type Dir struct {
	fd   int
	path string // full path, for errors
}

// OpenDir opens a directory of the tree, following symbolic links.
func (r Root) OpenDir(rel string) (*Dir, error) {
	p := r.Path(rel)
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: p, Err: err}
	}
	return &Dir{fd: fd, path: p}, nil
}

// Close releases the directory.
func (d *Dir) Close() error { return unix.Close(d.fd) }

// Path returns the full path of name in the directory.
func (d *Dir) Path(name string) string { return filepath.Join(d.path, name) }

// ReadString returns the content of the file name with surrounding white space
// removed.
func (d *Dir) ReadString(name string) (string, error) {
	fd, err := unix.Openat(d.fd, name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", &fs.PathError{Op: "open", Path: d.Path(name), Err: err}
	}
	defer unix.Close(fd)
	return readFD(fd, func() string { return d.Path(name) })
}

// readFD reads the open file fd to its end, with surrounding white space removed:
// plain read(2) calls, without the runtime's poller, which a sysfs attribute does
// not need and a short-lived process pays for at every open. path names the file
// in an error; it is only built then, as a scan reads thousands of files.
func readFD(fd int, path func() string) (string, error) {
	// Read up to one byte past the limit: a file that fills it is too large, as
	// Root.ReadString says.
	buf := make([]byte, 4096)
	n := 0
	for n <= maxFileSize {
		if n == len(buf) {
			buf = append(buf, make([]byte, min(len(buf), maxFileSize+1-len(buf)))...)
		}
		m, err := unix.Read(fd, buf[n:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return "", &fs.PathError{Op: "read", Path: path(), Err: err}
		}
		if m == 0 {
			return strings.TrimSpace(string(buf[:n])), nil
		}
		n += m
	}
	return "", &fs.PathError{Op: "read", Path: path(), Err: errors.New("file larger than 64 KiB")}
}

// ReadInt returns the file's content as a decimal integer.
func (d *Dir) ReadInt(name string) (int, error) {
	s, err := d.ReadString(name)
	if err != nil {
		return 0, err
	}
	return parseIntValue(func() string { return d.Path(name) }, s)
}

// ReadHex returns the file's content as a hexadecimal number, with or without one
// leading "0x".
func (d *Dir) ReadHex(name string, bits int) (uint64, error) {
	s, err := d.ReadString(name)
	if err != nil {
		return 0, err
	}
	return parseHexValue(func() string { return d.Path(name) }, s, bits)
}

// LinkBase returns the last element of the target of the symbolic link name.
func (d *Dir) LinkBase(name string) (string, error) {
	// A target that fills the buffer may have been cut: read it again into a larger
	// one (the kernel stores targets of up to PATH_MAX bytes). The first is on the
	// stack: a scan reads a few links of every VF.
	var first [512]byte
	buf := first[:]
	for {
		n, err := unix.Readlinkat(d.fd, name, buf)
		if err != nil {
			return "", &fs.PathError{Op: "readlink", Path: d.Path(name), Err: err}
		}
		if n < len(buf) {
			return linkBase(func() string { return d.Path(name) }, string(buf[:n]))
		}
		buf = make([]byte, 2*len(buf))
	}
}

// ReadDir returns the sorted entry names of the subdirectory name ("" for the
// directory itself).
func (d *Dir) ReadDir(name string) ([]string, error) {
	if name == "" {
		name = "."
	}
	fd, err := unix.Openat(d.fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: d.Path(name), Err: err}
	}
	f := os.NewFile(uintptr(fd), d.Path(name))
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	return names, nil
}
