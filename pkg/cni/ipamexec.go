package cni

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
)

// ipamExec runs the IPAM plugin as a child, so that a runtime that gives up on a
// slow call and kills the plugin (not its children) never leaves an IPAM plugin
// behind to change leases after the runtime's next call, in one of two ways.
//
// With hold (IPAM ADD), the child inherits the VF's lock file and holds the lock
// until it exits, also after this process died: the runtime's DEL, which takes the
// lock first, waits until the allocation is complete and then frees it. Killing an
// allocating plugin instead could cut it halfway (host-local creates a lease file,
// then writes its owner: a lease no DEL can find).
//
// Without hold (DEL, CHECK, STATUS, GC), the child dies with this process
// (parent-death signal): what those leave halfway, the runtime's retry finishes.
// The signal follows the thread that forked the child, so the call keeps its
// goroutine on one thread until the child has exited: no namespace switch (which
// may retire a thread) can run on that thread meanwhile.
type ipamExec struct {
	hold *os.File
}

var _ invoke.Exec = ipamExec{}

func (x ipamExec) ExecPlugin(ctx context.Context, path string, stdin []byte, environ []string) ([]byte, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var stdout, stderr bytes.Buffer
	var err error
	for try := 0; ; try++ {
		stdout.Reset()
		stderr.Reset()
		c := exec.CommandContext(ctx, path)
		c.Env, c.Stdin, c.Stdout, c.Stderr = environ, bytes.NewReader(stdin), &stdout, &stderr
		if x.hold != nil {
			c.ExtraFiles = []*os.File{x.hold}
		} else {
			c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		}
		// A grandchild that keeps the output pipes open must not hold us past
		// the timeout.
		c.WaitDelay = 2 * time.Second
		err = c.Run()
		// A binary being written (an installer copying it in place) cannot be
		// run for a moment: try again, for up to 5 s.
		if !errors.Is(err, syscall.ETXTBSY) || try == 5 {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	if err == nil {
		return stdout.Bytes(), nil
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("%s: %w", path, ctx.Err())
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return nil, err // it did not start
	}
	// A CNI plugin reports failure as a JSON error on stdout.
	var e types.Error
	if json.Unmarshal(stdout.Bytes(), &e) == nil && (e.Code != 0 || e.Msg != "") {
		if e.Code == 0 {
			e.Code = CodeInternal // an error must carry a code
		}
		return nil, &e
	}
	msg := strings.TrimSpace(stderr.String())
	if msg == "" {
		msg = strings.TrimSpace(stdout.String())
	}
	if msg == "" {
		msg = "no error message"
	}
	return nil, &types.Error{Code: CodeInternal, Msg: fmt.Sprintf("%s failed (%v): %s", path, err, oneLine(msg))}
}

func (ipamExec) FindInPath(plugin string, paths []string) (string, error) {
	return invoke.FindInPath(plugin, paths)
}

func (ipamExec) Decode(b []byte) (version.PluginInfo, error) {
	return (&version.PluginDecoder{}).Decode(b)
}

// oneLine joins the lines of s with "; ", keeping at most 512 bytes.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ; ")), " ")
	if len(s) > 512 {
		s = s[:512] + "…"
	}
	return s
}
