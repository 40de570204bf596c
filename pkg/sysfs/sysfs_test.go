package sysfs_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/sysfs"
)

// newRoot returns a root under t.TempDir() holding the given files (relative path →
// content); directories are created as needed.
func newRoot(t testing.TB, files map[string]string) sysfs.Root {
	t.Helper()
	r := sysfs.Root(t.TempDir())
	for rel, content := range files {
		writeFile(t, r, rel, content)
	}
	return r
}

func writeFile(t testing.TB, r sysfs.Root, rel, content string) {
	t.Helper()
	p := r.Path(rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestPath(t *testing.T) {
	r := sysfs.Root("/sys")
	tests := []struct {
		name string
		elem []string
		want string
	}{
		{name: "none", want: "/sys"},
		{name: "one", elem: []string{"bus/pci/devices"}, want: "/sys/bus/pci/devices"},
		{name: "several", elem: []string{"bus", "pci", "devices", "0000:81:00.0", "vendor"}, want: "/sys/bus/pci/devices/0000:81:00.0/vendor"},
		{name: "cleaned", elem: []string{"bus//pci/", "./devices"}, want: "/sys/bus/pci/devices"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := r.Path(tt.elem...); got != tt.want {
				t.Errorf("Path(%q) = %q, want %q", tt.elem, got, tt.want)
			}
		})
	}
}

func TestFromEnv(t *testing.T) {
	t.Run("unset", func(t *testing.T) {
		t.Setenv(sysfs.EnvRoot, "")
		if got := sysfs.FromEnv(); got != sysfs.DefaultRoot {
			t.Errorf("FromEnv() = %q, want %q", got, sysfs.DefaultRoot)
		}
	})
	t.Run("set", func(t *testing.T) {
		t.Setenv(sysfs.EnvRoot, "/tmp/fake-sys")
		if got := sysfs.FromEnv(); got != "/tmp/fake-sys" {
			t.Errorf("FromEnv() = %q, want %q", got, "/tmp/fake-sys")
		}
	})
}

func TestReadString(t *testing.T) {
	const limit = 64 << 10
	tests := []struct {
		name    string
		content *string // nil: no file
		want    string
		wantErr error // errors.Is target; nil: any error is a failure
		errText string
	}{
		{name: "plain", content: ptr("0x1425"), want: "0x1425"},
		{name: "trailing newline", content: ptr("0x1425\n"), want: "0x1425"},
		{name: "surrounding white space", content: ptr(" \t0x1425 \n\n"), want: "0x1425"},
		{name: "inner space kept", content: ptr("Custom T440 2-xaui, 2-xfi\n"), want: "Custom T440 2-xaui, 2-xfi"},
		{name: "empty", content: ptr(""), want: ""},
		{name: "only newline", content: ptr("\n"), want: ""},
		{name: "exactly 64 KiB", content: ptr(strings.Repeat("a", limit)), want: strings.Repeat("a", limit)},
		{name: "missing", wantErr: fs.ErrNotExist},
		{name: "over 64 KiB", content: ptr(strings.Repeat("a", limit+1)), errText: "larger than 64 KiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRoot(t, nil)
			const rel = "bus/pci/devices/0000:81:00.0/vendor"
			if tt.content != nil {
				writeFile(t, r, rel, *tt.content)
			}
			got, err := r.ReadString(rel)
			if tt.wantErr == nil && tt.errText == "" {
				if err != nil {
					t.Fatalf("ReadString() error: %v", err)
				}
				if got != tt.want {
					t.Errorf("ReadString() mismatch (-want +got):\n%s", cmp.Diff(tt.want, got))
				}
				return
			}
			if err == nil {
				t.Fatalf("ReadString() = %q, want an error", got)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("ReadString() error %v, want errors.Is %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.errText) {
				t.Errorf("ReadString() error %q does not contain %q", err, tt.errText)
			}
			var pe *fs.PathError
			if !errors.As(err, &pe) || pe.Path != r.Path(rel) {
				t.Errorf("ReadString() error %v is not a *fs.PathError for %s", err, r.Path(rel))
			}
			if !strings.Contains(err.Error(), r.Path(rel)) {
				t.Errorf("ReadString() error %q does not name the full path %s", err, r.Path(rel))
			}
		})
	}
}

func TestReadStringDirectory(t *testing.T) {
	r := newRoot(t, map[string]string{"dir/file": "x"})
	if got, err := r.ReadString("dir"); err == nil {
		t.Fatalf("ReadString(dir) = %q, want an error", got)
	} else if !strings.Contains(err.Error(), r.Path("dir")) {
		t.Errorf("ReadString(dir) error %q does not name %s", err, r.Path("dir"))
	}
}

func TestReadInt(t *testing.T) {
	tests := []struct {
		name      string
		content   *string
		want      int
		wantParse bool // a *ParseError
		wantNoEnt bool
	}{
		{name: "zero", content: ptr("0\n"), want: 0},
		{name: "positive", content: ptr("16\n"), want: 16},
		{name: "minus one", content: ptr("-1\n"), want: -1},
		{name: "spaces", content: ptr("  248  \n"), want: 248},
		{name: "garbage", content: ptr("garbage\n"), wantParse: true},
		{name: "hex", content: ptr("0x10\n"), wantParse: true},
		{name: "empty", content: ptr(""), wantParse: true},
		{name: "two numbers", content: ptr("1 2\n"), wantParse: true},
		{name: "overflow", content: ptr("99999999999999999999999\n"), wantParse: true},
		{name: "missing", wantNoEnt: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRoot(t, nil)
			const rel = "bus/pci/devices/0000:81:00.0/sriov_numvfs"
			if tt.content != nil {
				writeFile(t, r, rel, *tt.content)
			}
			got, err := r.ReadInt(rel)
			switch {
			case tt.wantParse:
				var pe *sysfs.ParseError
				if !errors.As(err, &pe) {
					t.Fatalf("ReadInt() = %d, %v; want a *sysfs.ParseError", got, err)
				}
				want := &sysfs.ParseError{Path: r.Path(rel), Value: strings.TrimSpace(*tt.content), Want: "an integer"}
				if diff := cmp.Diff(want, pe); diff != "" {
					t.Errorf("ReadInt() error mismatch (-want +got):\n%s", diff)
				}
				if !strings.Contains(err.Error(), r.Path(rel)) {
					t.Errorf("ReadInt() error %q does not name the full path", err)
				}
			case tt.wantNoEnt:
				if !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("ReadInt() = %d, %v; want fs.ErrNotExist", got, err)
				}
			default:
				if err != nil {
					t.Fatalf("ReadInt() error: %v", err)
				}
				if got != tt.want {
					t.Errorf("ReadInt() = %d, want %d", got, tt.want)
				}
			}
		})
	}
}

func TestParseErrorCutsLongValues(t *testing.T) {
	long := strings.Repeat("x", 200)
	r := newRoot(t, map[string]string{"numa_node": long})
	_, err := r.ReadInt("numa_node")
	var pe *sysfs.ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("ReadInt() error %v, want a *sysfs.ParseError", err)
	}
	if want := strings.Repeat("x", 64) + "…"; pe.Value != want {
		t.Errorf("ParseError.Value = %q, want %q", pe.Value, want)
	}
}

func TestReadHex(t *testing.T) {
	tests := []struct {
		name      string
		content   string
		bits      int
		want      uint64
		wantParse bool
	}{
		{name: "0x prefix", content: "0x1425\n", bits: 16, want: 0x1425},
		{name: "0X prefix", content: "0X680D\n", bits: 16, want: 0x680d},
		{name: "bare (sriov_vf_device)", content: "680d\n", bits: 16, want: 0x680d},
		{name: "upper case", content: "0x680D", bits: 16, want: 0x680d},
		{name: "leading zeros", content: "0x0000", bits: 16, want: 0},
		{name: "class 24 bits", content: "0x020000\n", bits: 24, want: 0x020000},
		{name: "max 16 bits", content: "0xffff", bits: 16, want: 0xffff},
		{name: "64 bits", content: "ffffffffffffffff", bits: 64, want: 1<<64 - 1},
		{name: "empty", content: "", bits: 16, wantParse: true},
		{name: "only prefix", content: "0x\n", bits: 16, wantParse: true},
		{name: "garbage", content: "garbage\n", bits: 16, wantParse: true},
		{name: "decimal point", content: "0x14.25", bits: 16, wantParse: true},
		{name: "negative", content: "-0x1", bits: 16, wantParse: true},
		{name: "plus sign", content: "+1425", bits: 16, wantParse: true},
		{name: "underscore", content: "0x14_25", bits: 16, wantParse: true},
		{name: "inner space", content: "0x14 25", bits: 16, wantParse: true},
		{name: "too many bits", content: "0x1ffff", bits: 16, wantParse: true},
		{name: "too many bits for 8", content: "0x100", bits: 8, wantParse: true},
		{name: "double prefix", content: "0x0x1425", bits: 16, wantParse: true},
		{name: "mixed double prefix", content: "0x0X1425", bits: 16, wantParse: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const rel = "bus/pci/devices/0000:81:00.0/device"
			r := newRoot(t, map[string]string{rel: tt.content})
			got, err := r.ReadHex(rel, tt.bits)
			if !tt.wantParse {
				if err != nil {
					t.Fatalf("ReadHex(%q, %d) error: %v", tt.content, tt.bits, err)
				}
				if got != tt.want {
					t.Errorf("ReadHex(%q, %d) = %#x, want %#x", tt.content, tt.bits, got, tt.want)
				}
				return
			}
			var pe *sysfs.ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("ReadHex(%q, %d) = %#x, %v; want a *sysfs.ParseError", tt.content, tt.bits, got, err)
			}
			want := &sysfs.ParseError{Path: r.Path(rel), Value: strings.TrimSpace(tt.content), Want: "a " + strconv.Itoa(tt.bits) + "-bit hexadecimal number"}
			if diff := cmp.Diff(want, pe); diff != "" {
				t.Errorf("ReadHex() error mismatch (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		r := newRoot(t, nil)
		if _, err := r.ReadHex("vendor", 16); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), r.Path("vendor")) {
			t.Errorf("ReadHex(missing) error %v, want fs.ErrNotExist naming %s", err, r.Path("vendor"))
		}
	})
}

func TestReadlinkAndLinkBase(t *testing.T) {
	r := newRoot(t, map[string]string{
		"devices/pci0000:80/0000:80:03.0/0000:81:00.0/vendor": "0x1425\n",
		"bus/pci/drivers/cxgb4/bind":                          "",
	})
	dev := "devices/pci0000:80/0000:80:03.0/0000:81:00.0"
	links := map[string]string{
		// relative, as the kernel writes them
		"bus/pci/devices/0000:81:00.0": "../../../devices/pci0000:80/0000:80:03.0/0000:81:00.0",
		dev + "/driver":                "../../../../bus/pci/drivers/cxgb4",
		// absolute
		dev + "/iommu_group": r.Path("kernel/iommu_groups/52"),
		// odd targets
		"dot":   ".",
		"slash": "/",
		// trailing slash: Base ignores it
		"trailing": "../../drivers/cxgb4vf/",
	}
	for l, target := range links {
		if err := os.MkdirAll(filepath.Dir(r.Path(l)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, r.Path(l)); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name       string
		rel        string
		wantTarget string
		wantBase   string
		wantParse  bool // LinkBase gives a *ParseError
		wantNoEnt  bool
	}{
		{name: "relative device link", rel: "bus/pci/devices/0000:81:00.0", wantTarget: links["bus/pci/devices/0000:81:00.0"], wantBase: "0000:81:00.0"},
		{name: "relative driver link", rel: dev + "/driver", wantTarget: links[dev+"/driver"], wantBase: "cxgb4"},
		{name: "through a linked directory", rel: "bus/pci/devices/0000:81:00.0/driver", wantTarget: links[dev+"/driver"], wantBase: "cxgb4"},
		{name: "absolute dangling link", rel: dev + "/iommu_group", wantTarget: r.Path("kernel/iommu_groups/52"), wantBase: "52"},
		{name: "trailing slash", rel: "trailing", wantTarget: "../../drivers/cxgb4vf/", wantBase: "cxgb4vf"},
		{name: "dot", rel: "dot", wantTarget: ".", wantParse: true},
		{name: "slash", rel: "slash", wantTarget: "/", wantParse: true},
		{name: "missing", rel: dev + "/physfn", wantNoEnt: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target, err := r.Readlink(tt.rel)
			base, berr := r.LinkBase(tt.rel)
			if tt.wantNoEnt {
				if !errors.Is(err, fs.ErrNotExist) || !errors.Is(berr, fs.ErrNotExist) {
					t.Fatalf("Readlink() error %v, LinkBase() error %v; want fs.ErrNotExist", err, berr)
				}
				if !strings.Contains(berr.Error(), r.Path(tt.rel)) {
					t.Errorf("LinkBase() error %q does not name %s", berr, r.Path(tt.rel))
				}
				return
			}
			if err != nil {
				t.Fatalf("Readlink() error: %v", err)
			}
			if target != tt.wantTarget {
				t.Errorf("Readlink() = %q, want %q", target, tt.wantTarget)
			}
			if tt.wantParse {
				var pe *sysfs.ParseError
				if !errors.As(berr, &pe) || pe.Path != r.Path(tt.rel) {
					t.Errorf("LinkBase() = %q, %v; want a *sysfs.ParseError for %s", base, berr, r.Path(tt.rel))
				}
				return
			}
			if berr != nil {
				t.Fatalf("LinkBase() error: %v", berr)
			}
			if base != tt.wantBase {
				t.Errorf("LinkBase() = %q, want %q", base, tt.wantBase)
			}
		})
	}
	t.Run("not a link", func(t *testing.T) {
		if _, err := r.LinkBase(dev + "/vendor"); err == nil {
			t.Error("LinkBase(regular file) succeeded, want an error")
		}
	})
}

func TestReadDir(t *testing.T) {
	r := newRoot(t, map[string]string{
		"bus/pci/devices/0000:82:00.0/vendor": "",
		"bus/pci/devices/0000:81:00.4/vendor": "",
		"bus/pci/devices/0000:81:00.0/vendor": "",
		"bus/pci/devices/0000:81:01.0/vendor": "",
		"bus/pci/devices/a-file":              "",
		"empty/.keep":                         "",
	})
	if err := os.Remove(r.Path("empty/.keep")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		rel       string
		want      []string
		wantNoEnt bool
	}{
		{name: "sorted", rel: "bus/pci/devices", want: []string{"0000:81:00.0", "0000:81:00.4", "0000:81:01.0", "0000:82:00.0", "a-file"}},
		{name: "empty", rel: "empty", want: []string{}},
		{name: "missing", rel: "class/net", wantNoEnt: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.ReadDir(tt.rel)
			if tt.wantNoEnt {
				if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), r.Path(tt.rel)) {
					t.Fatalf("ReadDir() = %q, %v; want fs.ErrNotExist naming %s", got, err, r.Path(tt.rel))
				}
				return
			}
			if err != nil {
				t.Fatalf("ReadDir() error: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ReadDir() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestExists(t *testing.T) {
	r := newRoot(t, map[string]string{"devices/x/vendor": "0x1425"})
	if err := os.Symlink("devices/x", r.Path("good")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("nowhere", r.Path("dangling")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		rel  string
		want bool
	}{
		{"devices/x/vendor", true},
		{"devices/x", true},
		{"good", true},
		{"good/vendor", true},
		{"dangling", false},
		{"devices/x/device", false},
		{"devices/x/vendor/below-a-file", false},
	}
	for _, tt := range tests {
		t.Run(tt.rel, func(t *testing.T) {
			if got := r.Exists(tt.rel); got != tt.want {
				t.Errorf("Exists(%q) = %v, want %v", tt.rel, got, tt.want)
			}
		})
	}
}

func TestWrite(t *testing.T) {
	t.Run("existing file is replaced", func(t *testing.T) {
		r := newRoot(t, map[string]string{"sriov_numvfs": "16\n"})
		if err := r.Write("sriov_numvfs", "4"); err != nil {
			t.Fatalf("Write() error: %v", err)
		}
		got, err := os.ReadFile(r.Path("sriov_numvfs"))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff("4", string(got)); diff != "" {
			t.Errorf("file after Write() mismatch (-want +got):\n%s", diff)
		}
	})
	t.Run("missing file is not created", func(t *testing.T) {
		r := newRoot(t, nil)
		err := r.Write("sriov_numvfs", "4")
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Write() error %v, want fs.ErrNotExist", err)
		}
		if !strings.Contains(err.Error(), r.Path("sriov_numvfs")) {
			t.Errorf("Write() error %q does not name the full path", err)
		}
		if r.Exists("sriov_numvfs") {
			t.Error("Write() created a missing attribute file")
		}
	})
	t.Run("directory", func(t *testing.T) {
		r := newRoot(t, map[string]string{"dir/x": ""})
		if err := r.Write("dir", "1"); err == nil || !strings.Contains(err.Error(), r.Path("dir")) {
			t.Errorf("Write(dir) error %v, want one naming %s", err, r.Path("dir"))
		}
	})
}

// FuzzReadHex writes arbitrary content to an attribute file. ReadHex must not panic,
// and Dir.ReadHex (discovery's reader) must give the same answer; an error is a
// *ParseError or *fs.PathError on one line that names the file; a success is one
// hexadecimal number (optionally 0x-prefixed) with that value, that fits the bit
// size.
func FuzzReadHex(f *testing.F) {
	for _, s := range []string{"0x1425\n", "680d", "0X680D", "", "0x", "0x0x1", "0x0X1", " 0x1 \n", "0x1ffff", "-1", "+1", "1_0", "ffffffffffffffff", "0x10000000000000000", "\x00", "0x\u00a0"} {
		f.Add([]byte(s), uint8(16))
	}
	f.Add([]byte("0x020000\n"), uint8(24))
	f.Add([]byte("0xff"), uint8(8))
	f.Add([]byte("ffffffffffffffff"), uint8(64))
	r, d := fuzzRoot(f)
	f.Fuzz(func(t *testing.T, content []byte, bits uint8) {
		b := int(bits%64) + 1 // 1-64
		if err := os.WriteFile(r.Path("attr"), content, 0o644); err != nil {
			t.Fatal(err)
		}
		v, err := r.ReadHex("attr", b)
		dv, derr := d.ReadHex("attr", b)
		if dv != v || (derr == nil) != (err == nil) {
			t.Fatalf("ReadHex(%q, %d) = %#x, %v; Dir.ReadHex = %#x, %v", content, b, v, err, dv, derr)
		}
		if err != nil {
			checkReadError(t, err, r.Path("attr"))
			checkReadError(t, derr, r.Path("attr"))
			return
		}
		if b < 64 && v >= 1<<b {
			t.Fatalf("ReadHex(%q, %d) = %#x, does not fit %d bits", content, b, v, b)
		}
		s := strings.TrimSpace(string(content))
		h, ok := strings.CutPrefix(s, "0x")
		if !ok {
			h, _ = strings.CutPrefix(s, "0X")
		}
		if h == "" || strings.Trim(h, "0123456789abcdefABCDEF") != "" {
			t.Fatalf("ReadHex(%q) = %#x, but %q is not a hexadecimal number", content, v, s)
		}
		if got := strings.TrimLeft(strings.ToLower(h), "0"); got != strconv.FormatUint(v, 16) && (got != "" || v != 0) {
			t.Fatalf("ReadHex(%q) = %#x, does not round-trip (digits %q)", content, v, got)
		}
	})
}

// FuzzReadInt writes arbitrary content to an attribute file. ReadInt must not panic,
// and Dir.ReadInt must give the same answer; an error is a *ParseError or
// *fs.PathError on one line that names the file; a success is a decimal integer
// with that value, whose canonical form reads back the same.
func FuzzReadInt(f *testing.F) {
	for _, s := range []string{"0\n", "16\n", "-1\n", "  248 ", "", "garbage", "0x10", "+5", "-0", "007", "9223372036854775807", "9223372036854775808", "-9223372036854775808", "1 2", "\x00", "٣"} {
		f.Add([]byte(s))
	}
	r, d := fuzzRoot(f)
	f.Fuzz(func(t *testing.T, content []byte) {
		if err := os.WriteFile(r.Path("attr"), content, 0o644); err != nil {
			t.Fatal(err)
		}
		v, err := r.ReadInt("attr")
		dv, derr := d.ReadInt("attr")
		if dv != v || (derr == nil) != (err == nil) {
			t.Fatalf("ReadInt(%q) = %d, %v; Dir.ReadInt = %d, %v", content, v, err, dv, derr)
		}
		if err != nil {
			checkReadError(t, err, r.Path("attr"))
			checkReadError(t, derr, r.Path("attr"))
			return
		}
		s := strings.TrimSpace(string(content))
		if strings.Trim(strings.TrimLeft(s, "+-"), "0123456789") != "" {
			t.Fatalf("ReadInt(%q) = %d, but %q is not a decimal integer", content, v, s)
		}
		w, err := strconv.ParseInt(s, 10, 64)
		if err != nil || int(w) != v {
			t.Fatalf("ReadInt(%q) = %d, does not round-trip (%d, %v)", content, v, w, err)
		}
		// The canonical form reads back to the same value.
		if err := os.WriteFile(r.Path("attr"), []byte(strconv.Itoa(v)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if again, err := r.ReadInt("attr"); err != nil || again != v {
			t.Fatalf("ReadInt(%q) = %d, %v; want %d", strconv.Itoa(v), again, err, v)
		}
	})
}

// FuzzReadString writes content followed by pad filler bytes (pad modulo 128 KiB,
// so that sizes on both sides of the 64 KiB limit are cheap to reach) to an
// attribute file. ReadString and Dir.ReadString must agree: the content with
// surrounding white space removed up to 64 KiB, beyond that an error naming the file.
func FuzzReadString(f *testing.F) {
	const limit = 64 << 10
	f.Add([]byte("0x1425\n"), uint32(0))
	f.Add([]byte("Custom T440 2-xaui, 2-xfi\n"), uint32(0))
	f.Add([]byte(" \t\n"), uint32(0))
	f.Add([]byte(""), uint32(0))
	f.Add([]byte("a"), uint32(4095))               // one byte past the first read buffer
	f.Add([]byte("a"), uint32(limit-1))            // exactly 64 KiB
	f.Add([]byte("ab"), uint32(limit-1))           // one byte over
	f.Add([]byte("\x00\xff\n"), uint32(2*limit-3)) // twice the limit
	r, d := fuzzRoot(f)
	f.Fuzz(func(t *testing.T, content []byte, pad uint32) {
		data := append(append([]byte(nil), content...), bytes.Repeat([]byte{'x'}, int(pad%(2*limit)))...)
		if err := os.WriteFile(r.Path("attr"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := r.ReadString("attr")
		ds, derr := d.ReadString("attr")
		if len(data) > limit {
			if err == nil || derr == nil {
				t.Fatalf("%d bytes: ReadString() error %v, Dir.ReadString() error %v; want both to refuse more than 64 KiB", len(data), err, derr)
			}
			checkReadError(t, err, r.Path("attr"))
			checkReadError(t, derr, r.Path("attr"))
			return
		}
		if err != nil || derr != nil {
			t.Fatalf("%d bytes: ReadString() error %v, Dir.ReadString() error %v", len(data), err, derr)
		}
		if want := strings.TrimSpace(string(data)); s != want || ds != want {
			t.Fatalf("%d bytes: ReadString() = %d bytes, Dir.ReadString() = %d bytes; want %d", len(data), len(s), len(ds), len(want))
		}
	})
}

// FuzzLinkBase makes a symbolic link with an arbitrary target (as the kernel's
// driver, physfn, virtfnN and iommu_group links are, with any depth of topology).
// Readlink must return the target as stored; LinkBase and Dir.LinkBase must agree:
// the target's last element, a name without '/' that is not "." or "..", or a
// *ParseError on one line naming the link.
func FuzzLinkBase(f *testing.F) {
	for _, s := range []string{
		"../../../devices/pci0000:80/0000:80:03.0/0000:81:00.0",
		"../../../../bus/pci/drivers/cxgb4vf",
		"../../../../../kernel/iommu_groups/52",
		"/sys/kernel/iommu_groups/7",
		"../../drivers/cxgb4vf/",
		".", "..", "/", "//", "a/..", "a/.", "x",
		"../../../" + strings.Repeat("0000:80:03.0/", 40) + "0000:81:01.4", // a deep PCIe topology
	} {
		f.Add(s)
	}
	r, d := fuzzRoot(f)
	f.Fuzz(func(t *testing.T, target string) {
		link := r.Path("link")
		if err := os.Remove(link); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		if err := os.Symlink(target, link); err != nil {
			t.Skip("not a possible link target") // empty, NUL, longer than the kernel takes
		}
		got, err := r.Readlink("link")
		if err != nil || got != target {
			t.Fatalf("Readlink() = %q, %v; want %q", got, err, target)
		}
		base, err := r.LinkBase("link")
		dbase, derr := d.LinkBase("link")
		if base != dbase || (err == nil) != (derr == nil) {
			t.Fatalf("target %q: LinkBase() = %q, %v; Dir.LinkBase() = %q, %v", target, base, err, dbase, derr)
		}
		if err != nil {
			var pe *sysfs.ParseError
			if !errors.As(err, &pe) || !errors.As(derr, &pe) {
				t.Fatalf("target %q: LinkBase() error %T %v, Dir.LinkBase() error %T %v; want *sysfs.ParseError", target, err, err, derr, derr)
			}
			checkReadError(t, err, link)
			checkReadError(t, derr, link)
			return
		}
		if base != filepath.Base(target) || base == "" || base == "." || base == ".." || strings.Contains(base, "/") {
			t.Fatalf("target %q: LinkBase() = %q, want its last element", target, base)
		}
	})
}

// fuzzRoot returns an empty root for a fuzz target and the same directory opened
// as a Dir, the reader discovery uses.
func fuzzRoot(f *testing.F) (sysfs.Root, *sysfs.Dir) {
	f.Helper()
	r := sysfs.Root(f.TempDir())
	d, err := r.OpenDir("")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = d.Close() })
	return r, d
}

// checkReadError checks a reader's error: a *ParseError or *fs.PathError, on one
// line, that names the file.
func checkReadError(t *testing.T, err error, path string) {
	t.Helper()
	var pe *sysfs.ParseError
	var pathErr *fs.PathError
	if !errors.As(err, &pe) && !errors.As(err, &pathErr) {
		t.Fatalf("error %T %v, want *sysfs.ParseError or *fs.PathError", err, err)
	}
	if msg := err.Error(); !strings.Contains(msg, path) || strings.ContainsAny(msg, "\r\n") {
		t.Fatalf("error %q is not one line naming %s", msg, path)
	}
}

func ptr[T any](v T) *T { return &v }
