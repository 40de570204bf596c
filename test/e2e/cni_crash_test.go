package e2e

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/sys/unix"

	"github.com/chelsio-k8s/chelsio-sriov/internal/roottest"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/cni"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// Faults and crashes in every step of ADD and DEL. Each case asks for every
// setting (MTU 9000 on a 1500 node, a MAC, VLAN, rate and link state through the
// PF) so that anything left half-done shows, then checks what a runtime needs:
// after the runtime's next verb the VF is in its worker with its name, MTU and MAC,
// its PF-side settings as before, no lease, no state, no lock held, nothing in the
// pod; and a later ADD of the same VF works.

const crashVF = "0000:81:01.4"

// crashEnv is where each test here starts (as root): an emulated node whose
// worker 1 has two VFs at MTU 1500, the CNI environment, and how crashVF is before
// anything is done.
func crashEnv(t *testing.T) (e *cniEnv, before vfHome, beforePF vf.VFConfig) {
	t.Helper()
	roottest.Require(t)
	e = newCNIEnv(t, upNode(t, "--vfs", "2", "--mtu", "1500"))
	return e, e.home(t, 1, crashVF), e.pfConfig(t, 1, crashVF)
}

// crashConf asks for every setting the plugin applies.
func crashConf(e *cniEnv) []byte {
	return e.conf(1, crashVF, map[string]any{
		"cniVersion": "1.0.0", "mtu": 9000, "vlan": 100, "mac": "0a:58:c6:33:64:0c",
		"max_tx_rate": 10000, "link_state": "enable", "spoofchk": "off",
	})
}

// killing is libcni for worker w with the plugin built with its fault hook, which
// kills itself with SIGKILL right after the given step.
func (e *cniEnv) killing(w int, step string) *libcni.CNIConfig {
	e.t.Helper()
	d := e.t.TempDir()
	script := fmt.Sprintf("#!/bin/sh\nCHELSIO_SRIOV_KILL_AFTER=%s exec %s emulate exec --name %s --run-dir %s --worker %d -- %s \"$@\"\n",
		step, e.node.cvf, e.node.name, e.node.runDir, w, bin(e.t, "chelsio-sriov-faultinject"))
	if err := os.WriteFile(filepath.Join(d, "chelsio-sriov"), []byte(script), 0o755); err != nil {
		e.t.Fatal(err)
	}
	return libcni.NewCNIConfigWithCacheDir([]string{d, binDir}, e.cacheDir, nil)
}

// assertClean is assertReleased plus: nothing in the pod, and no lock of the
// plugin held (a lock a dead process held is free: flock dies with its holder).
func assertClean(t *testing.T, e *cniEnv, pod ns.NetNS, before vfHome, beforePF vf.VFConfig) {
	t.Helper()
	assertReleased(t, e, crashVF, before, &beforePF)
	assertFreed(t, e, pod)
	locks, err := os.ReadDir(filepath.Join(e.dataDirs[1], "locks"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	for _, l := range locks {
		if lockHeld(t, filepath.Join(e.dataDirs[1], "locks", l.Name())) {
			t.Errorf("lock %s still held", l.Name())
		}
	}
}

// delClean runs del, the runtime's DEL after a failed ADD or DEL, which must
// succeed and leave everything clean (assertClean).
func delClean(t *testing.T, e *cniEnv, pod ns.NetNS, before vfHome, beforePF vf.VFConfig, del func() error) {
	t.Helper()
	if err := del(); err != nil {
		t.Fatalf("the runtime's DEL after the failure: %v", err)
	}
	assertClean(t, e, pod, before, beforePF)
}

// lockHeld reports whether some open file holds the flock of path.
func lockHeld(t *testing.T, path string) bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil
}

// TestPrivilegedCNIFaultAfterEachDelStep fails DEL after each of its changes in
// turn; the DEL fails, and the runtime's retry finishes the job.
func TestPrivilegedCNIFaultAfterEachDelStep(t *testing.T) {
	e, before, beforePF := crashEnv(t)
	p, _ := e.inProcess(1)
	conf := crashConf(e)
	for _, step := range cni.DelSteps {
		t.Run(step, func(t *testing.T) {
			pod := newPod(t)
			id := "delfault-" + step
			p.Fault = nil
			if _, err := p.Add(e.args(id, pod, conf)); err != nil {
				t.Fatalf("ADD: %v", err)
			}
			p.Fault = func(s string) error {
				if s == step {
					return errors.New("boom")
				}
				return nil
			}
			err := p.Del(e.args(id, pod, conf))
			if err == nil || !strings.Contains(err.Error(), "injected fault after "+step) {
				t.Fatalf("DEL error = %v, want the injected fault after %s", err, step)
			}
			p.Fault = nil
			delClean(t, e, pod, before, beforePF, func() error { return p.Del(e.args(id, pod, conf)) })
		})
	}
	serves(t, e, crashVF, conf, "0a:58:c6:33:64:0c", before, beforePF)
}

// TestPrivilegedCNIKillAfterEachStep runs the real plugin through libcni and kills
// it (SIGKILL) right after each step of ADD, then runs DEL as a runtime does after
// a failed ADD; and right after each step of DEL, then DEL again as a runtime
// retries.
func TestPrivilegedCNIKillAfterEachStep(t *testing.T) {
	e, before, beforePF := crashEnv(t)
	conf := crashConf(e)
	for _, v := range []struct {
		verb  string
		steps []string
		run   func(t *testing.T, step, id string, pod ns.NetNS) error // the verb, killed after step
	}{
		{"ADD", cni.AddSteps, func(t *testing.T, step, id string, pod ns.NetNS) error {
			_, err := e.killing(1, step).AddNetwork(ctx30(t), e.plugin(conf), e.rt(id, pod))
			return err
		}},
		{"DEL", cni.DelSteps, func(t *testing.T, step, id string, pod ns.NetNS) error {
			addOK(t, e, id, pod, conf, 9000, "0a:58:c6:33:64:0c")
			return e.killing(1, step).DelNetwork(ctx30(t), e.plugin(conf), e.rt(id, pod))
		}},
	} {
		for _, step := range v.steps {
			t.Run(v.verb+"/"+step, func(t *testing.T) {
				pod := newPod(t)
				id := "kill-" + strings.ToLower(v.verb) + "-" + step
				err := v.run(t, step, id, pod)
				if err == nil || !strings.Contains(err.Error(), "killing myself after "+step+`\n`) {
					t.Fatalf("%s = %v, want the plugin killed after %s", v.verb, err, step)
				}
				delClean(t, e, pod, before, beforePF, func() error { return e.del(1, id, pod, conf) })
			})
		}
	}
	serves(t, e, crashVF, conf, "0a:58:c6:33:64:0c", before, beforePF)
}

// TestPrivilegedCNIKillDuringIPAM kills ADD while its IPAM plugin is halfway
// through an allocation that, like host-local's, first creates a lease file and
// then writes its owner into it. The runtime's DEL that follows must find the
// lease whole and free it: the IPAM plugin is left to finish, and DEL waits for it
// on the VF's lock, which the plugin holds. Killing the IPAM plugin with the ADD
// would leave an ownerless lease that no DEL can free.
func TestPrivilegedCNIKillDuringIPAM(t *testing.T) {
	e, before, beforePF := crashEnv(t)
	leases, ipamDir := t.TempDir(), t.TempDir()
	// Named host-local, so that ADD runs it while the VF moves.
	script := fmt.Sprintf(`#!/bin/sh
case "$CNI_COMMAND" in
ADD)
  f=%[1]s/lease-$$
  : >"$f"
  sleep 0.5
  echo "$CNI_CONTAINERID" >"$f"
  echo '{"cniVersion":"1.0.0","ips":[{"address":"198.51.100.9/24"}]}' ;;
DEL)
  for f in %[1]s/lease-*; do
    if [ -f "$f" ] && [ "$(cat "$f")" = "$CNI_CONTAINERID" ]; then rm -f "$f"; fi
  done ;;
esac
`, leases)
	if err := os.WriteFile(filepath.Join(ipamDir, "host-local"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := crashConf(e)
	pod := newPod(t)
	kill := e.killing(1, cni.StepMove)
	kill.Path = []string{kill.Path[0], ipamDir, binDir}
	_, err := kill.AddNetwork(ctx30(t), e.plugin(conf), e.rt("kill-ipam", pod))
	if err == nil || !strings.Contains(err.Error(), "killing myself after "+cni.StepMove) {
		t.Fatalf("ADD = %v, want the plugin killed after %s", err, cni.StepMove)
	}
	del := e.cni(1)
	del.Path = []string{e.wrapDirs[1], ipamDir, binDir}
	if err := del.DelNetwork(ctx30(t), e.plugin(conf), e.rt("kill-ipam", pod)); err != nil {
		t.Fatalf("DEL after the killed ADD: %v", err)
	}
	left, err := filepath.Glob(filepath.Join(leases, "lease-*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range left {
		b, _ := os.ReadFile(f)
		t.Errorf("lease %s left, owner %q", filepath.Base(f), b)
	}
	assertClean(t, e, pod, before, beforePF)
}
