package safepath

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Magic numbers of linux/magic.h that golang.org/x/sys/unix lacks.
const (
	configfsMagic  = 0x62656570
	mqueueMagic    = 0x19800202
	fusectlMagic   = 0x65735543
	nfsdMagic      = 0x6e667364
	rpcPipefsMagic = 0x67596969
)

// pseudoFS names, by their statfs magic, the kernel's pseudo filesystems: files
// there are the kernel's interfaces, where a write is a command (a sysctl, a
// cgroup's limit, a tracer, a firmware variable) and a mkdir can make a cgroup or
// a configfs item. A walk never makes, opens or writes a file there, whatever the
// directories a config may name. devtmpfs has tmpfs' magic: fsCheck tells it by
// its mount.
var pseudoFS = map[int64]string{
	unix.PROC_SUPER_MAGIC:      "proc",
	unix.SYSFS_MAGIC:           "sysfs",
	unix.CGROUP_SUPER_MAGIC:    "cgroup",
	unix.CGROUP2_SUPER_MAGIC:   "cgroup2",
	unix.DEBUGFS_MAGIC:         "debugfs",
	unix.TRACEFS_MAGIC:         "tracefs",
	unix.SECURITYFS_MAGIC:      "securityfs",
	unix.BPF_FS_MAGIC:          "bpf",
	configfsMagic:              "configfs",
	unix.DEVPTS_SUPER_MAGIC:    "devpts",
	mqueueMagic:                "mqueue",
	unix.EFIVARFS_MAGIC:        "efivarfs",
	unix.PSTOREFS_MAGIC:        "pstore",
	unix.SELINUX_MAGIC:         "selinuxfs",
	unix.SMACK_MAGIC:           "smackfs",
	fusectlMagic:               "fusectl",
	unix.BINFMTFS_MAGIC:        "binfmt_misc",
	unix.NSFS_MAGIC:            "nsfs",
	unix.RDTGROUP_SUPER_MAGIC:  "resctrl",
	unix.OPENPROM_SUPER_MAGIC:  "openpromfs",
	unix.USBDEVICE_SUPER_MAGIC: "usbdevfs",
	unix.XENFS_SUPER_MAGIC:     "xenfs",
	nfsdMagic:                  "nfsd",
	rpcPipefsMagic:             "rpc_pipefs",
}

// mountInfo is the mount table of the calling thread's mount namespace.
const mountInfo = "/proc/thread-self/mountinfo"

// fsCheck tells the filesystem of each directory one walk opens. It reads the
// mount table at most once, and only for a directory with tmpfs' magic, which is
// devtmpfs' too.
type fsCheck struct {
	// mountInfo is the mount table to read; "" is the constant mountInfo.
	mountInfo string
	mounts    []mount
	read      bool
}

// mount is an entry of the mount table.
type mount struct {
	id     uint64
	dev    uint64 // unix.Mkdev(major, minor)
	fstype string
}

// pseudo returns the name of the pseudo filesystem that the descriptor fd is on,
// or "" when it is on another.
func (c *fsCheck) pseudo(fd int) (string, error) {
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		return "", err
	}
	magic := int64(st.Type) // int32, int64 or uint32, by architecture
	if name, ok := pseudoFS[magic]; ok {
		return name, nil
	}
	if magic == unix.TMPFS_MAGIC && c.fstype(fd) == "devtmpfs" {
		return "devtmpfs", nil
	}
	return "", nil
}

// fstype returns the filesystem type that the mount table gives for fd's mount:
// found by its mount ID (statx, Linux 5.8) or else by its device number; "" when
// the table cannot be read or has no such mount. Then a devtmpfs passes for the
// tmpfs whose magic it has: /dev is outside the directories that the CNI plugin
// allows by default, and its prefix rule keeps a NetConf out of /dev unless the
// node's administrator allows it.
func (c *fsCheck) fstype(fd int) string {
	if !c.read {
		c.read = true
		path := c.mountInfo
		if path == "" {
			path = mountInfo
		}
		c.mounts, _ = readMounts(path)
	}
	var stx unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &stx); err == nil && stx.Mask&unix.STATX_MNT_ID != 0 {
		for _, m := range c.mounts {
			if m.id == stx.Mnt_id {
				return m.fstype
			}
		}
		return ""
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return ""
	}
	for _, m := range c.mounts {
		if m.dev == uint64(st.Dev) {
			return m.fstype
		}
	}
	return ""
}

// RefusePseudo refuses the part at of s.Path, or a file below it, open as fd, if
// it is on a pseudo filesystem of the kernel: a file mounted over one in a checked
// directory is on a filesystem of its own.
func (s Setting) RefusePseudo(at string, fd int) error {
	var c fsCheck
	return c.refusePseudo(s, at, fd)
}

// refusePseudo refuses the part at of s.Path, open as fd, if it is on a pseudo
// filesystem.
func (c *fsCheck) refusePseudo(s Setting, at string, fd int) error {
	name, err := c.pseudo(fd)
	if err != nil {
		return &IOError{Err: fmt.Errorf("statfs %s: %w", at, err)}
	}
	if name != "" {
		return s.Refuse(at, "is on %s, a pseudo filesystem of the kernel where a write is a command: chelsio-sriov keeps no file there, whatever the node allows", name)
	}
	return nil
}

// readMounts reads a mount table in the format of /proc/<pid>/mountinfo; a
// missing path reads /proc/self/mountinfo (a kernel before 3.17 has no
// thread-self).
func readMounts(path string) ([]mount, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) && path == mountInfo {
		f, err = os.Open("/proc/self/mountinfo")
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseMounts(f)
}

// parseMounts parses mountinfo lines: "ID PARENT MAJOR:MINOR ROOT MOUNTPOINT
// OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS". Lines it cannot read are
// skipped.
func parseMounts(r io.Reader) ([]mount, error) {
	var out []mount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 {
			continue
		}
		id, err := strconv.ParseUint(fields[0], 10, 64)
		if err != nil {
			continue
		}
		majStr, minStr, ok := strings.Cut(fields[2], ":")
		maj, err1 := strconv.ParseUint(majStr, 10, 32)
		minor, err2 := strconv.ParseUint(minStr, 10, 32)
		if !ok || err1 != nil || err2 != nil {
			continue
		}
		for i := 6; i < len(fields)-1; i++ {
			if fields[i] == "-" {
				out = append(out, mount{id: id, dev: unix.Mkdev(uint32(maj), uint32(minor)), fstype: fields[i+1]})
				break
			}
		}
	}
	return out, sc.Err()
}
