package vf

import (
	"errors"
	"net"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/chelsio-k8s/chelsio-sriov/internal/roottest"
)

func TestVFConfigOf(t *testing.T) {
	mac := func(s string) net.HardwareAddr {
		m, err := net.ParseMAC(s)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	tests := []struct {
		name string
		in   netlink.VfInfo
		want VFConfig
	}{
		{
			// What cxgb4 reports for a fresh VF: spoofchk and trust unreported.
			name: "fresh cxgb4 VF",
			in:   netlink.VfInfo{ID: 0, Mac: mac("00:00:00:00:00:00"), Spoofchk: true, Trust: 0xffffffff, RssQuery: 0xffffffff},
			want: VFConfig{LinkState: LinkStateAuto},
		},
		{
			name: "everything set",
			in:   netlink.VfInfo{ID: 3, Mac: mac("02:AB:00:00:00:03"), Vlan: 100, MaxTxRate: 1000, TxRate: 1000, LinkState: 2, Spoofchk: true, Trust: 0xffffffff},
			want: VFConfig{MAC: "02:ab:00:00:00:03", VLAN: 100, MaxTxRate: 1000, LinkState: LinkStateDisable},
		},
		{
			name: "enable",
			in:   netlink.VfInfo{LinkState: 1},
			want: VFConfig{LinkState: LinkStateEnable},
		},
		{
			name: "kernel without IFLA_VF_RATE: the old tx rate",
			in:   netlink.VfInfo{TxRate: 500},
			want: VFConfig{MaxTxRate: 500, LinkState: LinkStateAuto},
		},
		{
			name: "unknown link state kept as its number",
			in:   netlink.VfInfo{LinkState: 7},
			want: VFConfig{LinkState: "7"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, vfConfigOf(tt.in)); diff != "" {
				t.Errorf("vfConfigOf() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNetlinkMgmtBadArguments(t *testing.T) {
	// Refused before any netlink request, so no privilege is needed.
	m := NetlinkMgmt{}
	checkErrno(t, m.SetVFVLAN("mgmtpf1,0", -1, 100), OpSetVLAN, "mgmtpf1,0", -1, unix.EINVAL)
	checkErrno(t, m.SetVFLinkState("mgmtpf1,0", 2, "on"), OpSetLinkState, "mgmtpf1,0", 2, unix.EINVAL)
}

func checkErrno(t *testing.T, err error, op, mgmt string, vf int, errno unix.Errno) {
	t.Helper()
	var ve *VFError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v (%T), want a *VFError", err, err)
	}
	if ve.Op != op || ve.Mgmt != mgmt || ve.VF != vf {
		t.Errorf("VFError{Op: %q, Mgmt: %q, VF: %d}, want {%q, %q, %d}", ve.Op, ve.Mgmt, ve.VF, op, mgmt, vf)
	}
	if !errors.Is(err, errno) {
		t.Errorf("error %q does not match %v with errors.Is", err, errno)
	}
}

// TestPrivilegedNetlinkMgmtRefused sends every VF operation to a veth, which has no
// VF operations, in a fresh network namespace: each must come back as a *VFError
// that keeps the kernel's errno.
func TestPrivilegedNetlinkMgmtRefused(t *testing.T) {
	roottest.Require(t)
	tns, err := testutils.NewNS() // uniquely named under /run/netns
	if err != nil {
		t.Fatalf("NewNS() error: %v", err)
	}
	t.Cleanup(func() {
		if err := tns.Close(); err != nil {
			t.Errorf("close netns: %v", err)
		}
		if err := roottest.RemoveNetns(tns); err != nil {
			t.Errorf("remove netns: %v", err)
		}
	})
	nsh, err := netns.GetFromPath(tns.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer nsh.Close()
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	const dev = "mgmtveth0"
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: dev}, PeerName: "mgmtveth1"}); err != nil {
		t.Fatalf("add veth: %v", err)
	}

	unicast, _ := net.ParseMAC("02:00:00:00:00:01")
	calls := []struct {
		op    string
		call  func(m Mgmt) error
		errno unix.Errno
	}{
		{OpSetVLAN, func(m Mgmt) error { return m.SetVFVLAN(dev, 0, 100) }, unix.EOPNOTSUPP},
		{OpSetMAC, func(m Mgmt) error { return m.SetVFMAC(dev, 0, unicast) }, unix.EOPNOTSUPP},
		{OpSetRate, func(m Mgmt) error { return m.SetVFRate(dev, 0, 1000) }, unix.EOPNOTSUPP},
		{OpSetLinkState, func(m Mgmt) error { return m.SetVFLinkState(dev, 0, LinkStateEnable) }, unix.EOPNOTSUPP},
		{OpVFConfig, func(m Mgmt) error { _, err := m.VFConfig(dev, 0); return err }, unix.ENOENT},
	}
	t.Run("handle", func(t *testing.T) {
		m := NetlinkMgmt{Handle: h}
		for _, c := range calls {
			t.Run(c.op, func(t *testing.T) {
				checkErrno(t, c.call(m), c.op, dev, 0, c.errno)
			})
		}
		checkErrno(t, m.SetVFVLAN("nosuchdev0", 1, 100), OpSetVLAN, "nosuchdev0", 1, unix.ENODEV)
		_, err := m.VFConfig("nosuchdev0", 1)
		checkErrno(t, err, OpVFConfig, "nosuchdev0", 1, unix.ENODEV)
	})
	t.Run("zero value inside the namespace", func(t *testing.T) {
		for _, c := range calls {
			t.Run(c.op, func(t *testing.T) {
				err := tns.Do(func(ns.NetNS) error { return c.call(NetlinkMgmt{}) })
				checkErrno(t, err, c.op, dev, 0, c.errno)
			})
		}
	})
}
