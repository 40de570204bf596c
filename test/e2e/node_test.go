package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chelsio-k8s/chelsio-sriov/internal/roottest"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/emulate/sysfstree"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/node"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/sysfs"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// healthyProc writes the /proc files doctor reads, as the reference procedure leaves
// them: swap off, br_netfilter and overlay loaded, the two sysctls on.
func healthyProc(t *testing.T) string {
	t.Helper()
	proc := filepath.Join(t.TempDir(), "proc")
	for p, content := range map[string]string{
		"swaps":                                  "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n",
		"modules":                                "br_netfilter 32768 0 - Live 0x0000000000000000\noverlay 212992 0 - Live 0x0000000000000000\n",
		"sys/net/bridge/bridge-nf-call-iptables": "1\n",
		"sys/net/ipv4/ip_forward":                "1\n",
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(proc, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(proc, p), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return proc
}

// exitCode is the exit status in err (0 when nil).
func exitCode(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	t.Fatalf("run: %v", err)
	return -1
}

// TestPrivilegedDoctorEmulatedNode runs `chelsio-vf doctor` on a worker of the
// emulated node, set up as the reference procedure does (4 VFs, MTU 9000, the CNI
// plugin installed with install-cni, Multus' config, host-local and a whereabouts
// stand-in, cxgb4vf in modules-load.d, chelsio-sriov-dp's socket listening): every
// check is OK and it exits 0. Then it breaks the worker step by step: an unbound VF
// and cxgb4vf out of the boot list are WARNs (exit still 0); PF4 off cxgb4 and a
// missing CNI plugin are FAILs (exit 1).
func TestPrivilegedDoctorEmulatedNode(t *testing.T) {
	roottest.Require(t)
	n := upNode(t, "--vfs", "4", "--mtu", "9000")
	proc := healthyProc(t)
	cniDir := filepath.Join(t.TempDir(), "opt", "cni", "bin")
	out := mustRun(t, n.cvf, "install-cni", "--src", bin(t, "chelsio-sriov"), "--dest", cniDir)
	if !strings.Contains(out, "installed "+filepath.Join(cniDir, node.PluginName)) {
		t.Errorf("install-cni printed %q", out)
	}
	// The IPAM plugins: host-local itself; doctor only looks at whereabouts' file.
	mustRun(t, n.cvf, "install-cni", "--src", bin(t, "host-local"), "--dest", cniDir, "--name", "host-local")
	confDir, etc := filepath.Join(t.TempDir(), "net.d"), t.TempDir()
	bootList := filepath.Join(etc, "modules-load.d", "chelsio-sriov.conf")
	for p, content := range map[string]string{
		filepath.Join(cniDir, node.DefaultIPAM):  "#!/bin/sh\n",
		filepath.Join(confDir, "00-multus.conf"): `{"cniVersion":"1.0.0","name":"multus-cni-network","type":"multus-shim"}`,
		bootList:                                 "cxgb4vf\n",
	} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Socket paths are limited to 107 bytes: keep this one short.
	dpDir, err := os.MkdirTemp("", "dp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dpDir) })
	ln, err := net.Listen("unix", filepath.Join(dpDir, "chelsio-sriov-chelsio_com_vf.sock"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })

	stateDir := filepath.Join(t.TempDir(), "cni-state")
	policyStatus := filepath.Join(t.TempDir(), "policy-status.json") // no policy agent on this node
	doctor := func(worker string, extra ...string) (string, int) {
		t.Helper()
		args := append([]string{
			"emulate", "exec", "--name", n.name, "--run-dir", n.runDir, "--worker", worker, "--",
			n.cvf, "doctor", "--proc-root", proc, "--cni-bin-dir", cniDir, "--device-plugin-dir", dpDir, "--cni-state-dir", stateDir,
			"--policy-status-file", policyStatus, "--cni-conf-dir", confDir, "--etc-root", etc,
		}, extra...)
		out, errb, err := run(t, n.cvf, args...)
		if errb != "" {
			t.Errorf("doctor wrote to stderr: %s", errb)
		}
		return out, exitCode(t, err)
	}
	report := func(worker string) (node.Report, int) {
		t.Helper()
		out, code := doctor(worker, "--json")
		var r node.Report
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("doctor --json: %v\n%s", err, out)
		}
		return r, code
	}
	statuses := func(r node.Report) map[string]node.Status {
		m := map[string]node.Status{}
		for _, c := range r.Checks {
			m[c.Name] = c.Status
		}
		return m
	}
	allOK := map[string]node.Status{}
	for _, c := range node.Checks() {
		allOK[c.Name] = node.OK
	}

	r, code := report("1")
	if diff := cmp.Diff(allOK, statuses(r)); diff != "" || code != 0 || !r.OK {
		t.Fatalf("healthy worker: exit %d, ok %v, statuses mismatch (-want +got):\n%s\n%+v", code, r.OK, diff, r)
	}
	for name, want := range map[string]string{
		node.CheckAdapters:    "T6 T62100-CR at 0000:81:00, 2 ports",
		node.CheckVFs:         "4 VFs: PF0 0000:81:00.0 4/16",
		node.CheckVFBinding:   "4 VFs: 4 on cxgb4vf, 0 on vfio-pci",
		node.CheckMTU:         "2 ports and 4 VF netdevs at MTU 9000 or more",
		node.CheckMultus:      "found " + filepath.Join(confDir, "00-multus.conf"),
		node.CheckBootModules: "cxgb4vf in " + bootList,
	} {
		for _, c := range r.Checks {
			if c.Name == name && c.Finding != want {
				t.Errorf("check %s: finding %q, want %q", name, c.Finding, want)
			}
		}
	}

	tree := &sysfstree.Tree{Root: sysfs.Root(filepath.Join(n.runDir, n.name, "w1", "sys")), Opts: sysfstree.Options{AbsoluteLinks: true}}
	want := maps.Clone(allOK)
	steps := []struct {
		name   string
		breaks func() error
		check  string
		status node.Status
		code   int
	}{
		{"VF unbound", func() error { return tree.Bind(vf.MustParsePCIAddr("0000:81:01.4"), "") }, node.CheckVFBinding, node.Warn, 0},
		{"cxgb4vf not loaded at boot", func() error { return os.Remove(bootList) }, node.CheckBootModules, node.Warn, 0},
		{"PF4 off cxgb4", func() error { return tree.Bind(vf.MustParsePCIAddr("0000:81:00.4"), "") }, node.CheckCxgb4, node.Fail, 1},
		{"CNI plugin missing", func() error { return os.Remove(filepath.Join(cniDir, node.PluginName)) }, node.CheckCNIBinary, node.Fail, 1},
	}
	for _, s := range steps {
		if err := s.breaks(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		want[s.check] = s.status
		r, code := report("1")
		if diff := cmp.Diff(want, statuses(r)); diff != "" {
			t.Errorf("%s: statuses mismatch (-want +got):\n%s", s.name, diff)
		}
		if code != s.code || r.OK != (s.code == 0) {
			t.Errorf("%s: exit %d, ok %v; want exit %d", s.name, code, r.OK, s.code)
		}
	}

	// The text report says the same, with the fixes.
	text, code := doctor("1")
	for _, line := range []string{
		"OK    adapters: T6 T62100-CR at 0000:81:00, 2 ports\n",
		"FAIL  cxgb4: PF4 0000:81:00.4 not on cxgb4 (no driver)\n      fix: echo 0000:81:00.4 > /sys/bus/pci/drivers/cxgb4/bind\n",
		"WARN  vf-binding: 1 of 4 VFs unbound: 0000:81:01.4\n      fix: echo 0000:81:01.4 > /sys/bus/pci/drivers/cxgb4vf/bind; or chelsio-vf setup\n",
		"FAIL  cni-binary: not installed: no " + filepath.Join(cniDir, node.PluginName) + "\n      fix: chelsio-vf install-cni --dest " + cniDir + "\n",
		"WARN  boot-modules: not loaded at boot: cxgb4vf (named in no " + filepath.Join(etc, "modules-load.d") + "/*.conf nor " + filepath.Join(etc, "modules") + ", not built in)\n      fix: echo cxgb4vf > /etc/modules-load.d/chelsio-sriov.conf\n",
		"17 checks: 13 OK, 2 WARN, 2 FAIL\n",
	} {
		if !strings.Contains(text, line) {
			t.Errorf("doctor output lacks %q:\n%s", line, text)
		}
	}
	if code != 1 {
		t.Errorf("doctor exit %d, want 1", code)
	}

	// Worker 2 is another node: untouched but for the shared CNI and /etc directories.
	r, _ = report("2")
	want = maps.Clone(allOK)
	want[node.CheckCNIBinary] = node.Fail
	want[node.CheckBootModules] = node.Warn
	if diff := cmp.Diff(want, statuses(r)); diff != "" {
		t.Errorf("worker 2: statuses mismatch (-want +got):\n%s", diff)
	}
}

// TestInstallCNIWhileExecuting replaces the installed plugin with `chelsio-vf
// install-cni`, again and again, while another process executes it in a loop, as a
// container runtime does during a rollout of the install DaemonSet. The two
// versions are real binaries (chelsio-sriov and host-local, which print different
// banners without CNI_COMMAND). Every run must succeed and print one of the two
// banners: no ETXTBSY, no ENOENT, no partial binary.
func TestInstallCNIWhileExecuting(t *testing.T) {
	cvf := bin(t, "chelsio-vf")
	v1, v2 := bin(t, "chelsio-sriov"), bin(t, "host-local")
	dest := filepath.Join(t.TempDir(), "bin")

	// Default source: chelsio-sriov next to chelsio-vf.
	out := mustRun(t, cvf, "install-cni", "--dest", dest)
	path := filepath.Join(dest, node.PluginName)
	if want := "created " + dest + "\ninstalled " + path + " from " + v1 + " ("; !strings.HasPrefix(out, want) {
		t.Errorf("install-cni printed %q, want it to start with %q", out, want)
	}
	out = mustRun(t, cvf, "install-cni", "--dest", dest)
	if !strings.HasPrefix(out, "already installed: "+path+" is identical to "+v1) {
		t.Errorf("second install-cni printed %q, want already installed", out)
	}
	// The readiness probe: --check passes on the installed file and fails,
	// saying so, on another one.
	if out := mustRun(t, cvf, "install-cni", "--check", "--dest", dest); out != path+" is installed and identical to "+v1+"\n" {
		t.Errorf("install-cni --check printed %q", out)
	}
	if _, stderr, err := run(t, cvf, "install-cni", "--check", "--src", v2, "--dest", dest); err == nil ||
		!strings.Contains(stderr, path+" differs from "+v2) {
		t.Errorf("install-cni --check against another binary: %v, %q; want an error naming both", err, stderr)
	}

	stop := filepath.Join(t.TempDir(), "stop")
	reader := exec.Command("sh", "-c", `while [ ! -e "$2" ]; do out=$("$1" 2>&1); rc=$?; echo "$rc:${out%%
*}"; done`, "reader", path, stop)
	rout, err := reader.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := reader.Start(); err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		runs = map[string]int{}
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(rout)
		for sc.Scan() {
			mu.Lock()
			runs[sc.Text()]++
			mu.Unlock()
		}
	}()
	const installs = 60
	for i := range installs {
		src := v2
		if i%2 == 1 {
			src = v1
		}
		out := mustRun(t, cvf, "install-cni", "--src", src, "--dest", dest)
		if !strings.HasPrefix(out, "replaced "+path+" with "+src) {
			t.Fatalf("install %d printed %q, want a replacement", i, out)
		}
	}
	if err := os.WriteFile(stop, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	<-done
	if err := reader.Wait(); err != nil {
		t.Errorf("reader: %v", err)
	}
	banner, _, _ := strings.Cut(mustRun(t, v1, "--version"), "\n")
	if !strings.HasPrefix(banner, "CNI plugin chelsio-sriov ") {
		t.Fatalf("chelsio-sriov --version printed %q, want its CNI banner", banner)
	}
	good := map[string]bool{"0:" + banner: true, "0:CNI host-local plugin version unknown": true}
	total := 0
	for r, k := range runs {
		total += k
		if !good[r] {
			t.Errorf("%d runs printed %q, want one of the two banners", k, r)
		}
	}
	if len(runs) < 2 {
		t.Errorf("runs saw %v; want both versions", runs)
	}
	t.Logf("%d installs, %d runs: %v", installs, total, runs)

	// Errors are one line on stderr, exit 1.
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--src", "/nonexistent/chelsio-sriov", "--dest", dest}, "chelsio-vf: install-cni: source /nonexistent/chelsio-sriov: no such file or directory\n"},
		{[]string{"--src", v1, "--dest", file}, "chelsio-vf: install-cni: destination " + file + ": not a directory\n"},
	} {
		out, errb, err := run(t, cvf, append([]string{"install-cni"}, c.args...)...)
		if code := exitCode(t, err); code != 1 || errb != c.want || out != "" {
			t.Errorf("install-cni %s: exit %d, stdout %q, stderr %q; want exit 1 and %q", strings.Join(c.args, " "), code, out, errb, c.want)
		}
	}
}

// TestInstallCNIWait is the installer DaemonSet's main container: it installs, stays
// up, and exits 0 on SIGTERM.
func TestInstallCNIWait(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "bin")
	cmd := exec.Command(bin(t, "chelsio-vf"), "install-cni", "--dest", dest, "--wait")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "plugin installed", 10*time.Second, func() (bool, string) {
		_, err := os.Stat(filepath.Join(dest, "chelsio-sriov"))
		return err == nil, "not installed"
	})
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		t.Fatalf("install-cni --wait exited before SIGTERM: %v\n%s", err, out.String())
	case <-time.After(200 * time.Millisecond):
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("install-cni --wait after SIGTERM: %v\n%s", err, out.String())
		}
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("install-cni --wait did not stop on SIGTERM")
	}
}
