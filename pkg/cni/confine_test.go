package cni

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/chelsio-k8s/chelsio-sriov/internal/treesnap"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/cnistore"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/safepath"
)

// TestWithin: a path is within a directory when it is the directory or below it,
// a whole component at a time.
func TestWithin(t *testing.T) {
	tests := []struct {
		p, dir string
		want   bool
	}{
		{"/var/log/chelsio-sriov", "/var/log", true},
		{"/var/log/a/b/c", "/var/log", true},
		{"/var/log", "/var/log", true},
		{"/var/log/", "/var/log", true},
		{"/var/logx", "/var/log", false},
		{"/var/logx/chelsio-sriov", "/var/log", false},
		{"/var/lo", "/var/log", false},
		{"/var", "/var/log", false},
		{"/", "/var/log", false},
		{"/etc/passwd", "/var/log", false},
		{"/var/lib/cni/chelsio-sriov/", "/var/lib", true},
		{"/anything", "/", true},
		{"/", "/", true},
	}
	for _, tt := range tests {
		if got := within(tt.p, tt.dir); got != tt.want {
			t.Errorf("within(%q, %q) = %v, want %v", tt.p, tt.dir, got, tt.want)
		}
	}
}

// TestParseDirList: the node's setting lists absolute, clean directories
// separated by ':'; empty entries are skipped; any other entry is refused with
// code 4, on one line naming the variable and the entry.
func TestParseDirList(t *testing.T) {
	tests := []struct {
		name, value string
		want        []string
		mention     string // "" = accepted
	}{
		{"unset", "", nil, ""},
		{"one", "/srv/log", []string{"/srv/log"}, ""},
		{"two", "/srv/log:/tmp/chelsio", []string{"/srv/log", "/tmp/chelsio"}, ""},
		{"empty entries", ":/srv/log::/tmp:", []string{"/srv/log", "/tmp"}, ""},
		{"the root", "/", []string{"/"}, ""},
		{"relative", "/srv/log:log", nil, `"log" is not an absolute path`},
		{"dot-dot", "/var/log/../../etc", nil, "not a clean path"},
		{"trailing slash", "/var/log/", nil, "not a clean path"},
		{"double slash", "/var//log", nil, "not a clean path"},
		{"dot", "/var/./log", nil, "not a clean path"},
		{"control character", "/var/log\n/etc", nil, "control character"},
		{"invalid UTF-8", "/var/log\xff", nil, "UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDirList(EnvLogDirs, tt.value)
			if tt.mention == "" {
				if err != nil {
					t.Fatalf("ParseDirList(%q) = %v", tt.value, err)
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("ParseDirList(%q) mismatch (-want +got):\n%s", tt.value, diff)
				}
				return
			}
			checkRefused(t, "ParseDirList", err, CodeInvalidEnv, EnvLogDirs, tt.mention)
		})
	}
}

// TestPluginConfinesPaths: a logFile or dataDir outside the allowed directories
// (by default /var/log and /var/lib; more through the Plugin's fields, which main
// fills from the node's setting) is refused by every verb with code 7, on one line
// naming the key, the path, the allowed directories and the node's setting, and
// nothing is created: no log, no state. A directory whose name merely starts like
// an allowed one is not under it. DEL and GC, which need no log to free what an
// attachment holds, log to stderr instead of an unallowed logFile.
func TestPluginConfinesPaths(t *testing.T) {
	const allowedName = "allowed"
	tests := []struct {
		name string
		// paths returns dataDir and logFile under root; root/allowed is allowed.
		paths   func(root string) (dataDir, logFile string)
		verbs   []string
		mention func(root string) []string
	}{
		{"logFile outside", func(root string) (string, string) {
			return filepath.Join(root, allowedName, "state"), filepath.Join(root, "passwd")
		}, []string{"ADD", "CHECK", "STATUS"}, func(root string) []string {
			return []string{`"logFile"`, filepath.Join(root, "passwd"), AllowedLogDir, filepath.Join(root, allowedName), EnvLogDirs}
		}},
		{"logFile in a directory named like an allowed one", func(root string) (string, string) {
			return filepath.Join(root, allowedName, "state"), filepath.Join(root, allowedName+"x", "x.log")
		}, []string{"ADD", "CHECK", "STATUS"}, func(root string) []string {
			return []string{`"logFile"`, filepath.Join(root, allowedName+"x", "x.log"), EnvLogDirs}
		}},
		{"dataDir outside", func(root string) (string, string) {
			return filepath.Join(root, "state"), filepath.Join(root, allowedName, "x.log")
		}, []string{"ADD", "DEL", "CHECK", "STATUS", "GC"}, func(root string) []string {
			return []string{`"dataDir"`, filepath.Join(root, "state"), AllowedDataDir, filepath.Join(root, allowedName), EnvDataDirs}
		}},
		{"dataDir in a directory named like an allowed one", func(root string) (string, string) {
			return filepath.Join(root, allowedName+"x"), filepath.Join(root, allowedName, "x.log")
		}, []string{"ADD", "DEL", "CHECK", "STATUS", "GC"}, func(root string) []string {
			return []string{`"dataDir"`, filepath.Join(root, allowedName+"x"), EnvDataDirs}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := privateDir(t, filepath.Join(t.TempDir(), "r"))
			privateDir(t, filepath.Join(root, allowedName))
			privateDir(t, filepath.Join(root, allowedName+"x"))
			writeFile(t, filepath.Join(root, "passwd"), "root:x:0:0:root:/root:/bin/sh\n")
			dataDir, logFile := tt.paths(root)
			conf := fmt.Sprintf(`{"cniVersion":"1.1.0","name":"n","type":"chelsio-sriov","deviceID":%q,"dataDir":%q,"logFile":%q,"prevResult":{"cniVersion":"1.1.0"}}`,
				hostileVF, dataDir, logFile)
			before := treesnap.Of(t, root)
			p := New(hostileRoot(t), io.Discard)
			p.LogDirs = append(p.LogDirs, filepath.Join(root, allowedName))
			p.DataDirs = append(p.DataDirs, filepath.Join(root, allowedName))
			for _, verb := range tt.verbs {
				err := runVerb(p, verb, &skel.CmdArgs{ContainerID: "pod-a", IfName: "net1", StdinData: []byte(conf), Path: root})
				checkRefused(t, verb, err, CodeInvalidConfig, tt.mention(root)...)
			}
			if diff := cmp.Diff(before, treesnap.Of(t, root)); diff != "" {
				t.Errorf("the refused verbs changed the tree (-before +after):\n%s", diff)
			}
		})
	}

	t.Run("DEL and GC log to stderr rather than to a logFile outside", func(t *testing.T) {
		root := privateDir(t, filepath.Join(t.TempDir(), "r"))
		writeFile(t, filepath.Join(root, "passwd"), "root:x:0:0:root:/root:/bin/sh\n")
		dataDir := filepath.Join(root, "state")
		if err := (cnistore.Store{Dir: dataDir}).Ensure(); err != nil {
			t.Fatal(err)
		}
		conf := fmt.Sprintf(`{"cniVersion":"1.1.0","name":"n","type":"chelsio-sriov","dataDir":%q,"logFile":%q}`, dataDir, filepath.Join(root, "passwd"))
		before := treesnap.Of(t, root)
		for _, verb := range []string{"DEL", "GC"} {
			var stderr strings.Builder
			p := New(hostileRoot(t), &stderr)
			p.DataDirs = append(p.DataDirs, root)
			if err := runVerb(p, verb, &skel.CmdArgs{ContainerID: "pod-a", IfName: "net1", StdinData: []byte(conf), Path: root}); err != nil {
				t.Errorf("%s: %v", verb, err)
			}
			if !strings.Contains(stderr.String(), "logFile refused") || !strings.Contains(stderr.String(), EnvLogDirs) {
				t.Errorf("%s: stderr %q, want the refusal of the logFile", verb, stderr.String())
			}
		}
		if diff := cmp.Diff(before, treesnap.Of(t, root)); diff != "" {
			t.Errorf("DEL and GC changed the tree (-before +after):\n%s", diff)
		}
	})
}

// TestDelRefusedConfConfinesDataDir: a DEL whose config Load refuses looks for
// the attachment's state in the dataDir the config names, but never outside the
// allowed directories.
func TestDelRefusedConfConfinesDataDir(t *testing.T) {
	root := privateDir(t, filepath.Join(t.TempDir(), "r"))
	dataDir := filepath.Join(root, "state")
	if err := (cnistore.Store{Dir: dataDir}).Ensure(); err != nil {
		t.Fatal(err)
	}
	// The key "vlan" as a string is refused by Load.
	conf := fmt.Sprintf(`{"cniVersion":"1.1.0","name":"n","type":"chelsio-sriov","dataDir":%q,"vlan":"100"}`, dataDir)
	before := treesnap.Of(t, root)
	err := New(hostileRoot(t), io.Discard).Del(&skel.CmdArgs{ContainerID: "pod-a", IfName: "net1", StdinData: []byte(conf)})
	checkRefused(t, "DEL", err, CodeInvalidConfig, `"dataDir"`, dataDir, EnvDataDirs)
	if diff := cmp.Diff(before, treesnap.Of(t, root)); diff != "" {
		t.Errorf("DEL changed the tree (-before +after):\n%s", diff)
	}
}

// TestNoVerbButAddMakesOrChangesDirs: DEL, GC, CHECK and STATUS make no
// directory and change no directory's mode: with a dataDir that does not exist,
// and with one that exists with a loose mode (0755, as mkdir -p makes it), empty or
// with the plugin's subdirectories. DEL and GC with nothing recorded succeed, and
// STATUS is ready where ADD could make the directory.
func TestNoVerbButAddMakesOrChangesDirs(t *testing.T) {
	tests := []struct {
		name string
		// setup makes dataDir's layout under root and returns dataDir.
		setup func(t *testing.T, root string) string
	}{
		{"missing dataDir", func(t *testing.T, root string) string {
			return filepath.Join(root, "a", "state")
		}},
		{"empty dataDir of mode 0755", func(t *testing.T, root string) string {
			d := filepath.Join(root, "state")
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
			return d
		}},
		{"dataDir of mode 0755 with its subdirectories", func(t *testing.T, root string) string {
			d := filepath.Join(root, "state")
			if err := (cnistore.Store{Dir: d}).Ensure(); err != nil {
				t.Fatal(err)
			}
			for _, sub := range []string{"", "attachments", "vfs", "locks"} {
				if err := os.Chmod(filepath.Join(d, sub), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			return d
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := privateDir(t, filepath.Join(t.TempDir(), "r"))
			dataDir := tt.setup(t, root)
			conf := fmt.Sprintf(`{"cniVersion":"1.1.0","name":"n","type":"chelsio-sriov","deviceID":%q,"dataDir":%q,"prevResult":{"cniVersion":"1.1.0"}}`, hostileVF, dataDir)
			sys := hostileRoot(t)
			if err := os.MkdirAll(sys.Path("bus/pci/devices"), 0o755); err != nil {
				t.Fatal(err)
			}
			p := New(sys, io.Discard)
			p.DataDirs = append(p.DataDirs, root)
			for _, verb := range []string{"DEL", "GC", "CHECK", "STATUS"} {
				before := dirs(t, root)
				err := runVerb(p, verb, &skel.CmdArgs{ContainerID: "pod-a", IfName: "net1", StdinData: []byte(conf), Path: root})
				if verb != "CHECK" && err != nil { // CHECK finds no attachment
					t.Errorf("%s: %v", verb, err)
				}
				if diff := cmp.Diff(before, dirs(t, root)); diff != "" {
					t.Errorf("%s changed directories (-before +after):\n%s", verb, diff)
				}
			}
		})
	}
}

// dirs describes every directory under root, root included: path and mode.
func dirs(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for p, desc := range treesnap.Of(t, root) {
		if strings.HasPrefix(desc, "d") {
			out[p] = desc
		}
	}
	return out
}

// runVerb runs one verb of p.
func runVerb(p *Plugin, verb string, args *skel.CmdArgs) error {
	switch verb {
	case "ADD":
		_, err := p.Add(args)
		return err
	case "DEL":
		return p.Del(args)
	case "CHECK":
		return p.Check(args)
	case "STATUS":
		return p.Status(args)
	case "GC":
		return p.GC(args)
	}
	return fmt.Errorf("unknown verb %s", verb)
}

// TestPluginRefusesPseudoFilesystems: a logFile or dataDir on, or below, a pseudo
// filesystem of the kernel (the real /proc, /sys, /sys/fs/cgroup and /dev of the
// machine) is refused with code 7 naming the filesystem, even where the node's
// setting allows the directory. The paths are chosen so that a plugin without the
// rule could change nothing there: log files that procfs and sysfs cannot create,
// state directories that exist and hold what is not the plugin's.
func TestPluginRefusesPseudoFilesystems(t *testing.T) {
	tests := []struct {
		name, key, value, allow, fs string
	}{
		{"logFile in /proc/sys/kernel", "logFile", "/proc/sys/kernel/chelsio-sriov-test.log", "/proc/sys/kernel", "proc"},
		{"logFile in /sys/kernel", "logFile", "/sys/kernel/chelsio-sriov-test.log", "/sys", "sysfs"},
		{"logFile in /sys/fs/cgroup", "logFile", "/sys/fs/cgroup/chelsio-sriov-test.log", "/sys/fs/cgroup", "sysfs"},
		{"dataDir /proc/sys/kernel", "dataDir", "/proc/sys/kernel", "/proc", "proc"},
		{"dataDir /sys/fs/cgroup", "dataDir", "/sys/fs/cgroup", "/sys/fs/cgroup", "sysfs"},
		{"dataDir /dev", "dataDir", "/dev", "/dev", "devtmpfs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.fs == "devtmpfs" {
				requireFS(t, tt.value, "devtmpfs")
			}
			root := privateDir(t, filepath.Join(t.TempDir(), "r"))
			m := map[string]string{"dataDir": filepath.Join(root, "state"), "logFile": filepath.Join(root, "x.log")}
			m[tt.key] = tt.value
			conf := fmt.Sprintf(`{"cniVersion":"1.1.0","name":"n","type":"chelsio-sriov","deviceID":%q,"dataDir":%q,"logFile":%q}`, hostileVF, m["dataDir"], m["logFile"])
			p := New(hostileRoot(t), io.Discard)
			p.LogDirs = append(p.LogDirs, root, tt.allow)
			p.DataDirs = append(p.DataDirs, root, tt.allow)
			_, err := p.Add(&skel.CmdArgs{ContainerID: "pod-a", IfName: "net1", StdinData: []byte(conf), Path: root})
			checkRefused(t, "ADD", err, CodeInvalidConfig, fmt.Sprintf("%q", tt.key), tt.value, "is on "+tt.fs+",")
		})
	}
}

// TestWalkRefusesPseudoFilesystems: the walk that opens dataDir and logFile's
// directory refuses every directory on a pseudo filesystem, naming it and its
// type, and passes a directory on a disk or tmpfs.
func TestWalkRefusesPseudoFilesystems(t *testing.T) {
	tests := []struct {
		dir, at, fs string // fs "" = accepted
	}{
		{"/proc/sys/kernel", "/proc", "proc"},
		{"/sys/kernel", "/sys", "sysfs"},
		{"/sys/fs/cgroup", "/sys", "sysfs"},
		{"/dev", "/dev", "devtmpfs"},
		{t.TempDir(), "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			if tt.fs == "devtmpfs" {
				requireFS(t, tt.dir, "devtmpfs")
			}
			fd, _, err := safepath.Setting{Key: "dataDir", Path: tt.dir}.OpenDir(tt.dir, safepath.LinksOnly, false)
			if tt.fs == "" {
				if err != nil {
					t.Fatalf("OpenDir(%s): %v", tt.dir, err)
				}
				unix.Close(fd)
				return
			}
			checkRefused(t, "OpenDir", err, CodeInvalidConfig, `"dataDir"`, fmt.Sprintf("%q is on %s,", tt.at, tt.fs))
		})
	}
}

// mountPoints maps the machine's mount points to their filesystem types (the last
// mount of each).
func mountPoints(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		for i := 6; i < len(f)-1; i++ {
			if f[i] == "-" && !strings.Contains(f[4], `\`) {
				out[f[4]] = f[i+1]
				break
			}
		}
	}
	return out
}

// requireFS skips the test where dir is not a mount point of type fstype (a
// container's /dev is often a tmpfs).
func requireFS(t *testing.T, dir, fstype string) {
	t.Helper()
	if got := mountPoints(t)[dir]; got != fstype {
		t.Skipf("%s is %q here, not %s", dir, got, fstype)
	}
}
