package cni

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/cut"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/safepath"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// Phases of an attachment's state file.
const (
	PhaseAdding   = "adding"   // written before the first change of ADD
	PhaseAttached = "attached" // written before ADD prints its result
)

// Attachment is the state file of one (container, ifname) attachment: what ADD
// found before changing anything and what it set, so that DEL and GC can give the
// VF back as it was.
type Attachment struct {
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifName"`
	Netns       string `json:"netns"`
	Network     string `json:"network"`
	VF          string `json:"pciAddress"`
	Phase       string `json:"phase"`
	DPDK        bool   `json:"dpdk,omitempty"`
	// The VF netdev as ADD found it in the host namespace.
	HostName string `json:"hostName,omitempty"`
	HostMTU  int    `json:"hostMTU,omitempty"`
	HostMAC  string `json:"hostMAC,omitempty"`
	// PodIfindex is the VF netdev's ifindex in the pod, which a pod cannot give
	// to a link of its own while the VF holds it: DEL and CHECK know the VF by it
	// where the kernel does not say which device a link is (docs/emulation.md).
	PodIfindex int `json:"podIfindex,omitempty"`
	// PF-side settings: the original VF config and which settings ADD applies.
	PF *PFState `json:"pf,omitempty"`
	// IPAM plugin type, and the NetConf given to ADD (IPAM DEL gets it again).
	IPAMType string          `json:"ipamType,omitempty"`
	NetConf  json.RawMessage `json:"netconf,omitempty"`
	Result   json.RawMessage `json:"result,omitempty"`
	Created  time.Time       `json:"created"`
}

// PFState is the PF-side part of an attachment.
type PFState struct {
	Mgmt     string      `json:"mgmt"`
	VFIndex  int         `json:"vfIndex"`
	Orig     vf.VFConfig `json:"orig"`
	SetMAC   bool        `json:"setMAC,omitempty"`
	SetVLAN  bool        `json:"setVLAN,omitempty"`
	SetRate  bool        `json:"setRate,omitempty"`
	SetState bool        `json:"setState,omitempty"`
}

// Owner is the per-VF record: which attachment holds the VF.
type Owner struct {
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifName"`
	Netns       string `json:"netns"`
}

// Store is the plugin's state directory: attachments/<container>_<ifname>.json,
// vfs/<pci address>.json and locks/<pci address>.lock, files 0600 in 0700
// directories owned by the plugin's user.
//
// Every operation opens the directory afresh, one path component at a time from
// "/" without following a symbolic link (package safepath), checks it (no link
// anywhere in dataDir, every directory above it root's or the plugin user's and
// not writable by others without the sticky bit, dataDir and its subdirectories
// the plugin user's own, mode 0700 or stricter), and reaches every file through
// that descriptor with O_NOFOLLOW. A path checked once is never resolved again, so
// nothing can swap a directory or file for a link between the check and the use.
//
// Only ADD makes directories or changes their modes (ensure): DEL, GC, CHECK and
// STATUS use what they find, and a missing one means that nothing is recorded.
type Store struct {
	Dir string
}

// setting is the store's directory as the NetConf gives it, for the walk and its
// refusals.
func (s Store) setting() safepath.Setting { return safepath.Setting{Key: "dataDir", Path: s.Dir} }

// stateSubdirs are the state directory's subdirectories.
var stateSubdirs = []string{"attachments", "vfs", "locks"}

// maxStateFile bounds a state file read: one attachment's record is a few KiB,
// and writeJSON never writes one that DEL could not read back.
const maxStateFile = 1 << 20

// MaxNetConf is the largest network config ADD takes: the attachment's state
// records it (IPAM DEL gets it again) beside the result, and the whole record must
// stay within what DEL reads.
const MaxNetConf = 256 << 10

var containerIDRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`)

// maxContainerID is the longest CNI_CONTAINERID whose state file name,
// <container>_<ifname>.json with a 15-byte ifname, fits a file name (255 bytes).
const maxContainerID = 255 - len("_") - maxIfName - len(".json")

// maxIfName is the kernel's limit on an interface name (IFNAMSIZ less its NUL).
const maxIfName = 15

// checkKey refuses container IDs and ifnames that could leave the directory, make
// a file name the filesystem refuses, or name an interface the kernel would
// rename: the message says which variable and what is wrong with it.
func checkKey(containerID, ifName string) error {
	if p := containerIDProblem(containerID); p != "" {
		return withCode(CodeInvalidEnv, fmt.Errorf("CNI_CONTAINERID %s %s", cut.Quote(containerID), p))
	}
	if p := ifNameProblem(ifName); p != "" {
		return withCode(CodeInvalidEnv, fmt.Errorf("CNI_IFNAME %s %s", cut.Quote(ifName), p))
	}
	return nil
}

func containerIDProblem(id string) string {
	switch {
	case id == "":
		return "is empty: the runtime must give the container's ID"
	case len(id) > maxContainerID:
		return fmt.Sprintf("is %d bytes long: at most %d", len(id), maxContainerID)
	case strings.IndexFunc(id, unicode.IsControl) >= 0:
		return "contains a control character"
	case !containerIDRE.MatchString(id):
		return "is not a container ID: want letters, digits, '_', '.' and '-', starting with a letter or digit"
	}
	return ""
}

func ifNameProblem(name string) string {
	switch {
	case name == "":
		return "is empty: want an interface name of 1-15 bytes"
	case len(name) > maxIfName:
		return fmt.Sprintf("is %d bytes long: an interface name has at most %d", len(name), maxIfName)
	case name == "." || name == "..":
		return "is not an interface name"
	case name == "all" || name == "default":
		return "is a name the kernel refuses for an interface: it is taken by the per-namespace settings (/proc/sys/net/ipv4/conf/" + name + ")"
	case !utf8.ValidString(name):
		return "is not valid UTF-8"
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return "contains a control character"
	case strings.IndexFunc(name, unicode.IsSpace) >= 0:
		return "contains white space, which an interface name cannot"
	case strings.ContainsAny(name, "/:"):
		return "contains '/' or ':', which an interface name cannot"
	case strings.Contains(name, "%"):
		return "contains '%', which the kernel would replace with a number"
	}
	return ""
}

// attachmentName is the state file's name of a checked key: <container>_<ifname>.json.
// A container ID may hold '_' and so may an ifname, so that "a_b" with "c" and "a"
// with "b_c" would share a name; neither may hold ':', and so a container ID with
// '_' takes <container>:<ifname>.json instead. The names of all other IDs, every ID
// that runtimes give in practice, are the same as before.
func attachmentName(containerID, ifName string) string {
	if strings.Contains(containerID, "_") {
		return containerID + ":" + ifName + ".json"
	}
	return containerID + "_" + ifName + ".json"
}

// checkAddr refuses a PCI address that is not in its canonical form: file names
// are only ever made of the form vf.PCIAddr.String gives.
func checkAddr(addr string) error {
	if a, err := vf.ParsePCIAddr(addr); err != nil || a.String() != addr {
		return fmt.Errorf("state of VF %s: not a canonical PCI address", cut.Quote(addr))
	}
	return nil
}

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
// 0700 with tightenLoose (ensure, ADD's alone), a shared one refused, since
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

// preflight refuses, before a verb does anything, what it would meet in the state
// directory and must not use: an unsafe directory or subdirectory, or, in the place
// of the attachment's state file (when a key is given) or of the VF's owner record
// and lock (when an address is given), a symbolic link or anything but a regular
// file with one link. It creates nothing, and a missing directory or file is fine:
// the verb makes them. Other errors are left for the verb to meet.
func (s Store) preflight(containerID, ifName string, addr vf.PCIAddr) error {
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
		files = append(files, [2]string{"attachments", attachmentName(containerID, ifName)})
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

// ensure creates the state directory and its subdirectories (0700) as needed,
// checks them and tightens the plugin's own (see openDir). Every check comes before
// the first change: a refused dataDir leaves everything as it was. ADD alone calls
// it: a directory that the other verbs do not find, they leave missing, and one
// they find, they leave as it is.
func (s Store) ensure() error {
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
			return withCode(CodeIOFailure, fmt.Errorf("create state dir %s: %w", d.at(name, ""), err))
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
	dir, err := d.sub(sub)
	if err != nil {
		return err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(b) >= maxStateFile {
		return withCode(CodeInvalidConfig, fmt.Errorf("state %s would be %d bytes, more than DEL reads (%d): the network config or the IPAM result is too large", d.at(sub, name), len(b), maxStateFile))
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
			return withCode(CodeIOFailure, fmt.Errorf("write state %s: %w", d.at(sub, name), err))
		}
		f = os.NewFile(uintptr(fd), d.at(sub, tmp))
		break
	}
	if f == nil {
		return withCode(CodeIOFailure, fmt.Errorf("write state %s: no free temporary name", d.at(sub, name)))
	}
	_, werr := f.Write(append(b, '\n'))
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		_ = unix.Unlinkat(dir, tmp, 0)
		return withCode(CodeIOFailure, fmt.Errorf("write state %s: %w", d.at(sub, name), err))
	}
	if err := unix.Renameat(dir, tmp, dir, name); err != nil {
		_ = unix.Unlinkat(dir, tmp, 0)
		return withCode(CodeIOFailure, fmt.Errorf("write state %s: %w", d.at(sub, name), err))
	}
	return nil
}

// checkWritable answers STATUS's question, can ADD write its state, and makes no
// directory and changes no mode: with attachments/ in place it creates and removes
// a file there, through the checked descriptors; where dataDir or attachments/ is
// missing (ADD makes them), it checks the deepest directory that exists as ADD
// would before making the rest, and that it is writable.
func (s Store) checkWritable() error {
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
// symbolic link; a missing file matches fs.ErrNotExist.
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

// LoadAttachment returns the attachment's state; fs.ErrNotExist when there is none.
func (s Store) LoadAttachment(containerID, ifName string) (*Attachment, error) {
	if err := checkKey(containerID, ifName); err != nil {
		return nil, err
	}
	d, err := s.open()
	if err != nil {
		return nil, err
	}
	defer d.close()
	var a Attachment
	if err := d.readJSON("attachments", attachmentName(containerID, ifName), &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// SaveAttachment writes the attachment's state and, when it starts (phase adding),
// the VF's owner record. Both targets are checked before either is written: a
// symbolic link (or anything but a regular file) in the place of one refuses the
// save with nothing written.
func (s Store) SaveAttachment(a *Attachment) error {
	if err := checkKey(a.ContainerID, a.IfName); err != nil {
		return err
	}
	owner := a.Phase == PhaseAdding
	if owner {
		if err := checkAddr(a.VF); err != nil {
			return err
		}
	}
	d, err := s.open()
	if err != nil {
		return err
	}
	defer d.close()
	name := attachmentName(a.ContainerID, a.IfName)
	targets := [][2]string{{"attachments", name}}
	if owner {
		targets = append(targets, [2]string{"vfs", a.VF + ".json"})
	}
	for _, t := range targets {
		dir, err := d.sub(t[0])
		if err != nil {
			return err
		}
		if err := s.setting().CheckFile(d.at(t[0], t[1]), dir, t[1]); err != nil {
			return err
		}
	}
	if owner {
		if err := d.writeJSON("vfs", a.VF+".json", Owner{ContainerID: a.ContainerID, IfName: a.IfName, Netns: a.Netns}); err != nil {
			return err
		}
	}
	return d.writeJSON("attachments", name, a)
}

// RemoveAttachment deletes the attachment's state, and the VF's owner record if it
// still names this attachment.
func (s Store) RemoveAttachment(containerID, ifName, addr string) error {
	return s.remove(containerID, ifName, addr, true)
}

// ReleaseOwner deletes the VF's owner record if it still names this attachment,
// and keeps the attachment's state.
func (s Store) ReleaseOwner(containerID, ifName, addr string) error {
	return s.remove(containerID, ifName, addr, false)
}

func (s Store) remove(containerID, ifName, addr string, attachment bool) error {
	if err := checkKey(containerID, ifName); err != nil {
		return err
	}
	d, err := s.open()
	if isNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer d.close()
	var errs []error
	if addr != "" && checkAddr(addr) == nil {
		var o Owner
		if err := d.readJSON("vfs", addr+".json", &o); err == nil && o.ContainerID == containerID && o.IfName == ifName {
			if err := d.remove("vfs", addr+".json"); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if attachment {
		if err := d.remove("attachments", attachmentName(containerID, ifName)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// isCorrupt reports a state file whose content does not decode: empty or cut
// short (written just before a power loss: the state is not synced) or garbage.
func isCorrupt(err error) bool {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	return errors.As(err, &syn) || errors.As(err, &typ) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// dropCorruptOwner removes the VF's owner record if it does not decode (call with
// the VF's lock held).
func (s Store) dropCorruptOwner(addr string) error {
	if err := checkAddr(addr); err != nil {
		return err
	}
	d, err := s.open()
	if err != nil {
		return err
	}
	defer d.close()
	var o Owner
	if err := d.readJSON("vfs", addr+".json", &o); !isCorrupt(err) {
		return nil
	}
	return d.remove("vfs", addr+".json")
}

// Owner returns the VF's owner record; fs.ErrNotExist when the VF is free.
func (s Store) Owner(addr string) (*Owner, error) {
	if err := checkAddr(addr); err != nil {
		return nil, err
	}
	d, err := s.open()
	if err != nil {
		return nil, err
	}
	defer d.close()
	var o Owner
	if err := d.readJSON("vfs", addr+".json", &o); err != nil {
		return nil, err
	}
	return &o, nil
}

// Attachments lists every attachment state file (for GC). A file whose record
// does not name an attachment that would be stored under that name is reported
// and skipped: GC acts only on keys that pass checkKey.
func (s Store) Attachments() ([]*Attachment, error) {
	d, err := s.open()
	if isNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer d.close()
	dir, err := d.sub("attachments")
	if isNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	rfd, err := unix.Openat(dir, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: d.at("attachments", ""), Err: err}
	}
	rf := os.NewFile(uintptr(rfd), d.at("attachments", ""))
	names, err := rf.Readdirnames(-1)
	rf.Close()
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	var out []*Attachment
	var errs []error
	for _, n := range names {
		if !strings.HasSuffix(n, ".json") || strings.HasPrefix(n, ".") {
			continue
		}
		var a Attachment
		if err := d.readJSON("attachments", n, &a); err != nil {
			errs = append(errs, err)
			continue
		}
		if checkKey(a.ContainerID, a.IfName) != nil || attachmentName(a.ContainerID, a.IfName) != n {
			errs = append(errs, fmt.Errorf("state file %s records container %s, ifname %s, which is not the attachment of its name: skipped", d.at("attachments", n), cut.Quote(a.ContainerID), cut.Quote(a.IfName)))
			continue
		}
		out = append(out, &a)
	}
	return out, errors.Join(errs...)
}

// lockIfStored is Lock for DEL and GC, which make no directory: where the state
// directory, its vfs/ or its locks/ is missing, it takes no lock and returns an
// unlock that does nothing. None is needed then. ADD makes all three before it
// takes the lock or records anything, so nothing is recorded, and DEL has nothing
// of the VF's to read or restore: it only fetches the VF out of its own pod if it
// is there (the runtime never runs ADD and DEL of one attachment at once, and an
// ADD of another attachment that meets the VF in this pod finds it out of the
// host and answers try again) and frees its own lease (the IPAM plugin locks its
// own store). An ADD that makes the directories meanwhile takes the lock, and its
// owner record, should this DEL read it, names that other attachment: DEL leaves
// the VF alone then.
func (s Store) lockIfStored(addr string, timeout time.Duration) (func(), error) {
	d, err := s.open()
	switch {
	case isNotExist(err):
		return func() {}, nil
	case safepath.IsRefusal(err):
		return nil, err
	case err != nil:
		return nil, withCode(CodeIOFailure, fmt.Errorf("lock VF %s: %w", addr, err))
	}
	_, verr := d.sub("vfs")
	_, lerr := d.sub("locks")
	d.close()
	if isNotExist(verr) || isNotExist(lerr) {
		return func() {}, nil
	}
	return s.Lock(addr, timeout)
}

// Lock takes the VF's lock (flock on locks/<addr>.lock), waiting up to timeout;
// then it fails with code 11 (try again later). Every verb takes it before it
// changes anything of the VF's, so it also refuses there a lock file or owner
// record that is a symbolic link or not a regular file. The directories must
// exist (ADD makes them with ensure first; DEL takes lockIfStored).
func (s Store) Lock(addr string, timeout time.Duration) (func(), error) {
	if err := checkAddr(addr); err != nil {
		return nil, err
	}
	fail := func(err error) (func(), error) {
		if safepath.IsRefusal(err) {
			return nil, err
		}
		return nil, withCode(CodeIOFailure, fmt.Errorf("lock VF %s: %w", addr, err))
	}
	d, err := s.open()
	if err != nil {
		return fail(err)
	}
	defer d.close()
	vfs, err := d.sub("vfs")
	if err != nil {
		return fail(err)
	}
	if err := s.setting().CheckFile(d.at("vfs", addr+".json"), vfs, addr+".json"); err != nil {
		return fail(err)
	}
	locks, err := d.sub("locks")
	if err != nil {
		return fail(err)
	}
	f, err := s.setting().OpenFile(d.at("locks", addr+".lock"), locks, addr+".lock", unix.O_RDWR|unix.O_CREAT, 0o600)
	if err != nil {
		return fail(err)
	}
	deadline := time.Now().Add(timeout)
	wait := time.Millisecond
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() {
				_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
				_ = f.Close()
			}, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			_ = f.Close()
			return nil, withCode(CodeIOFailure, fmt.Errorf("lock VF %s: %w", addr, err))
		}
		if time.Now().After(deadline) {
			_ = f.Close()
			return nil, withCode(CodeTryAgainLater, fmt.Errorf("VF %s is locked by another chelsio-sriov operation for more than %v; try again", addr, timeout))
		}
		time.Sleep(wait)
		wait = min(wait*2, 50*time.Millisecond)
	}
}
