package vf_test

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

func TestParsePCIAddr(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    vf.PCIAddr
		wantStr string // String() of the result
		wantErr bool
	}{
		{name: "full", in: "0000:81:01.0", want: vf.PCIAddr{Bus: 0x81, Device: 1}, wantStr: "0000:81:01.0"},
		{name: "full function 7", in: "0000:81:1f.7", want: vf.PCIAddr{Bus: 0x81, Device: 0x1f, Function: 7}, wantStr: "0000:81:1f.7"},
		{name: "domain", in: "0001:00:00.0", want: vf.PCIAddr{Domain: 1}, wantStr: "0001:00:00.0"},
		{name: "short", in: "81:01.4", want: vf.PCIAddr{Bus: 0x81, Device: 1, Function: 4}, wantStr: "0000:81:01.4"},
		{name: "upper case", in: "00AB:8F:1F.7", want: vf.PCIAddr{Domain: 0xab, Bus: 0x8f, Device: 0x1f, Function: 7}, wantStr: "00ab:8f:1f.7"},
		{name: "mixed case", in: "0000:aF:0A.1", want: vf.PCIAddr{Bus: 0xaf, Device: 0xa, Function: 1}, wantStr: "0000:af:0a.1"},
		{name: "5-digit VMD domain", in: "10000:e1:00.0", want: vf.PCIAddr{Domain: 0x10000, Bus: 0xe1}, wantStr: "10000:e1:00.0"},
		{name: "max", in: "fffff:ff:1f.7", want: vf.PCIAddr{Domain: 0xfffff, Bus: 0xff, Device: 0x1f, Function: 7}, wantStr: "fffff:ff:1f.7"},
		{name: "zero", in: "0000:00:00.0", want: vf.PCIAddr{}, wantStr: "0000:00:00.0"},
		{name: "5-digit domain with a leading zero", in: "00000:81:01.0", want: vf.PCIAddr{Bus: 0x81, Device: 1}, wantStr: "0000:81:01.0"},

		{name: "empty", in: "", wantErr: true},
		{name: "path traversal", in: "../../etc", wantErr: true},
		{name: "path traversal shaped", in: "0000:../01.0", wantErr: true},
		{name: "slash", in: "0000:81/01.0", wantErr: true},
		{name: "NUL byte", in: "0000:81:01.0\x00", wantErr: true},
		{name: "NUL inside", in: "0000:8\x00:01.0", wantErr: true},
		{name: "device 20", in: "0000:81:20.0", wantErr: true},
		{name: "device ff", in: "0000:81:ff.0", wantErr: true},
		{name: "function 8", in: "0000:81:01.8", wantErr: true},
		{name: "function f", in: "0000:81:01.f", wantErr: true},
		{name: "extra colons", in: "0000:00:81:01.0", wantErr: true},
		{name: "double colon", in: "0000::81:01.0", wantErr: true},
		{name: "over-long", in: "0000:81:01.0000000000", wantErr: true},
		{name: "over-long domain", in: "000000:81:01.0", wantErr: true},
		{name: "6-digit domain fits 13 bytes", in: "100000:1:01.0", wantErr: true},
		{name: "short domain", in: "000:81:01.0", wantErr: true},
		{name: "one-digit bus", in: "0000:1:01.0", wantErr: true},
		{name: "three-digit bus", in: "0000:081:01.0", wantErr: true},
		{name: "one-digit device", in: "0000:81:1.0", wantErr: true},
		{name: "two-digit function", in: "0000:81:01.00", wantErr: true},
		{name: "no function", in: "0000:81:01", wantErr: true},
		{name: "two dots", in: "0000:81:01.0.0", wantErr: true},
		{name: "no colon", in: "810100", wantErr: true},
		{name: "sign", in: "+000:81:01.0", wantErr: true},
		{name: "0x prefix", in: "0x00:81:01.0", wantErr: true},
		{name: "spaces", in: " 0000:81:01.0", wantErr: true},
		{name: "trailing newline", in: "0000:81:01.0\n", wantErr: true},
		{name: "non-hex", in: "0000:8g:01.0", wantErr: true},
		{name: "unicode digit", in: "0000:8٣:01.0", wantErr: true},
		{name: "interface name", in: "enp129s1", wantErr: true},
		{name: "mgmtpf", in: "mgmtpf1,0", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := vf.ParsePCIAddr(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParsePCIAddr(%q) = %v, want an error", tt.in, got)
				}
				if got != (vf.PCIAddr{}) {
					t.Errorf("ParsePCIAddr(%q) returned %+v with its error, want the zero address", tt.in, got)
				}
				if !strings.Contains(err.Error(), "invalid PCI address") {
					t.Errorf("ParsePCIAddr(%q) error %q does not say what is wrong", tt.in, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePCIAddr(%q) error: %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParsePCIAddr(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
			if s := got.String(); s != tt.wantStr {
				t.Errorf("ParsePCIAddr(%q).String() = %q, want %q", tt.in, s, tt.wantStr)
			}
			again, err := vf.ParsePCIAddr(got.String())
			if err != nil || again != got {
				t.Errorf("ParsePCIAddr(%q) = %+v, %v; want %+v (round trip)", got.String(), again, err, got)
			}
		})
	}
}

func TestParsePCIAddrErrorQuotesInput(t *testing.T) {
	_, err := vf.ParsePCIAddr("../../etc")
	if err == nil || !strings.Contains(err.Error(), `"../../etc"`) {
		t.Errorf("ParsePCIAddr error %v, want one quoting the input", err)
	}
	long := strings.Repeat("a", 100)
	_, err = vf.ParsePCIAddr(long)
	if err == nil || strings.Contains(err.Error(), long) || !strings.Contains(err.Error(), strings.Repeat("a", 32)+"…") {
		t.Errorf("ParsePCIAddr(100 bytes) error %v, want the input cut to 32 bytes", err)
	}
}

func TestMustParsePCIAddr(t *testing.T) {
	if got, want := vf.MustParsePCIAddr("0000:81:00.4"), (vf.PCIAddr{Bus: 0x81, Function: 4}); got != want {
		t.Errorf("MustParsePCIAddr() = %+v, want %+v", got, want)
	}
	defer func() {
		if recover() == nil {
			t.Error("MustParsePCIAddr(bad) did not panic")
		}
	}()
	vf.MustParsePCIAddr("bad")
}

func TestPCIAddrSlot(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"0000:81:00.0", "0000:81:00"},
		{"0000:81:00.4", "0000:81:00"},
		{"0000:81:01.5", "0000:81:01"},
		{"10000:e1:1f.7", "10000:e1:1f"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := vf.MustParsePCIAddr(tt.in).Slot(); got != tt.want {
				t.Errorf("Slot() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPCIAddrIsZero(t *testing.T) {
	if !(vf.PCIAddr{}).IsZero() {
		t.Error("PCIAddr{}.IsZero() = false")
	}
	if vf.MustParsePCIAddr("0000:00:00.1").IsZero() {
		t.Error("0000:00:00.1 IsZero() = true")
	}
}

func TestPCIAddrText(t *testing.T) {
	a := vf.MustParsePCIAddr("0000:81:01.4")
	b, err := a.MarshalText()
	if err != nil || string(b) != "0000:81:01.4" {
		t.Fatalf("MarshalText() = %q, %v; want %q", b, err, "0000:81:01.4")
	}
	var got vf.PCIAddr
	if err := got.UnmarshalText([]byte("81:01.4")); err != nil || got != a {
		t.Errorf("UnmarshalText(81:01.4) = %+v, %v; want %+v", got, err, a)
	}
	keep := vf.MustParsePCIAddr("0000:82:00.0")
	got = keep
	if err := got.UnmarshalText([]byte("../x")); err == nil {
		t.Error("UnmarshalText(../x) succeeded, want an error")
	}
	if got != keep {
		t.Errorf("UnmarshalText(bad) changed the address to %+v", got)
	}

	// Through encoding/json, as map keys and values.
	type doc struct {
		PF  vf.PCIAddr            `json:"pf"`
		VFs map[vf.PCIAddr]string `json:"vfs"`
	}
	in := doc{PF: vf.MustParsePCIAddr("0000:81:00.0"), VFs: map[vf.PCIAddr]string{a: "enp129s1f4"}}
	j, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"pf":"0000:81:00.0","vfs":{"0000:81:01.4":"enp129s1f4"}}`; string(j) != want {
		t.Errorf("json.Marshal() mismatch (-want +got):\n%s", cmp.Diff(want, string(j)))
	}
	var out doc
	if err := json.Unmarshal(j, &out); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, out); diff != "" {
		t.Errorf("json round trip mismatch (-want +got):\n%s", diff)
	}
	if err := json.Unmarshal([]byte(`{"pf":"0000:81:20.0"}`), &out); err == nil {
		t.Error("json.Unmarshal of device 20 succeeded, want an error")
	}
}

func TestPCIAddrCompare(t *testing.T) {
	ordered := []string{
		"0000:00:00.0",
		"0000:00:00.7",
		"0000:00:01.0",
		"0000:00:1f.7",
		"0000:01:00.0",
		"0000:81:00.0",
		"0000:81:00.4",
		"0000:81:01.0",
		"0000:ff:1f.7",
		"0001:00:00.0",
		"10000:00:00.0",
	}
	for i, x := range ordered {
		for j, y := range ordered {
			got := vf.MustParsePCIAddr(x).Compare(vf.MustParsePCIAddr(y))
			want := 0
			switch {
			case i < j:
				want = -1
			case i > j:
				want = 1
			}
			if got != want {
				t.Errorf("%s.Compare(%s) = %d, want %d", x, y, got, want)
			}
		}
	}
	shuffled := []vf.PCIAddr{}
	for _, i := range []int{5, 10, 0, 3, 7, 1, 9, 2, 8, 4, 6} {
		shuffled = append(shuffled, vf.MustParsePCIAddr(ordered[i]))
	}
	slices.SortFunc(shuffled, vf.PCIAddr.Compare)
	var got []string
	for _, a := range shuffled {
		got = append(got, a.String())
	}
	if diff := cmp.Diff(ordered, got); diff != "" {
		t.Errorf("sorted by Compare mismatch (-want +got):\n%s", diff)
	}
}

// FuzzParsePCIAddr checks that ParsePCIAddr never panics and that a parsed address
// is safe in a file name and re-parses from its canonical form.
func FuzzParsePCIAddr(f *testing.F) {
	for _, s := range []string{"0000:81:01.0", "81:01.4", "00AB:8F:1F.7", "10000:e1:00.0", "fffff:ff:1f.7", "", "../../etc", "0000:81:01.0\x00", "0000:81:20.0", "0000:81:01.8", "0000:00:81:01.0", ":.", "::", "0000:81:01.", "0000:8٣:01.0", "+000:81:01.0", "00000:00:00.0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := vf.ParsePCIAddr(s)
		if err != nil {
			// One line that quotes the input (cut to 32 bytes), so that a hostile
			// deviceID can neither flood nor split the runtime's log.
			q := s
			if len(q) > 32 {
				q = q[:32] + "…"
			}
			if msg := err.Error(); !strings.Contains(msg, strconv.Quote(q)) || strings.ContainsAny(msg, "\r\n") || len(msg) > 256 {
				t.Fatalf("ParsePCIAddr(%q) error %q: want one line quoting the input", s, msg)
			}
			if !a.IsZero() {
				t.Fatalf("ParsePCIAddr(%q) = %+v with an error", s, a)
			}
			return
		}
		str := a.String()
		if strings.ContainsAny(str, "/\x00") {
			t.Fatalf("ParsePCIAddr(%q).String() = %q contains '/' or NUL", s, str)
		}
		if a.Domain > 0xfffff || a.Device > 31 || a.Function > 7 {
			t.Fatalf("ParsePCIAddr(%q) = %+v out of range", s, a)
		}
		// String() is the input up to case, a missing domain and a 5-digit domain's
		// leading zero ("00000:00:00.0" is domain 0).
		if canon := strings.TrimPrefix(strings.ToLower(s), "0"); !strings.EqualFold(str, s) && str != "0000:"+strings.ToLower(s) && str != canon {
			t.Fatalf("ParsePCIAddr(%q).String() = %q is not the input's canonical form", s, str)
		}
		b, err := vf.ParsePCIAddr(str)
		if err != nil {
			t.Fatalf("ParsePCIAddr(%q) = %+v, but its String() %q does not parse: %v", s, a, str, err)
		}
		if b != a {
			t.Fatalf("ParsePCIAddr(%q) = %+v, re-parsed %q = %+v", s, a, str, b)
		}
	})
}
