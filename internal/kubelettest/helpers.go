package kubelettest

import (
	"context"
	"os"
	"testing"
	"time"
)

// ShortDir makes a directory for unix sockets, whose paths are limited to 108
// bytes (tb.TempDir's can be longer); it is removed when the test ends.
func ShortDir(tb testing.TB, prefix string) string {
	tb.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// MustWait is Wait for at most timeout: the test fails, saying what it waited
// for, when cond does not come to hold.
func (k *Kubelet) MustWait(tb testing.TB, what string, timeout time.Duration, cond func(map[string]*Plugin) bool) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := k.Wait(ctx, cond); err != nil {
		tb.Fatalf("%s: %v", what, err)
	}
}

// StartTest is Start in a new ShortDir, for a test: an error fails the test, and
// the stand-in is closed when the test ends.
func StartTest(tb testing.TB, prefix string) *Kubelet {
	tb.Helper()
	k, err := Start(ShortDir(tb, prefix))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(k.Close)
	return k
}
