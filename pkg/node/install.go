package node

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Defaults of a Kubernetes node.
const (
	// DefaultCNIBinDir is where container runtimes look for CNI plugins.
	DefaultCNIBinDir = "/opt/cni/bin"
	// DefaultDevicePluginDir is kubelet's device-plugin socket directory.
	DefaultDevicePluginDir = "/var/lib/kubelet/device-plugins"
	// PluginName is the CNI plugin's file name: the `type` of the NetworkAttachmentDefinition.
	PluginName = "chelsio-sriov"
)

// installMode is the mode of an installed plugin, whatever the umask.
const installMode fs.FileMode = 0o755

// Action says what Install did.
type Action int

// What Install did.
const (
	Installed Action = iota // there was no file at the destination
	Replaced                // a different file was replaced
	Unchanged               // the destination already held the same content, mode 0755
)

// Installation reports what Install did.
type Installation struct {
	Src     string // the source file
	Path    string // the installed file: <dir>/<name>
	Action  Action
	Size    int64  // bytes installed (or found identical)
	SHA256  string // hex SHA-256 of the content
	MadeDir bool   // the destination directory did not exist and was created
}

// String says what happened in one line, e.g.
// "installed /opt/cni/bin/chelsio-sriov from /bin/chelsio-sriov (4.2 MB, sha256 1a2b3c4d5e6f)".
func (in *Installation) String() string {
	sum := in.SHA256
	if len(sum) > 12 {
		sum = sum[:12]
	}
	what := fmt.Sprintf("(%s, sha256 %s)", size(in.Size), sum)
	switch in.Action {
	case Unchanged:
		return fmt.Sprintf("already installed: %s is identical to %s %s", in.Path, in.Src, what)
	case Replaced:
		return fmt.Sprintf("replaced %s with %s %s", in.Path, in.Src, what)
	default:
		return fmt.Sprintf("installed %s from %s %s", in.Path, in.Src, what)
	}
}

func size(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f kB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// Install copies the file src to dir/name, atomically, as `install -m 0755` would
// but safe for a file that is being executed: it writes a new file beside the old
// one (created with O_EXCL, mode 0755), syncs it, renames it over dir/name and syncs
// dir. A process executing the old file keeps running it (the rename leaves its
// inode alive), and one that starts at any moment runs either the old file or the
// new one: it never sees ENOENT, ETXTBSY or a partial file. A missing dir is created.
//
// When dir/name already holds the same content with mode 0755, Install changes
// nothing and reports Unchanged.
//
// Equivalent to: cp src dir/.name.tmp && sync && mv dir/.name.tmp dir/name.
func Install(src, dir, name string) (*Installation, error) {
	if err := CheckFileName(name, PluginName); err != nil {
		return nil, err
	}
	sf, size, err := openSource(src)
	if err != nil {
		return nil, err
	}
	defer sf.Close()
	in := &Installation{Src: src, Path: filepath.Join(dir, name), Size: size}
	if in.MadeDir, err = ensureDir(dir); err != nil {
		return nil, err
	}
	if err := in.compare(sf); err != nil {
		return nil, err
	}
	if in.Action == Unchanged {
		return in, nil
	}
	if err := in.replace(sf, dir, name); err != nil {
		return nil, err
	}
	// The rename is durable only once the directory is synced.
	if err := syncDir(dir); err != nil {
		return nil, err
	}
	return in, nil
}

// CheckFileName refuses a name that is not a plain file name in a directory:
// empty, "." or "..", or with a '/'. example is a good name, for the message.
func CheckFileName(name, example string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
		return fmt.Errorf("invalid file name %q: want a plain name such as %s", name, example)
	}
	return nil
}

// Verify reports whether dir/name holds the content of src with mode 0755, as
// Install leaves it, without changing anything: nil when it does, an error that
// says what differs otherwise. The installer's readiness probe.
func Verify(src, dir, name string) error {
	if err := CheckFileName(name, PluginName); err != nil {
		return err
	}
	sf, size, err := openSource(src)
	if err != nil {
		return err
	}
	defer sf.Close()
	in := &Installation{Src: src, Path: filepath.Join(dir, name), Size: size}
	if err := in.compare(sf); err != nil {
		return err
	}
	switch in.Action {
	case Installed:
		return fmt.Errorf("%s is not installed", in.Path)
	case Replaced:
		return fmt.Errorf("%s differs from %s (content or mode): run install-cni", in.Path, src)
	}
	return nil
}

// openSource opens src, which must be a regular file that is not empty, and
// returns its size.
func openSource(src string) (*os.File, int64, error) {
	sf, err := os.Open(src)
	if err != nil {
		return nil, 0, fmt.Errorf("source %s: %w", src, innerErr(err))
	}
	st, err := sf.Stat()
	switch {
	case err != nil:
		err = fmt.Errorf("source %s: %w", src, innerErr(err))
	case !st.Mode().IsRegular():
		err = fmt.Errorf("source %s: not a regular file", src)
	case st.Size() == 0:
		err = fmt.Errorf("source %s: empty file", src)
	}
	if err != nil {
		sf.Close()
		return nil, 0, err
	}
	return sf, st.Size(), nil
}

// compare sets in.Action from what is at in.Path: Installed when nothing, Unchanged
// (with in.SHA256) when the same content with mode 0755, Replaced otherwise. Unless
// Unchanged, sf is left at its start.
func (in *Installation) compare(sf *os.File) error {
	in.Action = Installed
	cur, err := os.Lstat(in.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("destination %s: %w", in.Path, innerErr(err))
	case cur.IsDir():
		return fmt.Errorf("destination %s: is a directory", in.Path)
	}
	in.Action = Replaced
	if !cur.Mode().IsRegular() || cur.Mode().Perm() != installMode || cur.Size() != in.Size {
		return nil
	}
	same, sum, err := sameContent(sf, in.Path)
	if err != nil {
		return err
	}
	if same {
		in.Action, in.SHA256 = Unchanged, sum
		return nil
	}
	if _, err := sf.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("source %s: %w", in.Src, innerErr(err))
	}
	return nil
}

// replace writes sf to a new temporary file in dir, syncs it and renames it over
// in.Path, setting in.Size and in.SHA256. On error the temporary file is removed.
func (in *Installation) replace(sf io.Reader, dir, name string) (retErr error) {
	tmp, f, err := createTemp(dir, name)
	if err != nil {
		return fmt.Errorf("destination %s: %w", dir, innerErr(err))
	}
	defer func() {
		if f != nil {
			f.Close()
		}
		if retErr != nil {
			if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
				retErr = errors.Join(retErr, fmt.Errorf("remove temporary file: %w", err))
			}
		}
	}()
	// O_CREATE's mode went through the umask; the plugin must be executable by all.
	if err := f.Chmod(installMode); err != nil {
		return fmt.Errorf("chmod %s: %w", tmp, innerErr(err))
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), sf)
	if err != nil {
		return fmt.Errorf("copy %s to %s: %w", in.Src, tmp, innerErr(err))
	}
	in.Size, in.SHA256 = n, hex.EncodeToString(h.Sum(nil))
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", tmp, innerErr(err))
	}
	err = f.Close()
	f = nil
	if err != nil {
		return fmt.Errorf("close %s: %w", tmp, innerErr(err))
	}
	if err := os.Rename(tmp, in.Path); err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmp, in.Path, innerErr(err))
	}
	return nil
}

// ensureDir checks that dir is a directory, creating it (mode 0755) when missing.
func ensureDir(dir string) (made bool, err error) {
	st, err := os.Stat(dir)
	switch {
	case err == nil && st.IsDir():
		return false, nil
	case err == nil:
		return false, fmt.Errorf("destination %s: not a directory", dir)
	case !errors.Is(err, fs.ErrNotExist):
		return false, fmt.Errorf("destination %s: %w", dir, innerErr(err))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, fmt.Errorf("destination %s: %w", dir, innerErr(err))
	}
	return true, nil
}

// createTemp creates a new file .<name>.tmp-<random> in dir with O_EXCL: never an
// existing file, even one another installer is writing.
func createTemp(dir, name string) (string, *os.File, error) {
	for range 10 {
		b := make([]byte, 6)
		if _, err := rand.Read(b); err != nil {
			return "", nil, err
		}
		p := filepath.Join(dir, "."+name+".tmp-"+hex.EncodeToString(b))
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, installMode)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return p, f, err
	}
	return "", nil, errors.New("no unused temporary file name")
}

// sameContent compares the rest of src with the file at path, and returns the
// SHA-256 of src's content.
func sameContent(src io.Reader, path string) (bool, string, error) {
	df, err := os.Open(path)
	if err != nil {
		return false, "", fmt.Errorf("destination %s: %w", path, innerErr(err))
	}
	defer df.Close()
	h := sha256.New()
	same, err := equalReaders(io.TeeReader(src, h), df)
	if err != nil {
		return false, "", err
	}
	return same, hex.EncodeToString(h.Sum(nil)), nil
}

func equalReaders(a, b io.Reader) (bool, error) {
	const chunk = 64 << 10
	ba, bb := make([]byte, chunk), make([]byte, chunk)
	for {
		na, ea := io.ReadFull(a, ba)
		nb, eb := io.ReadFull(b, bb)
		if !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		aEnd := errors.Is(ea, io.EOF) || errors.Is(ea, io.ErrUnexpectedEOF)
		bEnd := errors.Is(eb, io.EOF) || errors.Is(eb, io.ErrUnexpectedEOF)
		switch {
		case ea != nil && !aEnd:
			return false, fmt.Errorf("read source: %w", innerErr(ea))
		case eb != nil && !bEnd:
			return false, fmt.Errorf("read destination: %w", innerErr(eb))
		case aEnd || bEnd:
			return aEnd == bEnd, nil
		}
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, innerErr(err))
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, innerErr(err))
	}
	return nil
}

// innerErr strips the operation and path of an *fs.PathError or *os.LinkError, which
// the caller names itself: "destination /opt/cni/bin: read-only file system".
func innerErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}
