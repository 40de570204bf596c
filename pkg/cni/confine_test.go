package cni

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/google/go-cmp/cmp"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/treesnap"
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
		if err := (Store{Dir: dataDir}).ensure(); err != nil {
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
	if err := (Store{Dir: dataDir}).ensure(); err != nil {
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
