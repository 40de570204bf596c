package cni

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/chelsio-k8s/chelsio-sriov/internal/roottest"
	"github.com/chelsio-k8s/chelsio-sriov/internal/treesnap"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/cnistore"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/safepath"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/sysfs"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// Tests of what the plugin does with hostile input: bad CNI_* variables, and a
// dataDir or logFile that is, or leads through, something it must not use. Every
// refusal must name what is wrong on one line, and change nothing on disk.

const hostileVF = "0000:81:01.0"

// checkRefused checks a refusal: an error with the CNI code, on one line, that
// names each of mention.
func checkRefused(t *testing.T, what string, err error, code uint, mention ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s succeeded, want a refusal naming %q", what, mention)
	}
	ce := AsCNIError(err)
	if ce.Code != code {
		t.Errorf("%s: code %d, want %d (%v)", what, ce.Code, code, err)
	}
	for _, m := range mention {
		if !strings.Contains(ce.Msg, m) {
			t.Errorf("%s: message %q does not name %s", what, ce.Msg, m)
		}
	}
	if strings.ContainsAny(ce.Msg, "\r\n") {
		t.Errorf("%s: message spans lines: %q", what, ce.Msg)
	}
}

// privateDir makes a directory of mode 0700 (t.TempDir's directories may be
// looser under some umasks).
func privateDir(t *testing.T, p string) string {
	t.Helper()
	if err := os.MkdirAll(p, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o700); err != nil {
		t.Fatal(err)
	}
	return p
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// storeOps are the Store's operations, each as a hostile dataDir meets it; the
// writers (ensure, Lock, SaveAttachment) must refuse it, the others refuse it or
// find nothing.
func storeOps() []struct {
	name   string
	writer bool
	op     func(cnistore.Store) error
} {
	return []struct {
		name   string
		writer bool
		op     func(cnistore.Store) error
	}{
		{"ensure", true, func(s cnistore.Store) error { return s.Ensure() }},
		{"Lock", true, func(s cnistore.Store) error {
			unlock, err := s.Lock(hostileVF, time.Second)
			if err == nil {
				unlock()
			}
			return err
		}},
		{"SaveAttachment", true, func(s cnistore.Store) error {
			return s.SaveAttachment(&cnistore.Attachment{ContainerID: "pod-a", IfName: "net1", VF: hostileVF, Phase: cnistore.PhaseAdding})
		}},
		{"LoadAttachment", false, func(s cnistore.Store) error { _, err := s.LoadAttachment("pod-a", "net1"); return err }},
		{"Owner", false, func(s cnistore.Store) error { _, err := s.Owner(hostileVF); return err }},
		{"Attachments", false, func(s cnistore.Store) error { _, err := s.Attachments(); return err }},
		{"RemoveAttachment", false, func(s cnistore.Store) error { return s.RemoveAttachment("pod-a", "net1", hostileVF) }},
	}
}

// TestStoreRefusesUnsafeDataDir: a dataDir that is a symbolic link, leads through
// one, has a subdirectory that is one, is not a directory, is looser than 0700 and
// holds files not the plugin's (shared), or sits below a directory that others can
// write without the sticky bit, is refused by every operation with a message
// naming "dataDir" and the part at fault, and nothing under the test's directory
// changes: no directory made, no mode changed, no file written through a link.
func TestStoreRefusesUnsafeDataDir(t *testing.T) {
	tests := []struct {
		name string
		// setup builds the hostile layout under root and returns dataDir.
		setup   func(t *testing.T, root string) string
		mention []string
	}{
		{"dataDir is a symbolic link", func(t *testing.T, root string) string {
			privateDir(t, filepath.Join(root, "real"))
			symlink(t, filepath.Join(root, "real"), filepath.Join(root, "state"))
			return filepath.Join(root, "state")
		}, []string{"is a symbolic link"}},
		{"dataDir is a dangling symbolic link", func(t *testing.T, root string) string {
			symlink(t, filepath.Join(root, "nowhere"), filepath.Join(root, "state"))
			return filepath.Join(root, "state")
		}, []string{"is a symbolic link"}},
		{"a directory above dataDir is a symbolic link", func(t *testing.T, root string) string {
			privateDir(t, filepath.Join(root, "real"))
			symlink(t, filepath.Join(root, "real"), filepath.Join(root, "link"))
			return filepath.Join(root, "link", "state")
		}, []string{"link", "is a symbolic link"}},
		{"attachments is a symbolic link", func(t *testing.T, root string) string {
			d := privateDir(t, filepath.Join(root, "state"))
			privateDir(t, filepath.Join(root, "elsewhere"))
			symlink(t, filepath.Join(root, "elsewhere"), filepath.Join(d, "attachments"))
			return d
		}, []string{"attachments", "is a symbolic link"}},
		{"locks is a symbolic link", func(t *testing.T, root string) string {
			d := privateDir(t, filepath.Join(root, "state"))
			privateDir(t, filepath.Join(d, "attachments"))
			privateDir(t, filepath.Join(d, "vfs"))
			privateDir(t, filepath.Join(root, "elsewhere"))
			symlink(t, filepath.Join(root, "elsewhere"), filepath.Join(d, "locks"))
			return d
		}, []string{"locks", "is a symbolic link"}},
		{"vfs is a file", func(t *testing.T, root string) string {
			d := privateDir(t, filepath.Join(root, "state"))
			writeFile(t, filepath.Join(d, "vfs"), "x")
			return d
		}, []string{"vfs", "is not a directory"}},
		{"dataDir is a file", func(t *testing.T, root string) string {
			writeFile(t, filepath.Join(root, "state"), "x")
			return filepath.Join(root, "state")
		}, []string{"is not a directory"}},
		{"a shared dataDir of mode 0755", func(t *testing.T, root string) string {
			d := privateDir(t, filepath.Join(root, "state"))
			writeFile(t, filepath.Join(d, "other.db"), "someone else's")
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
			return d
		}, []string{"has mode 0755", "other.db", "chmod 700"}},
		{"a directory above writable by all without the sticky bit", func(t *testing.T, root string) string {
			open := filepath.Join(root, "open")
			if err := os.Mkdir(open, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(open, 0o777); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(open, "state")
		}, []string{"open", "writable by group or others", "sticky"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := privateDir(t, filepath.Join(t.TempDir(), "r"))
			dataDir := tt.setup(t, root)
			before := treesnap.Of(t, root)
			s := cnistore.Store{Dir: dataDir}
			for _, o := range storeOps() {
				err := o.op(s)
				if o.writer || safepath.IsRefusal(err) {
					checkRefused(t, o.name, err, CodeInvalidConfig, append([]string{`"dataDir"`}, tt.mention...)...)
				} else if err != nil && !isNotExist(err) {
					t.Errorf("%s: %v, want a refusal or nothing found", o.name, err)
				}
			}
			if diff := cmp.Diff(before, treesnap.Of(t, root)); diff != "" {
				t.Errorf("the refused operations changed the tree (-before +after):\n%s", diff)
			}
		})
	}
}

// TestStoreRefusesUnsafeStateFiles: in a sound dataDir, a state file, owner record
// or lock that is a symbolic link, a FIFO, a directory or a file with a second
// hard link is refused (never followed, never hung on), naming dataDir and the
// file: by the preflight every verb runs first, and by each operation that would
// use it. Nothing changes: not the link's target, not the other state files.
func TestStoreRefusesUnsafeStateFiles(t *testing.T) {
	attachment := cnistore.AttachmentFile("pod-a", "net1")
	tests := []struct {
		name    string
		sub     string // the planted entry: dataDir/<sub>/<file>
		file    string
		plant   func(t *testing.T, p, outside string)
		refuses []string // operations that must refuse
		mention string
	}{
		{"lock is a symbolic link", "locks", hostileVF + ".lock", plantLink, []string{"Lock"}, "is a symbolic link"},
		{"lock is a dangling symbolic link", "locks", hostileVF + ".lock", plantDanglingLink, []string{"Lock"}, "is a symbolic link"},
		{"lock is a FIFO", "locks", hostileVF + ".lock", plantFIFO, []string{"Lock"}, "is not a regular file"},
		{"owner record is a symbolic link", "vfs", hostileVF + ".json", plantLink, []string{"Lock", "Owner", "SaveAttachment"}, "is a symbolic link"},
		{"owner record is a directory", "vfs", hostileVF + ".json", plantDir, []string{"Lock", "Owner", "SaveAttachment"}, "is"},
		{"attachment state is a symbolic link", "attachments", attachment, plantLink, []string{"LoadAttachment", "SaveAttachment", "Attachments"}, "is a symbolic link"},
		{"attachment state has a second hard link", "attachments", attachment, plantHardLink, []string{"LoadAttachment", "Attachments"}, "hard links"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := privateDir(t, filepath.Join(t.TempDir(), "r"))
			dataDir := filepath.Join(root, "state")
			s := cnistore.Store{Dir: dataDir}
			if err := s.Ensure(); err != nil {
				t.Fatal(err)
			}
			outside := filepath.Join(root, "precious")
			writeFile(t, outside, `{"containerID":"pod-a","ifName":"net1"}`)
			tt.plant(t, filepath.Join(dataDir, tt.sub, tt.file), outside)
			before := treesnap.Of(t, root)
			// Every verb's preflight refuses it, before the verb does anything.
			err := s.Preflight("pod-a", "net1", mustAddr(t, hostileVF))
			checkRefused(t, "preflight", err, CodeInvalidConfig, `"dataDir"`, tt.file, tt.mention)
			// And so does each operation that would use it.
			refuses := map[string]bool{}
			for _, n := range tt.refuses {
				refuses[n] = true
			}
			for _, o := range storeOps() {
				if refuses[o.name] {
					checkRefused(t, o.name, o.op(s), CodeInvalidConfig, `"dataDir"`, tt.file, tt.mention)
				}
			}
			if diff := cmp.Diff(before, treesnap.Of(t, root)); diff != "" {
				t.Errorf("the refused operations changed the tree (-before +after):\n%s", diff)
			}
		})
	}
}

// Planters of TestStoreRefusesUnsafeStateFiles: each puts something at p; outside
// is a file beside the state directory that must stay as it is.
func plantLink(t *testing.T, p, outside string)         { symlink(t, outside, p) }
func plantDanglingLink(t *testing.T, p, outside string) { symlink(t, outside+".new", p) }
func plantDir(t *testing.T, p, _ string)                { privateDir(t, p) }

func plantFIFO(t *testing.T, p, _ string) {
	t.Helper()
	if err := unix.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
}

func plantHardLink(t *testing.T, p, outside string) {
	t.Helper()
	if err := os.Link(outside, p); err != nil {
		t.Fatal(err)
	}
}

// TestStoreKeepsPrivateModes: a fresh dataDir is made 0700 with 0700
// subdirectories, under an existing directory that others may write only because
// it has the sticky bit (as /tmp); state files and locks are 0600; a record
// survives the round trip.
func TestStoreKeepsPrivateModes(t *testing.T) {
	root := t.TempDir()
	sticky := filepath.Join(root, "tmp")
	if err := os.Mkdir(sticky, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(sticky, 0o777|fs.ModeSticky); err != nil {
		t.Fatal(err)
	}
	s := cnistore.Store{Dir: filepath.Join(sticky, "new", "state")}
	if err := s.Ensure(); err != nil {
		t.Fatalf("ensure: %v", err)
	}
	unlock, err := s.Lock(hostileVF, time.Second)
	if err != nil {
		t.Fatalf("Lock: %v", err)
	}
	defer unlock()
	want := &cnistore.Attachment{ContainerID: "pod_a", IfName: "net1", VF: hostileVF, Phase: cnistore.PhaseAdding, Netns: "/run/netns/x"}
	if err := s.SaveAttachment(want); err != nil {
		t.Fatalf("SaveAttachment: %v", err)
	}
	got, err := s.LoadAttachment("pod_a", "net1")
	if err != nil {
		t.Fatalf("LoadAttachment: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("LoadAttachment mismatch (-want +got):\n%s", diff)
	}
	modes := map[string]fs.FileMode{}
	for _, p := range []string{"", "attachments", "vfs", "locks", "attachments/" + cnistore.AttachmentFile("pod_a", "net1"), "vfs/" + hostileVF + ".json", "locks/" + hostileVF + ".lock"} {
		fi, err := os.Lstat(filepath.Join(s.Dir, p))
		if err != nil {
			t.Fatal(err)
		}
		modes[p] = fi.Mode().Perm()
	}
	wantModes := map[string]fs.FileMode{
		"": 0o700, "attachments": 0o700, "vfs": 0o700, "locks": 0o700,
		"attachments/" + cnistore.AttachmentFile("pod_a", "net1"): 0o600, "vfs/" + hostileVF + ".json": 0o600, "locks/" + hostileVF + ".lock": 0o600,
	}
	if diff := cmp.Diff(wantModes, modes); diff != "" {
		t.Errorf("modes (-want +got):\n%s", diff)
	}
	all, err := s.Attachments()
	if err != nil || len(all) != 1 || all[0].ContainerID != "pod_a" {
		t.Errorf("Attachments() = %v, %v; want pod_a's", all, err)
	}
}

// TestStoreTightensItsOwnDirs: a dataDir of the plugin's user that grants others
// access but holds nothing but the plugin's subdirectories (made for it, by mkdir
// -p or a hostPath volume) is tightened to 0700 by the operations that write, as
// are its subdirectories; the reading ones, and the verbs' preflight, change
// nothing.
func TestStoreTightensItsOwnDirs(t *testing.T) {
	for _, withState := range []bool{false, true} {
		t.Run(fmt.Sprintf("with state %v", withState), func(t *testing.T) {
			root := privateDir(t, filepath.Join(t.TempDir(), "r"))
			s := cnistore.Store{Dir: filepath.Join(root, "state")}
			if withState {
				if err := s.Ensure(); err != nil {
					t.Fatal(err)
				}
				if err := s.SaveAttachment(&cnistore.Attachment{ContainerID: "pod-a", IfName: "net1", VF: hostileVF, Phase: cnistore.PhaseAdding}); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(filepath.Join(s.Dir, "vfs"), 0o750); err != nil {
					t.Fatal(err)
				}
			} else if err := os.Mkdir(s.Dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(s.Dir, 0o755); err != nil {
				t.Fatal(err)
			}
			before := treesnap.Of(t, root)
			if err := s.Preflight("pod-a", "net1", mustAddr(t, hostileVF)); err != nil {
				t.Fatalf("preflight: %v", err)
			}
			if _, err := s.LoadAttachment("pod-a", "net1"); err != nil && !isNotExist(err) {
				t.Fatalf("LoadAttachment: %v", err)
			}
			if diff := cmp.Diff(before, treesnap.Of(t, root)); diff != "" {
				t.Errorf("reading changed the tree (-before +after):\n%s", diff)
			}
			if err := s.Ensure(); err != nil {
				t.Fatalf("ensure: %v", err)
			}
			for _, d := range []string{"", "attachments", "vfs", "locks"} {
				if fi, err := os.Stat(filepath.Join(s.Dir, d)); err != nil || fi.Mode().Perm() != 0o700 {
					t.Errorf("%s/%s: mode %v, %v; want 0700", s.Dir, d, fi.Mode().Perm(), err)
				}
			}
		})
	}
}

// TestPrivilegedStoreRefusesForeignDirs: a dataDir, or a directory above it, that
// belongs to another user is refused, and left as it was.
func TestPrivilegedStoreRefusesForeignDirs(t *testing.T) {
	roottest.Require(t)
	const nobody = 65534
	tests := []struct {
		name    string
		setup   func(t *testing.T, root string) string
		mention string
	}{
		{"dataDir of another user", func(t *testing.T, root string) string {
			d := privateDir(t, filepath.Join(root, "state"))
			if err := os.Chown(d, nobody, nobody); err != nil {
				t.Fatal(err)
			}
			return d
		}, "belongs to uid 65534"},
		{"a directory above of another user", func(t *testing.T, root string) string {
			d := privateDir(t, filepath.Join(root, "home"))
			if err := os.Chown(d, nobody, nobody); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(d, "state")
		}, "belongs to uid 65534"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := privateDir(t, filepath.Join(t.TempDir(), "r"))
			s := cnistore.Store{Dir: tt.setup(t, root)}
			before := treesnap.Of(t, root)
			for _, o := range storeOps() {
				if err := o.op(s); o.writer || safepath.IsRefusal(err) {
					checkRefused(t, o.name, err, CodeInvalidConfig, `"dataDir"`, tt.mention)
				}
			}
			if diff := cmp.Diff(before, treesnap.Of(t, root)); diff != "" {
				t.Errorf("the refused operations changed the tree (-before +after):\n%s", diff)
			}
		})
	}
}

// TestOpenLogRefusesUnsafeLogFile: a logFile that is a symbolic link, sits in a
// directory that is one (or below one), is a FIFO or a directory, or has a second
// hard link, is refused with a message naming "logFile", without waiting on the
// FIFO, and without writing anything anywhere.
func TestOpenLogRefusesUnsafeLogFile(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, root string) string // returns logFile
		mention string
	}{
		{"logFile is a symbolic link", func(t *testing.T, root string) string {
			writeFile(t, filepath.Join(root, "precious"), "keep")
			symlink(t, filepath.Join(root, "precious"), filepath.Join(root, "x.log"))
			return filepath.Join(root, "x.log")
		}, "is a symbolic link"},
		{"logFile is a dangling symbolic link", func(t *testing.T, root string) string {
			symlink(t, filepath.Join(root, "created-through-link"), filepath.Join(root, "x.log"))
			return filepath.Join(root, "x.log")
		}, "is a symbolic link"},
		{"its directory is a symbolic link", func(t *testing.T, root string) string {
			privateDir(t, filepath.Join(root, "real"))
			symlink(t, filepath.Join(root, "real"), filepath.Join(root, "logs"))
			return filepath.Join(root, "logs", "x.log")
		}, "is a symbolic link"},
		{"a directory further up is a symbolic link", func(t *testing.T, root string) string {
			privateDir(t, filepath.Join(root, "real", "logs"))
			symlink(t, filepath.Join(root, "real"), filepath.Join(root, "var"))
			return filepath.Join(root, "var", "logs", "x.log")
		}, "is a symbolic link"},
		{"logFile is a FIFO", func(t *testing.T, root string) string {
			p := filepath.Join(root, "x.log")
			if err := unix.Mkfifo(p, 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}, "is not a regular file"},
		{"logFile is a directory", func(t *testing.T, root string) string {
			return privateDir(t, filepath.Join(root, "x.log"))
		}, "is a directory"},
		{"logFile has a second hard link", func(t *testing.T, root string) string {
			writeFile(t, filepath.Join(root, "precious"), "keep")
			if err := os.Link(filepath.Join(root, "precious"), filepath.Join(root, "x.log")); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(root, "x.log")
		}, "hard links"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := privateDir(t, filepath.Join(t.TempDir(), "r"))
			logFile := tt.setup(t, root)
			before := treesnap.Of(t, root)
			var stderr strings.Builder
			_, closeLog, err := openLog(&NetConf{LogFile: logFile}, &stderr)
			if err == nil {
				closeLog()
			}
			checkRefused(t, "openLog", err, CodeInvalidConfig, `"logFile"`, tt.mention)
			if stderr.Len() != 0 {
				t.Errorf("stderr: %q", stderr.String())
			}
			if diff := cmp.Diff(before, treesnap.Of(t, root)); diff != "" {
				t.Errorf("the refused open changed the tree (-before +after):\n%s", diff)
			}
		})
	}
}

// TestOpenLogAppends: a sound logFile is created 0600 and appended to; one whose
// directory is missing is no refusal (nothing hostile about it): the log goes to
// stderr with a warning, and nothing is created.
func TestOpenLogAppends(t *testing.T) {
	root := privateDir(t, filepath.Join(t.TempDir(), "r"))
	logFile := filepath.Join(root, "chelsio-sriov.log")
	for i := range 2 {
		log, closeLog, err := openLog(&NetConf{LogFile: logFile}, io.Discard)
		if err != nil {
			t.Fatalf("openLog: %v", err)
		}
		log.Info("line", "n", i)
		closeLog()
	}
	b, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "msg=line"); n != 2 {
		t.Errorf("log has %d lines, want 2:\n%s", n, b)
	}
	if fi, err := os.Stat(logFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("log file mode %v, %v; want 0600", fi.Mode(), err)
	}

	before := treesnap.Of(t, root)
	var stderr strings.Builder
	log, closeLog, err := openLog(&NetConf{LogFile: filepath.Join(root, "missing", "x.log")}, &stderr)
	if err != nil {
		t.Fatalf("openLog with a missing directory: %v, want stderr", err)
	}
	log.Info("to stderr")
	closeLog()
	if !strings.Contains(stderr.String(), "logging to stderr") || !strings.Contains(stderr.String(), "to stderr") {
		t.Errorf("stderr %q: want the warning and the line", stderr.String())
	}
	if diff := cmp.Diff(before, treesnap.Of(t, root)); diff != "" {
		t.Errorf("the fallback changed the tree (-before +after):\n%s", diff)
	}
}

// TestPrivilegedOpenLogRefusesPlantedFile: a logFile of another user in a
// directory that others can write (anyone could have made it) is refused; in a
// directory only root writes, the administrator's chown is respected.
func TestPrivilegedOpenLogRefusesPlantedFile(t *testing.T) {
	roottest.Require(t)
	const nobody = 65534
	root := privateDir(t, filepath.Join(t.TempDir(), "r"))
	shared := filepath.Join(root, "shared")
	if err := os.Mkdir(shared, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, 0o777|fs.ModeSticky); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{shared, root} {
		p := filepath.Join(dir, "x.log")
		writeFile(t, p, "")
		if err := os.Chown(p, nobody, nobody); err != nil {
			t.Fatal(err)
		}
	}
	before := treesnap.Of(t, root)
	_, _, err := openLog(&NetConf{LogFile: filepath.Join(shared, "x.log")}, io.Discard)
	checkRefused(t, "openLog in a shared directory", err, CodeInvalidConfig, `"logFile"`, "belongs to uid 65534")
	if diff := cmp.Diff(before, treesnap.Of(t, root)); diff != "" {
		t.Errorf("the refused open changed the tree (-before +after):\n%s", diff)
	}
	_, closeLog, err := openLog(&NetConf{LogFile: filepath.Join(root, "x.log")}, io.Discard)
	if err != nil {
		t.Errorf("openLog of a chowned file in root's directory: %v", err)
	} else {
		closeLog()
	}
}

// TestCheckKeyRefusesHostileInput: CNI_CONTAINERID and CNI_IFNAME values that
// could leave the state directory, make a file name the filesystem refuses, or an
// interface name the kernel would change, are refused with code 4 and a message
// naming the variable and the fault; the longest and oddest valid values pass.
func TestCheckKeyRefusesHostileInput(t *testing.T) {
	long := strings.Repeat("a", 4096)
	tests := []struct {
		name, id, ifName string
		mention          string // "" = accepted
	}{
		{"traversal in the ID", "../../etc/x", "net1", "CNI_CONTAINERID"},
		{"absolute ID", "/etc/x", "net1", "CNI_CONTAINERID"},
		{"slash in the ID", "pod/../x", "net1", "CNI_CONTAINERID"},
		{"NUL in the ID", "pod\x00x", "net1", "CNI_CONTAINERID"},
		{"control character in the ID", "pod\x1bx", "net1", "control character"},
		{"4 KiB ID", long, "net1", "4096 bytes long"},
		{"ID one byte too long", strings.Repeat("a", cnistore.MaxContainerID+1), "net1", "235 bytes long"},
		{"empty ID", "", "net1", "CNI_CONTAINERID"},
		{"traversal as ifname", "pod", "..", "CNI_IFNAME"},
		{"slash in the ifname", "pod", "net1/../x", "CNI_IFNAME"},
		{"ifname of 16 bytes", "pod", "net1234567890123", "16 bytes long"},
		{"ifname of 4 KiB", "pod", long, "4096 bytes long"},
		{"multi-byte ifname over 15 bytes", "pod", "сеть-сеть", "17 bytes long"},
		{"NUL in the ifname", "pod", "net\x001", "control character"},
		{"control character in the ifname", "pod", "net\x01", "control character"},
		{"DEL in the ifname", "pod", "net\x7f", "control character"},
		{"C1 control in the ifname", "pod", "net\u0085", "control character"},
		{"no-break space in the ifname", "pod", "net\u00a01", "white space"},
		{"invalid UTF-8 in the ifname", "pod", "net\xff", "UTF-8"},
		{"percent in the ifname", "pod", "net%d", "'%'"},
		{"colon in the ifname", "pod", "net:1", "CNI_IFNAME"},
		{"empty ifname", "pod", "", "CNI_IFNAME"},
		{"the longest ID", strings.Repeat("a", cnistore.MaxContainerID), "net1", ""},
		{"a 15-byte ifname", "0123456789abcdef", "net123456789012", ""},
		{"ID with underscore and dots", "k8s_POD.x-1", "vlan_100", ""},
		{"multi-byte ifname", "pod", "réseau", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := cnistore.CheckKey(tt.id, tt.ifName)
			if tt.mention == "" {
				if err != nil {
					t.Fatalf("cnistore.CheckKey(%q, %q) = %v, want nil", tt.id, tt.ifName, err)
				}
				return
			}
			checkRefused(t, "checkKey", err, CodeInvalidEnv, tt.mention)
			if len(err.Error()) > 200 {
				t.Errorf("message of %d bytes: %q", len(err.Error()), err)
			}
		})
	}
}

// TestAttachmentNamesDoNotCollide: container IDs and ifnames may both hold '_'; two
// attachments never share a state file.
func TestAttachmentNamesDoNotCollide(t *testing.T) {
	keys := [][2]string{{"a_b", "c"}, {"a", "b_c"}, {"a_b_c", "d"}, {"a", "b_c_d"}, {"a_b", "c_d"}, {"a", "b"}, {"a_", "b"}, {"a", "_b"}}
	seen := map[string][2]string{}
	for _, k := range keys {
		if err := cnistore.CheckKey(k[0], k[1]); err != nil {
			t.Fatal(err)
		}
		n := cnistore.AttachmentFile(k[0], k[1])
		if prev, ok := seen[n]; ok {
			t.Errorf("%q and %q share the state file %s", prev, k, n)
		}
		seen[n] = k
	}
	// Runtimes' IDs have no '_': their names stay as they always were.
	if n := cnistore.AttachmentFile("4f3a9c", "net1"); n != "4f3a9c_net1.json" {
		t.Errorf("attachmentName = %q, want 4f3a9c_net1.json", n)
	}
}

// TestPluginRefusesBeforeTouchingFiles runs the verbs with bad CNI_CONTAINERID or
// CNI_IFNAME, a hostile logFile, or a hostile dataDir or state file, all under the
// test's directory: each verb is refused naming the culprit, and nothing under the
// directory changes: no log file, no state directory, no lock, nothing written
// through a link.
func TestPluginRefusesBeforeTouchingFiles(t *testing.T) {
	keyed := []string{"ADD", "DEL", "CHECK"}
	noStatus := []string{"ADD", "DEL", "CHECK", "GC"} // STATUS: see TestStatusRefusesUnsafeDataDir
	tests := []struct {
		name, id, ifName string
		// plant makes the hostile layout; it returns the NetConf's dataDir and logFile.
		plant   func(t *testing.T, root string) (dataDir, logFile string)
		verbs   []string
		code    uint
		mention []string
	}{
		{"ifname with a control character", "pod-a", "net\x01", nil, keyed, CodeInvalidEnv, []string{"CNI_IFNAME", "control character"}},
		{"ifname over 15 bytes", "pod-a", "net1234567890123", nil, keyed, CodeInvalidEnv, []string{"CNI_IFNAME", "16 bytes"}},
		{"ifname with a slash", "pod-a", "../x", nil, keyed, CodeInvalidEnv, []string{"CNI_IFNAME"}},
		{"4 KiB container ID", strings.Repeat("a", 4096), "net1", nil, keyed, CodeInvalidEnv, []string{"CNI_CONTAINERID", "4096 bytes"}},
		{"logFile through a symbolic link", "pod-a", "net1", func(t *testing.T, root string) (string, string) {
			writeFile(t, filepath.Join(root, "precious"), "keep")
			symlink(t, filepath.Join(root, "precious"), filepath.Join(root, "x.log"))
			return filepath.Join(root, "state"), filepath.Join(root, "x.log")
		}, []string{"ADD", "CHECK", "STATUS"}, CodeInvalidConfig, []string{`"logFile"`, "symbolic link"}}, // DEL, GC: TestDelFreesDespiteRefusedLogFile
		{"dataDir is a symbolic link", "pod-a", "net1", func(t *testing.T, root string) (string, string) {
			privateDir(t, filepath.Join(root, "real"))
			symlink(t, filepath.Join(root, "real"), filepath.Join(root, "state"))
			return filepath.Join(root, "state"), filepath.Join(root, "x.log")
		}, noStatus, CodeInvalidConfig, []string{`"dataDir"`, "symbolic link"}},
		{"a shared dataDir of mode 0755", "pod-a", "net1", func(t *testing.T, root string) (string, string) {
			d := privateDir(t, filepath.Join(root, "state"))
			writeFile(t, filepath.Join(d, "other.db"), "someone else's")
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
			return d, filepath.Join(root, "x.log")
		}, noStatus, CodeInvalidConfig, []string{`"dataDir"`, "0755"}},
		{"the attachment's state file is a symbolic link", "pod-a", "net1", func(t *testing.T, root string) (string, string) {
			d := filepath.Join(root, "state")
			if err := (cnistore.Store{Dir: d}).Ensure(); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(root, "precious"), `{"containerID":"pod-a","ifName":"net1"}`)
			symlink(t, filepath.Join(root, "precious"), filepath.Join(d, "attachments", cnistore.AttachmentFile("pod-a", "net1")))
			return d, filepath.Join(root, "x.log")
		}, keyed, CodeInvalidConfig, []string{`"dataDir"`, cnistore.AttachmentFile("pod-a", "net1"), "symbolic link"}},
		{"the VF's lock is a symbolic link", "pod-a", "net1", func(t *testing.T, root string) (string, string) {
			d := filepath.Join(root, "state")
			if err := (cnistore.Store{Dir: d}).Ensure(); err != nil {
				t.Fatal(err)
			}
			symlink(t, filepath.Join(root, "precious"), filepath.Join(d, "locks", hostileVF+".lock"))
			return d, filepath.Join(root, "x.log")
		}, noStatus, CodeInvalidConfig, []string{`"dataDir"`, hostileVF + ".lock", "symbolic link"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := privateDir(t, filepath.Join(t.TempDir(), "r"))
			dataDir, logFile := filepath.Join(root, "state"), filepath.Join(root, "x.log")
			if tt.plant != nil {
				dataDir, logFile = tt.plant(t, root)
			}
			conf := fmt.Sprintf(`{"cniVersion":"1.1.0","name":"n","type":"chelsio-sriov","deviceID":%q,"dataDir":%q,"logFile":%q,"prevResult":{"cniVersion":"1.1.0"}}`,
				hostileVF, dataDir, logFile)
			before := treesnap.Of(t, root)
			var stderr strings.Builder
			p := newAllowing(t, root, &stderr)
			for _, verb := range tt.verbs {
				args := &skel.CmdArgs{ContainerID: tt.id, IfName: tt.ifName, Netns: "/run/netns/none", StdinData: []byte(conf), Path: root}
				var err error
				switch verb {
				case "ADD":
					_, err = p.Add(args)
				case "DEL":
					err = p.Del(args)
				case "CHECK":
					err = p.Check(args)
				case "STATUS":
					err = p.Status(args)
				case "GC":
					err = p.GC(args)
				}
				checkRefused(t, verb, err, tt.code, tt.mention...)
			}
			if diff := cmp.Diff(before, treesnap.Of(t, root)); diff != "" {
				t.Errorf("the refused verbs changed the tree (-before +after):\n%s", diff)
			}
			if stderr.Len() != 0 {
				t.Logf("stderr: %s", stderr.String())
			}
		})
	}
}

// TestDelFreesDespiteRefusedLogFile: DEL and GC need no log file to free what an
// attachment holds: with a logFile they refuse (a symbolic link) they log to
// stderr and go on; the link's target is untouched.
func TestDelFreesDespiteRefusedLogFile(t *testing.T) {
	root := privateDir(t, filepath.Join(t.TempDir(), "r"))
	writeFile(t, filepath.Join(root, "precious"), "keep")
	symlink(t, filepath.Join(root, "precious"), filepath.Join(root, "x.log"))
	dataDir := filepath.Join(root, "state")
	st := cnistore.Store{Dir: dataDir}
	if err := st.Ensure(); err != nil {
		t.Fatal(err)
	}
	// An attachment without a VF or IPAM: its release is the state's removal.
	if err := st.SaveAttachment(&cnistore.Attachment{ContainerID: "pod-a", IfName: "net1", Network: "n", Phase: cnistore.PhaseAttached}); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`{"cniVersion":"1.1.0","name":"n","type":"chelsio-sriov","dataDir":%q,"logFile":%q}`, dataDir, filepath.Join(root, "x.log"))
	for _, verb := range []string{"DEL", "GC"} {
		var stderr strings.Builder
		p := newAllowing(t, root, &stderr)
		args := &skel.CmdArgs{ContainerID: "pod-a", IfName: "net1", StdinData: []byte(conf), Path: root}
		var err error
		if verb == "DEL" {
			err = p.Del(args)
		} else {
			err = p.GC(args)
		}
		if err != nil {
			t.Errorf("%s: %v", verb, err)
		}
		if !strings.Contains(stderr.String(), "logFile refused; logging to stderr") {
			t.Errorf("%s: stderr %q, want the warning about the refused logFile", verb, stderr.String())
		}
	}
	if _, err := st.LoadAttachment("pod-a", "net1"); !isNotExist(err) {
		t.Errorf("the attachment's state after DEL: %v, want it gone", err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "precious")); err != nil || string(b) != "keep" {
		t.Errorf("the log link's target: %q, %v; want it untouched", b, err)
	}
}

// TestStatusRefusesUnsafeDataDir: STATUS answers "not ready" (code 50) for a
// dataDir that ADD would refuse, naming it and the fault, and creates nothing.
func TestStatusRefusesUnsafeDataDir(t *testing.T) {
	root := privateDir(t, filepath.Join(t.TempDir(), "r"))
	privateDir(t, filepath.Join(root, "real"))
	symlink(t, filepath.Join(root, "real"), filepath.Join(root, "state"))
	conf := fmt.Sprintf(`{"cniVersion":"1.1.0","name":"n","type":"chelsio-sriov","dataDir":%q}`, filepath.Join(root, "state"))
	before := treesnap.Of(t, root)
	err := newAllowing(t, root, io.Discard).Status(&skel.CmdArgs{StdinData: []byte(conf)})
	checkRefused(t, "STATUS", err, CodeNotAvailable, `"dataDir"`, "symbolic link")
	if diff := cmp.Diff(before, treesnap.Of(t, root)); diff != "" {
		t.Errorf("STATUS changed the tree (-before +after):\n%s", diff)
	}
}

func mustAddr(t *testing.T, s string) vf.PCIAddr {
	t.Helper()
	a, err := vf.ParsePCIAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// newAllowing is New on an empty sysfs root (hostileRoot), with dir allowed for
// logFile and dataDir as the node's administrator would allow it.
func newAllowing(t *testing.T, dir string, stderr io.Writer) *Plugin {
	p := New(hostileRoot(t), stderr)
	p.LogDirs = append(p.LogDirs, dir)
	p.DataDirs = append(p.DataDirs, dir)
	return p
}

// hostileRoot is an empty sysfs root: a verb that got as far as reading it would
// fail differently from the refusals expected.
func hostileRoot(t *testing.T) sysfs.Root {
	return sysfs.Root(t.TempDir())
}

// TestLoadRefusesHostileValues: deviceID, pciBusID and runtimeConfig.deviceID,
// dataDir, logFile, the network name and the IPAM type with traversal, NUL and
// other control bytes, 4 KiB values, or the wrong kind of path, are refused by
// Load (which touches nothing) with code 7 and one short line naming the key.
func TestLoadRefusesHostileValues(t *testing.T) {
	const base = `"cniVersion":"1.0.0","name":"n","type":"chelsio-sriov"`
	kib4 := "/" + strings.Repeat("a", 4095)
	tests := []struct {
		name, extra string
		mention     []string
	}{
		{"deviceID traversal", `"deviceID":"../../../etc/passwd"`, []string{`"deviceID"`, "invalid PCI address"}},
		{"deviceID absolute path", `"deviceID":"/sys/bus/pci/devices/0000:81:01.0"`, []string{`"deviceID"`}},
		{"deviceID with NUL", `"deviceID":"0000:81:01.0\u0000/x"`, []string{`"deviceID"`}},
		{"deviceID with a newline", `"deviceID":"0000:81:01.0\nX"`, []string{`"deviceID"`}},
		{"deviceID of 4 KiB", `"deviceID":"` + strings.Repeat("0", 4096) + `"`, []string{`"deviceID"`}},
		{"deviceID of the host bridge", `"deviceID":"0000:00:00.0"`, []string{`"deviceID"`, "host bridge"}},
		{"bad pciBusID behind a good deviceID", `"deviceID":"0000:81:01.0","pciBusID":"../0000:81:01.0"`, []string{`"pciBusID"`}},
		{"bad runtimeConfig.deviceID behind a good deviceID", `"deviceID":"0000:81:01.0","runtimeConfig":{"deviceID":"0000:81:01.0/.."}}`, []string{`"runtimeConfig.deviceID"`}},
		{"runtimeConfig.deviceID with a control character", `"runtimeConfig":{"deviceID":"0000:81:01.0\u001b[2J"}`, []string{`"runtimeConfig.deviceID"`}},
		{"dataDir relative", `"dataDir":"var/lib/x"`, []string{`"dataDir"`, "not an absolute path"}},
		{"dataDir with ..", `"dataDir":"/var/lib/cni/../../../etc"`, []string{`"dataDir"`, "not a clean path"}},
		{"dataDir ending in ..", `"dataDir":"/var/lib/.."`, []string{`"dataDir"`, "not a clean path"}},
		{"dataDir with NUL", `"dataDir":"/var/lib/x\u0000y"`, []string{`"dataDir"`, "NUL"}},
		{"dataDir with a newline", `"dataDir":"/var/lib/x\ny"`, []string{`"dataDir"`, "control character"}},
		{"dataDir with an escape", `"dataDir":"/var/lib/\u001b[31m"`, []string{`"dataDir"`, "control character"}},
		{"dataDir of 4 KiB", `"dataDir":"` + kib4 + `"`, []string{`"dataDir"`, "longer than 512"}},
		{"dataDir component over 255 bytes", `"dataDir":"/var/` + strings.Repeat("b", 256) + `"`, []string{`"dataDir"`, "256 bytes"}},
		{"dataDir the root directory", `"dataDir":"/"`, []string{`"dataDir"`, "root directory"}},
		{"logFile relative", `"logFile":"../x.log"`, []string{`"logFile"`, "not an absolute path"}},
		{"logFile with ..", `"logFile":"/var/log/../../etc/shadow"`, []string{`"logFile"`, "not a clean path"}},
		{"logFile with NUL", `"logFile":"/var/log/x\u0000"`, []string{`"logFile"`, "NUL"}},
		{"logFile with a carriage return", `"logFile":"/var/log/x\r.log"`, []string{`"logFile"`, "control character"}},
		{"logFile of 4 KiB", `"logFile":"` + kib4 + `"`, []string{`"logFile"`, "longer than 512"}},
		{"logFile a directory", `"logFile":"/var/log/"`, []string{`"logFile"`, "names a directory"}},
		{"logFile the root directory", `"logFile":"/"`, []string{`"logFile"`, "names a directory"}},
		{"network name traversal", `"name":"../../etc"`, []string{`"name"`, "not a network name"}},
		{"ipam type ..", `"ipam":{"type":".."}`, []string{`"ipam"`}},
		{"ipam type with a control character", `"ipam":{"type":"host-local\u0007"}`, []string{`"ipam"`, "control character"}},
		{"ipam type of 4 KiB", `"ipam":{"type":"` + strings.Repeat("h", 4096) + `"}`, []string{`"ipam"`, "4096 bytes"}},
		{"unknown key of 4 KiB", `"` + strings.Repeat("k", 4096) + `":1`, []string{"unknown key"}},
		{"vlanProto of 4 KiB", `"vlanProto":"` + strings.Repeat("q", 4096) + `"`, []string{`"vlanProto"`}},
		{"mac with a newline", `"mac":"0a:58:c6:33:64:01\nX"`, []string{`"mac"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf := `{` + base + `,` + tt.extra + `}`
			if strings.HasPrefix(tt.extra, `"name"`) {
				conf = `{"cniVersion":"1.0.0","type":"chelsio-sriov",` + tt.extra + `}`
			}
			c, err := Load([]byte(conf), "")
			if err == nil {
				t.Fatalf("Load() = %+v, want an error", c)
			}
			checkRefused(t, "Load", err, CodeInvalidConfig, tt.mention...)
			if n := len(err.Error()); n > 300 {
				t.Errorf("message of %d bytes: %.120q…", n, err.Error())
			}
		})
	}
}

// FuzzCheckKey: checkKey must accept or refuse any CNI_CONTAINERID and CNI_IFNAME
// without panicking. A refusal is code 4, one short line naming the variable. An
// accepted pair makes a state file name that is one path component, fits a file
// name, holds no control character, and decodes back to the same pair (two
// attachments never share a file).
func FuzzCheckKey(f *testing.F) {
	for _, k := range [][2]string{
		{"4f3a9c0e8d7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f", "net1"},
		{"a_b", "c"},
		{"a", "b_c"},
		{"pod", "net%d"},
		{"pod", ".."},
		{"..", "net1"},
		{"pod", "net\x01"},
		{"pod\x00", "net1"},
		{"pod", "сеть-сеть"},
		{"pod", "réseau"},
		{strings.Repeat("a", cnistore.MaxContainerID), "net123456789012"},
	} {
		f.Add(k[0], k[1])
	}
	f.Fuzz(func(t *testing.T, id, ifName string) {
		err := cnistore.CheckKey(id, ifName)
		if err != nil {
			ce := AsCNIError(err)
			if ce.Code != CodeInvalidEnv || strings.ContainsAny(ce.Msg, "\r\n") || len(ce.Msg) > 200 ||
				(!strings.HasPrefix(ce.Msg, "CNI_CONTAINERID ") && !strings.HasPrefix(ce.Msg, "CNI_IFNAME ")) {
				t.Fatalf("cnistore.CheckKey(%q, %q) = code %d %q: want code 4, one short line naming the variable", id, ifName, ce.Code, ce.Msg)
			}
			return
		}
		name := cnistore.AttachmentFile(id, ifName)
		if len(name) > 255 || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." ||
			strings.IndexFunc(name, unicode.IsControl) >= 0 || !utf8.ValidString(name) {
			t.Fatalf("cnistore.CheckKey(%q, %q) accepted, but the state file name %q is not a safe file name", id, ifName, name)
		}
		if len(ifName) > cnistore.MaxIfName || strings.Contains(ifName, "%") {
			t.Fatalf("checkKey accepted ifname %q, which the kernel would refuse or rename", ifName)
		}
		// Decode the name: the container ID ends at the first ':' when there is one
		// (IDs with '_'), else at the first '_'.
		stem := strings.TrimSuffix(name, ".json")
		sep := "_"
		if strings.Contains(stem, ":") {
			sep = ":"
		}
		gotID, gotIf, _ := strings.Cut(stem, sep)
		if gotID != id || gotIf != ifName {
			t.Fatalf("state file %q of (%q, %q) decodes to (%q, %q): another attachment could share it", name, id, ifName, gotID, gotIf)
		}
	})
}
