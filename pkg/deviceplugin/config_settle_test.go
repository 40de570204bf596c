package deviceplugin_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/deviceplugin"
)

// TestConfigWrittenInPlaceIsReadOnce: a config file rewritten in place (truncate,
// then write, in pieces) sends several events; the plugin reloads once, after the
// file has settled, and never reads, and refuses, the half-written file.
func TestConfigWrittenInPlaceIsReadOnce(t *testing.T) {
	dir, err := os.MkdirTemp("", "dp-") // short: unix socket paths are limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cfg := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(cfg, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var read []string
	m := deviceplugin.NewManager(&fakeScanner{tree: deviceplugin.DeviceTree{}}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	m.Dir, m.Interval, m.ConfigFile, m.ConfigSettle = dir, time.Hour, cfg, 300*time.Millisecond
	m.Reload = func() error {
		b, err := os.ReadFile(cfg)
		if err != nil {
			return err
		}
		mu.Lock()
		read = append(read, string(b))
		mu.Unlock()
		if string(b) != "new config" {
			return errors.New("half-written")
		}
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-m.Started():
	case <-time.After(10 * time.Second):
		t.Fatal("the manager did not start")
	}

	f, err := os.OpenFile(cfg, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, piece := range []string{"new", " ", "config"} {
		if _, err := f.WriteString(piece); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(read)
		mu.Unlock()
		if n > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(2 * m.ConfigSettle) // room for a second reload, if one were coming
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(read, []string{"new config"}) {
		t.Errorf("Reload read %q, want the finished file once", read)
	}
}
