package cni

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/cut"
)

// Where a network config may have the plugin write. The plugin runs as root in the
// host's namespaces, and whoever writes a NetworkAttachmentDefinition, often a
// namespace's administrator, chooses its logFile and dataDir: left free, they
// could make it append log lines to any file of the node (a sysctl under
// /proc/sys, a copy of /etc/passwd) or make directories anywhere. A NetConf may
// name a logFile only under AllowedLogDir and a dataDir only under
// AllowedDataDir, or under directories that the node's administrator adds through
// the plugin's environment (EnvLogDirs, EnvDataDirs), which no NetConf can change.
// And whatever the directories, the plugin keeps no file on a pseudo filesystem of
// the kernel (see pseudoFS).
const (
	// AllowedLogDir is where a NetConf's logFile may be (at any depth).
	AllowedLogDir = "/var/log"
	// AllowedDataDir is where a NetConf's dataDir may be (itself or below it).
	AllowedDataDir = "/var/lib"
	// EnvLogDirs names the environment variable of the plugin's process in which
	// the node's administrator lists more directories for logFile: absolute,
	// clean paths separated by ':'.
	EnvLogDirs = "CHELSIO_SRIOV_LOG_DIRS"
	// EnvDataDirs is EnvLogDirs for dataDir.
	EnvDataDirs = "CHELSIO_SRIOV_DATA_DIRS"
)

// ParseDirList parses the value of the node's setting env (EnvLogDirs or
// EnvDataDirs): directories separated by ':', each absolute and clean (no "..",
// "." or "//", no trailing '/' but in "/" itself). Empty entries are skipped, so
// that "$VAR:/dir" works where VAR is unset. An entry that is not such a
// directory is an error (code 4) naming env and the entry.
func ParseDirList(env, value string) ([]string, error) {
	var dirs []string
	for _, d := range strings.Split(value, ":") {
		if d == "" {
			continue
		}
		if p := dirProblem(d); p != "" {
			return nil, withCode(CodeInvalidEnv, fmt.Errorf("%s: entry %s %s: list absolute, clean directories separated by ':'", env, cut.Quote(d), p))
		}
		dirs = append(dirs, d)
	}
	return dirs, nil
}

// dirProblem says what keeps d from being an absolute, clean directory; "" when
// nothing does.
func dirProblem(d string) string {
	switch {
	case !utf8.ValidString(d):
		return "is not valid UTF-8"
	case strings.IndexFunc(d, unicode.IsControl) >= 0:
		return "contains a control character"
	case !filepath.IsAbs(d):
		return "is not an absolute path"
	case filepath.Clean(d) != d:
		return "is not a clean path (no \"..\", \".\", \"//\" or trailing '/')"
	}
	return ""
}

// within reports whether the clean, absolute path p is the directory dir or below
// it, a whole component at a time: /var/logx is not within /var/log. A trailing
// '/' of p (which checkAbsPath lets a dataDir have) is ignored.
func within(p, dir string) bool {
	if dir == "/" {
		return true
	}
	if p != "/" {
		p = strings.TrimSuffix(p, "/")
	}
	return p == dir || strings.HasPrefix(p, dir+"/")
}

// confine refuses the path that a NetConf names for key unless dir (dataDir
// itself, or logFile's directory) is within one of allowed; env names the node's
// setting that adds to them.
func confine(key, path, dir string, allowed []string, env string) error {
	for _, a := range allowed {
		if within(dir, a) {
			return nil
		}
	}
	return refuse(key, path, "", "is not under the directories a network config may use for %s (%s): the node's administrator can allow more with %s in the plugin's environment", key, strings.Join(allowed, ", "), env)
}

// confineDataDir refuses a dataDir outside p.DataDirs.
func (p *Plugin) confineDataDir(dataDir string) error {
	return confine("dataDir", dataDir, dataDir, p.DataDirs, EnvDataDirs)
}

// confineLogFile refuses a logFile whose directory is outside p.LogDirs; "" (log
// to stderr) is fine.
func (p *Plugin) confineLogFile(logFile string) error {
	if logFile == "" {
		return nil
	}
	return confine("logFile", logFile, filepath.Dir(logFile), p.LogDirs, EnvLogDirs)
}

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
// a configfs item. The plugin never makes, opens or writes a file there, whatever
// the directories allowed. devtmpfs has tmpfs' magic: fsCheck tells it by its
// mount.
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
// tmpfs whose magic it has: /dev is outside the default directories, and the prefix
// rule keeps a NetConf out of it unless the node's administrator allows it.
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

// refusePseudo refuses the component at of path, open as fd, if it is on a pseudo
// filesystem.
func (c *fsCheck) refusePseudo(key, path, at string, fd int) error {
	name, err := c.pseudo(fd)
	if err != nil {
		return withCode(CodeIOFailure, fmt.Errorf("statfs %s: %w", at, err))
	}
	if name != "" {
		return refuse(key, path, at, "is on %s, a pseudo filesystem of the kernel where a write is a command: chelsio-sriov keeps no file there, whatever the node allows", name)
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
