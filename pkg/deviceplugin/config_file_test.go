package deviceplugin_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/deviceplugin"
)

// TestLoadWhatIsNotAConfigFile puts at the config path what is not a config file:
// Load returns, at once, one line that names the path and what is there, instead
// of waiting for a writer on a named pipe or reading /dev/zero without end. The
// running plugin reloads on its event loop, so a Load that blocked would stop its
// rescans and re-registrations.
func TestLoadWhatIsNotAConfigFile(t *testing.T) {
	seed := deviceplugin.SeedConfig(t)
	tests := []struct {
		name string
		make func(t *testing.T, path string)
		want string // "" loads
	}{
		{"named pipe", func(t *testing.T, p string) {
			if err := syscall.Mkfifo(p, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "is not a regular file but a named pipe"},
		{"link to /dev/zero", func(t *testing.T, p string) {
			if err := os.Symlink("/dev/zero", p); err != nil {
				t.Fatal(err)
			}
		}, "is not a regular file but a character device"},
		{"directory", func(t *testing.T, p string) {
			if err := os.Mkdir(p, 0o755); err != nil {
				t.Fatal(err)
			}
		}, "is not a regular file but a directory"},
		{"over 1 MiB", func(t *testing.T, p string) {
			pad := strings.Repeat(" ", deviceplugin.MaxConfigSize+1-len(seed))
			if err := os.WriteFile(p, append(seed, pad...), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "is larger than 1048576 bytes"},
		{"exactly 1 MiB", func(t *testing.T, p string) {
			pad := strings.Repeat(" ", deviceplugin.MaxConfigSize-len(seed))
			if err := os.WriteFile(p, append(seed, pad...), 0o644); err != nil {
				t.Fatal(err)
			}
		}, ""},
		{"link to a regular file, as in a ConfigMap volume", func(t *testing.T, p string) {
			real := filepath.Join(filepath.Dir(p), "..data")
			if err := os.WriteFile(real, seed, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("..data", p); err != nil {
				t.Fatal(err)
			}
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "config.json")
			tt.make(t, p)
			type result struct {
				cfg *deviceplugin.Config
				err error
			}
			done := make(chan result, 1)
			go func() {
				cfg, _, err := deviceplugin.Load(p, "intel.com")
				done <- result{cfg, err}
			}()
			var r result
			select {
			case r = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Load has not returned after 10s")
			}
			if tt.want == "" {
				if r.err != nil || r.cfg == nil || len(r.cfg.Pools) != 1 {
					t.Fatalf("Load = %+v, %v; want the seed's one pool", r.cfg, r.err)
				}
				return
			}
			if r.err == nil {
				t.Fatalf("Load: no error, want one with %q", tt.want)
			}
			msg := r.err.Error()
			if !strings.Contains(msg, p) || !strings.Contains(msg, tt.want) || strings.Contains(msg, "\n") {
				t.Errorf("Load error %q: want one line that names %s and says %q", msg, p, tt.want)
			}
		})
	}
}
