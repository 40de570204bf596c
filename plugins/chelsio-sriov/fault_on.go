//go:build faultinject

package main

import (
	"fmt"
	"os"
	"syscall"
)

// faultHook, in a binary built with -tags faultinject (tests only), kills the
// process with SIGKILL right after the step named by CHELSIO_SRIOV_KILL_AFTER: the
// crash a runtime sees when a plugin is OOM-killed or its node stalls.
func faultHook() func(string) error {
	want := os.Getenv("CHELSIO_SRIOV_KILL_AFTER")
	if want == "" {
		return nil
	}
	return func(step string) error {
		if step == want {
			fmt.Fprintf(os.Stderr, "chelsio-sriov: killing myself after %s\n", step)
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the signal is on its way
		}
		return nil
	}
}
