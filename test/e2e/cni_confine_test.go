package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/google/go-cmp/cmp"

	"github.com/chelsio-k8s/chelsio-sriov/internal/roottest"
	"github.com/chelsio-k8s/chelsio-sriov/internal/treesnap"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/cni"
)

// confineVF is the VF these tests attach.
const confineVF = "0000:81:01.0"

// utsRun is libcni for worker w whose chelsio-sriov runs in a UTS namespace of its
// own (unshare --uts), with the node's settings env (which replace those TestMain
// gives every plugin; "" is unset: the defaults alone). After the plugin exits,
// the script writes that namespace's host name to the file hostname returns, so
// that a test can see what the plugin did to it without the machine's name being
// at stake.
func (e *cniEnv) utsRun(t *testing.T, w int, env map[string]string) (c *libcni.CNIConfig, hostname func() string) {
	t.Helper()
	unshare := roottest.Tool(t, "unshare", "util-linux")
	d := t.TempDir()
	out := filepath.Join(d, "hostname-after")
	var b strings.Builder
	b.WriteString("#!/bin/sh\n")
	for _, k := range []string{cni.EnvLogDirs, cni.EnvDataDirs} {
		fmt.Fprintf(&b, "%s='%s'\nexport %s\n", k, env[k], k)
	}
	fmt.Fprintf(&b, "%s emulate exec --name %s --run-dir %s --worker %d -- %s \"$@\"\nrc=$?\ncat /proc/sys/kernel/hostname >%s\nexit $rc\n",
		e.node.cvf, e.node.name, e.node.runDir, w, bin(t, "chelsio-sriov"), out)
	inner := filepath.Join(d, "in-uts")
	if err := os.WriteFile(inner, []byte(b.String()), 0o755); err != nil {
		t.Fatal(err)
	}
	wrap := filepath.Join(d, "cni")
	mkdir0700(t, wrap)
	script := fmt.Sprintf("#!/bin/sh\nexec %s --uts -- %s \"$@\"\n", unshare, inner)
	if err := os.WriteFile(filepath.Join(wrap, "chelsio-sriov"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return libcni.NewCNIConfigWithCacheDir([]string{wrap, binDir}, e.cacheDir, nil), func() string {
		t.Helper()
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatalf("the plugin's UTS namespace left no host name: %v", err)
		}
		return strings.TrimSpace(string(b))
	}
}

// machineHostname is the machine's host name, as the test (outside the plugin's
// namespace) sees it.
func machineHostname(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/kernel/hostname")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestPrivilegedCNIConfinesLogFile: the real binary, through libcni, refuses a
// logFile that a NetworkAttachmentDefinition points at the kernel's host name
// (/proc/sys/kernel/hostname) or at a root-owned passwd-like file outside the log
// directories: code 7, one line naming logFile, the path and why, nothing written.
// The plugin runs in a UTS namespace of its own, so that even a plugin that wrote
// there would change only that namespace's name, which the test reads back: it
// must still be the machine's. The host name stays refused where the node's
// setting allows /proc/sys/kernel (procfs is a pseudo filesystem), and the
// passwd-like file stays unchanged byte for byte, through ADD and the DEL that
// follows it (which logs to stderr instead).
func TestPrivilegedCNIConfinesLogFile(t *testing.T) {
	roottest.Require(t)
	node := upNode(t, "--vfs", "2")
	host := machineHostname(t)
	const hostnameSysctl = "/proc/sys/kernel/hostname"
	hostnameFile := func(*testing.T) string { return hostnameSysctl }

	tests := []struct {
		name    string
		logFile func(t *testing.T) string
		env     map[string]string // the node's setting; TestMain's temporary directory is not allowed
		mention []string
	}{
		{"the host name", hostnameFile, nil, []string{`"logFile"`, hostnameSysctl, "/var/log", cni.EnvLogDirs}},
		{"the host name, /proc/sys/kernel allowed by the node", hostnameFile, map[string]string{cni.EnvLogDirs: "/proc/sys/kernel"}, []string{`"logFile"`, hostnameSysctl, `"/proc" is on proc,`}},
		{"a root-owned passwd file outside the log directories", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "passwd")
			if err := os.WriteFile(p, []byte("root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			return p
		}, nil, []string{`"logFile"`, "passwd", "/var/log", cni.EnvLogDirs}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newCNIEnv(t, node)
			env := map[string]string{cni.EnvDataDirs: os.TempDir()}
			for k, v := range tt.env {
				env[k] = v
			}
			runtime, hostname := e.utsRun(t, 1, env)
			logFile := tt.logFile(t)
			// A file of the test's: it must not change; the host name is read back
			// from the plugin's namespace instead.
			mine := !strings.HasPrefix(logFile, "/proc/")
			var before []byte
			var dirBefore map[string]string
			if mine {
				var err error
				if before, err = os.ReadFile(logFile); err != nil {
					t.Fatal(err)
				}
				dirBefore = treesnap.Of(t, filepath.Dir(logFile))
			}
			vfBefore := e.homes(t, 1)
			conf := e.conf(1, confineVF, map[string]any{"cniVersion": "1.0.0", "logFile": logFile, "logLevel": "debug"})
			pod := newPod(t)
			r, err := runtime.AddNetwork(ctx30(t), e.plugin(conf), e.rt("pod-confine", pod))
			if err == nil {
				t.Errorf("ADD succeeded: %v", r)
			} else {
				checkRefusal(t, err, types.ErrInvalidNetworkConfig, tt.mention)
			}
			if got := hostname(); got != host {
				t.Errorf("the host name in the plugin's UTS namespace is %q after ADD, want %q", got, host)
			}
			if err := runtime.DelNetwork(ctx30(t), e.plugin(conf), e.rt("pod-confine", pod)); err != nil {
				t.Errorf("DEL: %v", err)
			}
			if got := hostname(); got != host {
				t.Errorf("the host name in the plugin's UTS namespace is %q after DEL, want %q", got, host)
			}
			if got := machineHostname(t); got != host {
				t.Errorf("the machine's host name is %q, want %q", got, host)
			}
			if mine {
				after, err := os.ReadFile(logFile)
				if err != nil || !bytes.Equal(before, after) {
					t.Errorf("%s after ADD and DEL: %q, %v; want it unchanged: %q", logFile, after, err, before)
				}
				if diff := cmp.Diff(dirBefore, treesnap.Of(t, filepath.Dir(logFile))); diff != "" {
					t.Errorf("the log file's directory changed (-before +after):\n%s", diff)
				}
			}
			assertNothingHeld(t, e, pod, vfBefore)
		})
	}
}

// TestPrivilegedCNIRefusesBadNodeSetting: a node setting with an entry that is
// not an absolute, clean directory fails every verb with code 4, naming the
// variable and the entry, rather than being half used.
func TestPrivilegedCNIRefusesBadNodeSetting(t *testing.T) {
	roottest.Require(t)
	node := upNode(t, "--vfs", "2")
	e := newCNIEnv(t, node)
	runtime, _ := e.utsRun(t, 1, map[string]string{cni.EnvLogDirs: "/var/log:log", cni.EnvDataDirs: os.TempDir()})
	conf := e.conf(1, confineVF, map[string]any{"cniVersion": "1.0.0"})
	pod := newPod(t)
	_, err := runtime.AddNetwork(ctx30(t), e.plugin(conf), e.rt("pod-confine", pod))
	if err == nil {
		t.Fatal("ADD succeeded")
	}
	checkRefusal(t, err, types.ErrInvalidEnvironmentVariables, []string{cni.EnvLogDirs, `"log"`, "absolute"})
	err = runtime.DelNetwork(ctx30(t), e.plugin(conf), e.rt("pod-confine", pod))
	if err == nil {
		t.Fatal("DEL succeeded")
	}
	checkRefusal(t, err, types.ErrInvalidEnvironmentVariables, []string{cni.EnvLogDirs})
	if _, ok := podIfaceOf(t, pod, "net1"); ok {
		t.Error("the pod has a net1")
	}
}

// TestPrivilegedCNIDelMakesNoDirs: DEL, with the real binary through libcni, makes
// no directory and changes no directory's mode. A DEL whose dataDir does not
// exist (nothing is recorded there) does what needs no state, freeing the lease,
// and leaves the dataDir missing; a DEL, GC and
// STATUS with an existing dataDir of mode 0755 leave it 0755, with nothing made in
// it.
func TestPrivilegedCNIDelMakesNoDirs(t *testing.T) {
	roottest.Require(t)
	node := upNode(t, "--vfs", "2")

	t.Run("missing dataDir", func(t *testing.T) {
		e := newCNIEnv(t, node)
		home := e.home(t, 1, confineVF)
		conf := e.conf(1, confineVF, map[string]any{"cniVersion": "1.0.0"})
		pod := newPod(t)
		if _, err := e.add(1, "pod-confine", pod, conf); err != nil {
			t.Fatalf("ADD: %v", err)
		}
		// The same attachment's DEL with a dataDir that does not exist (a dataDir
		// removed since, say): only what needs no state can be done.
		parent := t.TempDir()
		missing := e.conf(1, confineVF, map[string]any{"cniVersion": "1.0.0", "dataDir": filepath.Join(parent, "gone", "state")})
		before := treesnap.Of(t, parent)
		if err := e.del(1, "pod-confine", pod, missing); err != nil {
			t.Fatalf("DEL with a missing dataDir: %v", err)
		}
		if diff := cmp.Diff(before, treesnap.Of(t, parent)); diff != "" {
			t.Errorf("DEL made directories (-before +after):\n%s", diff)
		}
		// Without a record, only the kernel's word tells which link is the VF, and
		// of an emulated VF (a veth) it names no device: DEL leaves it in the pod
		// rather than take a link by a name the pod could have set.
		if _, ok := podIfaceOf(t, pod, "net1"); !ok {
			t.Error("net1 left the pod: DEL took a link it could not identify")
		}
		if l := e.leases(); len(l) != 0 {
			t.Errorf("leases left: %v", l)
		}
		// The DEL with the attachment's own dataDir restores the VF as it was.
		if err := e.del(1, "pod-confine", pod, conf); err != nil {
			t.Fatalf("DEL: %v", err)
		}
		e.waitHome(t, 1, confineVF, home, false)
		if f := e.stateFiles(t, 1); len(f) != 0 {
			t.Errorf("state files left: %v", f)
		}
	})

	t.Run("dataDir of mode 0755", func(t *testing.T) {
		e := newCNIEnv(t, node)
		loose := filepath.Join(t.TempDir(), "state")
		if err := os.Mkdir(loose, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(loose, 0o755); err != nil {
			t.Fatal(err)
		}
		conf := e.conf(1, confineVF, map[string]any{"cniVersion": "1.1.0", "dataDir": loose})
		before := treesnap.Of(t, loose)
		pod := newPod(t)
		if err := e.del(1, "pod-confine", pod, conf); err != nil {
			t.Errorf("DEL: %v", err)
		}
		list := e.confList(t, "1.1.0", conf)
		if err := e.cni(1).GCNetworkList(ctx30(t), list, &libcni.GCArgs{}); err != nil {
			t.Errorf("GC: %v", err)
		}
		if err := e.cni(1).GetStatusNetworkList(ctx30(t), list); err != nil {
			t.Errorf("STATUS: %v", err)
		}
		if diff := cmp.Diff(before, treesnap.Of(t, loose)); diff != "" {
			t.Errorf("DEL, GC and STATUS changed the dataDir (-before +after):\n%s", diff)
		}
	})
}
