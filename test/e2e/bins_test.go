package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/cni"
)

// hostLocalModule is the host-local IPAM plugin the tests run, pinned.
const hostLocalModule = "github.com/containernetworking/plugins/plugins/ipam/host-local@v1.9.1"

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// bin returns the path of a binary of this repository, built once per test run.
func bin(t *testing.T, name string) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "chelsio-e2e-bin-")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", binDir+"/", "github.com/chelsio-k8s/chelsio-sriov/cmd/...", "github.com/chelsio-k8s/chelsio-sriov/plugins/...")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = &buildError{err: err, out: string(out)}
			return
		}
		// The plugin with its fault hook compiled in: it kills itself after the
		// step named by CHELSIO_SRIOV_KILL_AFTER (the release binary has no hook).
		cmd = exec.Command("go", "build", "-tags", "faultinject", "-o", filepath.Join(binDir, "chelsio-sriov-faultinject"), "github.com/chelsio-k8s/chelsio-sriov/plugins/chelsio-sriov")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = &buildError{err: err, out: string(out)}
			return
		}
		// The reference IPAM plugin, from the module proxy, as users install it.
		cmd = exec.Command("go", "install", hostLocalModule)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOBIN="+binDir, "GOFLAGS=-mod=mod")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = &buildError{err: err, out: string(out)}
		}
	})
	if buildErr != nil {
		t.Fatalf("build binaries: %v", buildErr)
	}
	return filepath.Join(binDir, name)
}

var (
	whereaboutsOnce sync.Once
	whereaboutsErr  error
)

// whereabouts returns the path of the whereabouts IPAM plugin, built once per
// test run into the directory of the other binaries (which is on the tests'
// CNI_PATH) from tools/whereabouts, the module that pins it.
func whereabouts(t *testing.T) string {
	t.Helper()
	bin(t, "chelsio-sriov") // makes binDir
	whereaboutsOnce.Do(func() {
		dir, err := filepath.Abs(filepath.Join("..", "..", "tools", "whereabouts"))
		if err != nil {
			whereaboutsErr = err
			return
		}
		cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(binDir, "whereabouts"), "github.com/k8snetworkplumbingwg/whereabouts/cmd")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			whereaboutsErr = &buildError{err: err, out: string(out)}
		}
	})
	if whereaboutsErr != nil {
		t.Fatalf("build whereabouts: %v", whereaboutsErr)
	}
	return filepath.Join(binDir, "whereabouts")
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + e.out }

func TestMain(m *testing.M) {
	// The tests' dataDirs and log files are temporary directories: allow them, as a
	// node's administrator would, for every plugin the tests run (the environment
	// is the runtime's, which libcni passes on). Tests of the rule set their own.
	for _, env := range []string{cni.EnvLogDirs, cni.EnvDataDirs} {
		if err := os.Setenv(env, os.TempDir()); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// run runs a command with a deadline and returns stdout, stderr and the error.
func run(t *testing.T, name string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// mustRun is run that fails the test on error.
func mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, errb, err := run(t, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", filepath.Base(name), strings.Join(args, " "), err, out, errb)
	}
	return out
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, d time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	last := ""
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %v; last state: %s", what, d, last)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
