package uevent

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// kernelAdd is a uevent as the kernel sends it when a VF appears.
const kernelAdd = "add@/devices/pci0000:80/0000:80:03.0/0000:81:01.0\x00ACTION=add\x00DEVPATH=/devices/pci0000:80/0000:80:03.0/0000:81:01.0\x00" +
	"SUBSYSTEM=pci\x00PCI_CLASS=20000\x00PCI_ID=1425:680D\x00PCI_SUBSYS_ID=1425:0000\x00PCI_SLOT_NAME=0000:81:01.0\x00" +
	"MODALIAS=pci:v00001425d0000680Dsv00001425sd00000000bc02sc00i00\x00SEQNUM=4711\x00"

func TestParseKernelMessage(t *testing.T) {
	m, err := Parse([]byte(kernelAdd))
	if err != nil {
		t.Fatal(err)
	}
	if m.Action != "add" || m.DevPath != "/devices/pci0000:80/0000:80:03.0/0000:81:01.0" || m.Subsystem() != "pci" || m.Seq() != 4711 {
		t.Errorf("parsed %+v", m)
	}
	if m.Env["PCI_ID"] != "1425:680D" || len(m.Env) != 9 {
		t.Errorf("env %v", m.Env)
	}
	back, err := Parse(m.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(m, back); diff != "" {
		t.Errorf("Parse(Marshal) differs (-first +again):\n%s", diff)
	}
}

func TestParseRefuses(t *testing.T) {
	ok := strings.TrimSuffix(kernelAdd, "\x00")
	for _, c := range []struct{ name, msg, want string }{
		{"empty", "", "not ended by a NUL"},
		{"no final NUL", ok, "not ended by a NUL"},
		{"libudev", "libudev\x00\xfe\xed\xca\xfe\x00", "want ACTION@/DEVPATH"},
		{"no @", "add/devices/x\x00ACTION=add\x00", "want ACTION@/DEVPATH"},
		{"relative devpath", "add@devices/x\x00ACTION=add\x00DEVPATH=devices/x\x00SUBSYSTEM=pci\x00SEQNUM=1\x00", "want ACTION@/DEVPATH"},
		{"upper-case action", "ADD@/devices/x\x00ACTION=ADD\x00DEVPATH=/devices/x\x00SUBSYSTEM=pci\x00SEQNUM=1\x00", "want ACTION@/DEVPATH"},
		{"empty field", "add@/devices/x\x00ACTION=add\x00\x00DEVPATH=/devices/x\x00SUBSYSTEM=pci\x00SEQNUM=1\x00", "want KEY=VALUE"},
		{"lower-case key", "add@/devices/x\x00ACTION=add\x00DEVPATH=/devices/x\x00subsystem=pci\x00SEQNUM=1\x00", "want KEY=VALUE"},
		{"no =", "add@/devices/x\x00ACTION=add\x00DEVPATH=/devices/x\x00SUBSYSTEM\x00SEQNUM=1\x00", "want KEY=VALUE"},
		{"twice", "add@/devices/x\x00ACTION=add\x00DEVPATH=/devices/x\x00SUBSYSTEM=pci\x00SUBSYSTEM=net\x00SEQNUM=1\x00", "SUBSYSTEM given twice"},
		{"action differs", "add@/devices/x\x00ACTION=remove\x00DEVPATH=/devices/x\x00SUBSYSTEM=pci\x00SEQNUM=1\x00", "differs from its header"},
		{"devpath differs", "add@/devices/x\x00ACTION=add\x00DEVPATH=/devices/y\x00SUBSYSTEM=pci\x00SEQNUM=1\x00", "differs from its header"},
		{"no subsystem", "add@/devices/x\x00ACTION=add\x00DEVPATH=/devices/x\x00SEQNUM=1\x00", "without SUBSYSTEM"},
		{"no seqnum", "add@/devices/x\x00ACTION=add\x00DEVPATH=/devices/x\x00SUBSYSTEM=pci\x00", "SEQNUM"},
		{"bad seqnum", "add@/devices/x\x00ACTION=add\x00DEVPATH=/devices/x\x00SUBSYSTEM=pci\x00SEQNUM=-1\x00", "SEQNUM"},
		{"too large", "add@/" + strings.Repeat("x", MaxSize) + "\x00", "at most 8192"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, err := Parse([]byte(c.msg))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Parse = %+v, %v; want an error with %q", m, err, c.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
		})
	}
}

func TestMarshalOrder(t *testing.T) {
	m := &Message{Action: "bind", DevPath: "/devices/a/0000:81:01.0", Env: map[string]string{
		"SEQNUM": "9", "DRIVER": "cxgb4vf", "SUBSYSTEM": "pci", "PCI_ID": "1425:680D",
	}}
	want := "bind@/devices/a/0000:81:01.0\x00ACTION=bind\x00DEVPATH=/devices/a/0000:81:01.0\x00SUBSYSTEM=pci\x00DRIVER=cxgb4vf\x00PCI_ID=1425:680D\x00SEQNUM=9\x00"
	if got := string(m.Marshal()); got != want {
		t.Errorf("Marshal:\n got %q\nwant %q", got, want)
	}
	back, err := Parse(m.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if back.Env["ACTION"] != "bind" || back.Env["DEVPATH"] != m.DevPath {
		t.Errorf("Parse(Marshal) env %v", back.Env)
	}
}

// FuzzParse: Parse never panics, and what it accepts survives Marshal unchanged.
func FuzzParse(f *testing.F) {
	f.Add([]byte(kernelAdd))
	f.Add([]byte("remove@/devices/virtual/net/veth0\x00ACTION=remove\x00DEVPATH=/devices/virtual/net/veth0\x00SUBSYSTEM=net\x00INTERFACE=veth0\x00IFINDEX=7\x00SEQNUM=12\x00"))
	f.Add([]byte("libudev\x00\xfe\xed\xca\xfe"))
	f.Add([]byte("add@/\x00ACTION=add\x00DEVPATH=/\x00SUBSYSTEM=x\x00SEQNUM=0\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			if m != nil {
				t.Fatal("a message with an error")
			}
			return
		}
		again, err := Parse(m.Marshal())
		if err != nil {
			t.Fatalf("Parse(Marshal(%q)): %v", b, err)
		}
		if diff := cmp.Diff(m, again); diff != "" {
			t.Fatalf("Parse(Marshal) differs (-first +again):\n%s", diff)
		}
	})
}
