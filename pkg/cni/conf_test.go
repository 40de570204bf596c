package cni

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/google/go-cmp/cmp"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

func TestLoadRefusesBadInput(t *testing.T) {
	const base = `"cniVersion":"1.0.0","name":"n","type":"chelsio-sriov","deviceID":"0000:81:01.0"`
	tests := []struct {
		name    string
		conf    string
		args    string
		code    uint
		mention string // the key the message must name
	}{
		{"unknown key", `{` + base + `,"vlna":5}`, "", 7, "vlna"},
		{"vlan too big", `{` + base + `,"vlan":4095}`, "", 7, `"vlan"`},
		{"vlan negative", `{` + base + `,"vlan":-1}`, "", 7, `"vlan"`},
		{"vlanQoS set", `{` + base + `,"vlan":5,"vlanQoS":3}`, "", 7, `"vlanQoS"`},
		{"vlanQoS out of range", `{` + base + `,"vlan":5,"vlanQoS":9}`, "", 7, `"vlanQoS"`},
		{"802.1ad", `{` + base + `,"vlan":5,"vlanProto":"802.1ad"}`, "", 7, `"vlanProto"`},
		{"bad vlanProto", `{` + base + `,"vlan":5,"vlanProto":"qinq"}`, "", 7, `"vlanProto"`},
		{"spoofchk on", `{` + base + `,"spoofchk":"on"}`, "", 7, `"spoofchk"`},
		{"trust on", `{` + base + `,"trust":"on"}`, "", 7, `"trust"`},
		{"trust garbage", `{` + base + `,"trust":"yes"}`, "", 7, `"trust"`},
		{"min_tx_rate", `{` + base + `,"min_tx_rate":100}`, "", 7, `"min_tx_rate"`},
		{"negative max_tx_rate", `{` + base + `,"max_tx_rate":-5}`, "", 7, `"max_tx_rate"`},
		{"bad link_state", `{` + base + `,"link_state":"up"}`, "", 7, `"link_state"`},
		{"mtu too small", `{` + base + `,"mtu":80}`, "", 7, `"mtu"`},
		{"mtu too big", `{` + base + `,"mtu":9601}`, "", 7, `"mtu"`},
		{"bad mac", `{` + base + `,"mac":"zz:00:00:00:00:01"}`, "", 7, `"mac"`},
		{"multicast mac", `{` + base + `,"mac":"01:00:5e:00:00:01"}`, "", 7, `"mac"`},
		{"zero mac in CNI_ARGS", `{` + base + `}`, "IgnoreUnknown=1;MAC=00:00:00:00:00:00", 7, "CNI_ARGS MAC"},
		{"bad runtimeConfig.mac", `{` + base + `,"runtimeConfig":{"mac":"nope"}}`, "", 7, "runtimeConfig.mac"},
		{"bad deviceID", `{"cniVersion":"1.0.0","name":"n","type":"t","deviceID":"../../etc"}`, "", 7, `"deviceID"`},
		{"deviceID with NUL", `{"cniVersion":"1.0.0","name":"n","type":"t","deviceID":"0000:81:01.0\u0000"}`, "", 7, `"deviceID"`},
		{"bad pciBusID", `{"cniVersion":"1.0.0","name":"n","type":"t","pciBusID":"81:1.0"}`, "", 7, `"pciBusID"`},
		{"relative dataDir", `{` + base + `,"dataDir":"state"}`, "", 7, `"dataDir"`},
		{"dataDir traversal", `{` + base + `,"dataDir":"/var/lib/../../etc"}`, "", 7, `"dataDir"`},
		{"dataDir NUL", `{` + base + `,"dataDir":"/var/lib/x\u0000y"}`, "", 7, `"dataDir"`},
		{"logFile relative", `{` + base + `,"logFile":"x.log"}`, "", 7, `"logFile"`},
		{"bad logLevel", `{` + base + `,"logLevel":"loud"}`, "", 7, `"logLevel"`},
		{"ipam without type", `{` + base + `,"ipam":{"subnet":"198.51.100.0/24"}}`, "", 7, `"ipam"`},
		{"ipam type with slash", `{` + base + `,"ipam":{"type":"../host-local"}}`, "", 7, `"ipam"`},
		{"vlan of wrong type", `{` + base + `,"vlan":"5"}`, "", 6, `vlan`},
		{"not JSON", `{`, "", 6, "decode"},
		{"old cniVersion", `{"cniVersion":"0.2.0","name":"n","type":"t"}`, "", 1, "cniVersion"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load([]byte(tt.conf), tt.args)
			if err == nil {
				t.Fatalf("Load() = %+v, want an error", c)
			}
			ce := AsCNIError(err)
			if ce.Code != tt.code {
				t.Errorf("code %d, want %d (%v)", ce.Code, tt.code, err)
			}
			if !strings.Contains(ce.Msg, tt.mention) {
				t.Errorf("message %q does not name %s", ce.Msg, tt.mention)
			}
			if strings.Contains(ce.Msg, "\n") {
				t.Errorf("message spans lines: %q", ce.Msg)
			}
		})
	}
}

func TestLoadAcceptsSriovCNIKeys(t *testing.T) {
	conf := `{"cniVersion":"0.3.1","name":"sriov-network","type":"chelsio-sriov",
		"deviceID":"0000:81:01.0","pciBusID":"0000:81:01.0","vlan":100,"vlanQoS":0,"vlanProto":"802.1Q",
		"mac":"0a:58:c6:33:64:01","spoofchk":"off","trust":"off","link_state":"enable",
		"min_tx_rate":0,"max_tx_rate":10000,"mtu":9000,"logLevel":"debug","logFile":"/var/log/chelsio-sriov.log",
		"dataDir":"/run/chelsio-sriov","ipam":{"type":"host-local","subnet":"198.51.100.0/24","anything":[1,2]},
		"dns":{"nameservers":["198.51.100.53"]},"capabilities":{"mac":true},"args":{"cni":{"x":1}},
		"runtimeConfig":{"mac":"0a:58:c6:33:64:02","ips":["198.51.100.7/24"],"deviceID":"0000:81:01.4"}}`
	c, err := Load([]byte(conf), "IgnoreUnknown=true;MAC=0a:58:c6:33:64:03;IgnoreUnknown=1")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.VF.String() != "0000:81:01.0" {
		t.Errorf("VF %s, want deviceID 0000:81:01.0 (deviceID wins over pciBusID and runtimeConfig)", c.VF)
	}
	if c.PodMAC.String() != "0a:58:c6:33:64:02" {
		t.Errorf("MAC %s, want runtimeConfig.mac", c.PodMAC)
	}
	if c.IPAMType != "host-local" || *c.MTU != 9000 || *c.VLAN != 100 || c.State != "enable" || c.DataDir != "/run/chelsio-sriov" {
		t.Errorf("unexpected %+v", c)
	}
	if !c.HasPFSettings() {
		t.Error("HasPFSettings() = false with vlan, mac, rate and link_state")
	}
}

func TestLoadDeviceIDPrecedenceAndDefaults(t *testing.T) {
	tests := []struct {
		name, conf, args, wantVF, wantMAC string
		pf                                bool
	}{
		{"pciBusID only", `{"cniVersion":"1.0.0","name":"n","type":"t","pciBusID":"0000:81:01.4"}`, "", "0000:81:01.4", "", false},
		{"runtimeConfig only", `{"cniVersion":"1.0.0","name":"n","type":"t","runtimeConfig":{"deviceID":"81:02.0"}}`, "", "0000:81:02.0", "", false},
		{"none", `{"cniVersion":"1.0.0","name":"n","type":"t"}`, "", "", "", false},
		{"CNI_ARGS MAC over mac", `{"cniVersion":"1.0.0","name":"n","type":"t","mac":"0a:58:c6:33:64:01"}`, "MAC=0a:58:c6:33:64:03", "", "0a:58:c6:33:64:03", true},
		{"seed NAD", `{"type":"chelsio-sriov","cniVersion":"0.3.1","name":"sriov-network","ipam":{"type":"host-local","subnet":"102.100.2.0/24","routes":[{"dst":"0.0.0.0/0"}],"gateway":"102.100.2.1"},"deviceID":"0000:81:01.0","pciBusID":"0000:81:01.0"}`, "", "0000:81:01.0", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load([]byte(tt.conf), tt.args)
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if !c.VF.IsZero() {
				got = c.VF.String()
			}
			if got != tt.wantVF {
				t.Errorf("VF %q, want %q", got, tt.wantVF)
			}
			gotMAC := ""
			if c.PodMAC != nil {
				gotMAC = c.PodMAC.String()
			}
			if gotMAC != tt.wantMAC {
				t.Errorf("MAC %q, want %q", gotMAC, tt.wantMAC)
			}
			if c.HasPFSettings() != tt.pf {
				t.Errorf("HasPFSettings() = %v, want %v", c.HasPFSettings(), tt.pf)
			}
			if c.DataDir != DefaultDataDir {
				t.Errorf("dataDir %q, want the default", c.DataDir)
			}
		})
	}
}

func TestAsCNIError(t *testing.T) {
	if e := AsCNIError(errors.New("boom")); e.Code != types.ErrInternal {
		t.Errorf("plain error code %d, want 999", e.Code)
	}
	if e := AsCNIError(withCode(CodeVFBusy, errors.New("busy"))); e.Code != CodeVFBusy || e.Msg != "busy" {
		t.Errorf("coded error = %+v", e)
	}
	if AsCNIError(nil) != nil {
		t.Error("AsCNIError(nil) != nil")
	}
	// A delegated plugin's error keeps its code and the context around it.
	ipam := &types.Error{Code: types.ErrInvalidNetworkConfig, Msg: "no IP addresses available in range set", Details: "198.51.100.1-198.51.100.2"}
	wrapped := fmt.Errorf("%w; undoing the ADD also failed: %w", fmt.Errorf("IPAM host-local ADD: %w", ipam), errors.New("move back: gone"))
	want := &types.Error{Code: types.ErrInvalidNetworkConfig, Msg: "IPAM host-local ADD: no IP addresses available in range set; 198.51.100.1-198.51.100.2; undoing the ADD also failed: move back: gone"}
	if diff := cmp.Diff(want, AsCNIError(wrapped)); diff != "" {
		t.Errorf("wrapped IPAM error mismatch (-want +got):\n%s", diff)
	}
	if e := AsCNIError(withCode(CodeNotAvailable, fmt.Errorf("IPAM: %w", ipam))); e.Code != CodeNotAvailable {
		t.Errorf("coded wrapper of an IPAM error: code %d, want %d", e.Code, CodeNotAvailable)
	}
	if e := AsCNIError(ipam); e != ipam {
		t.Errorf("a bare delegated error = %+v, want it unchanged", e)
	}
}

func FuzzLoad(f *testing.F) {
	f.Add([]byte(`{"cniVersion":"1.0.0","name":"n","type":"chelsio-sriov","deviceID":"0000:81:01.0","vlan":5,"mtu":9000}`), "MAC=0a:58:c6:33:64:03")
	f.Add([]byte(`{"cniVersion":"0.3.1","name":"n","type":"t","ipam":{"type":"host-local"},"runtimeConfig":{"mac":"x"}}`), "")
	f.Add([]byte(`{"dataDir":"/a/../b","logFile":"/tmp/x"}`), "IgnoreUnknown=1;IgnoreUnknown=true")
	f.Fuzz(func(t *testing.T, conf []byte, args string) {
		c, err := Load(conf, args)
		if err != nil {
			// A refusal: code 1 (version), 6 (JSON) or 7 (a key), one short line.
			e := AsCNIError(err)
			if e.Code != 1 && e.Code != CodeDecoding && e.Code != CodeInvalidConfig {
				t.Fatalf("Load error of code %d: %v", e.Code, err)
			}
			if e.Msg == "" || strings.ContainsAny(e.Msg, "\r\n") || len(e.Msg) > 512 {
				t.Fatalf("Load error is not one short line (%d bytes): %q", len(e.Msg), e.Msg)
			}
			return
		}
		checkLoaded(t, c)
		// Validation is a fixed point: the accepted config, written out and loaded
		// again, is accepted with the same meaning.
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("marshal the accepted config: %v", err)
		}
		again, err := Load(b, args)
		if err != nil {
			t.Fatalf("Load(%s) accepted, written out as %s, refused: %v", conf, b, err)
		}
		type meaning struct {
			VF                                           string
			DataDir, LogFile, IPAMType, MAC, State, Name string
			MTU, VLAN                                    *int
		}
		m := func(c *NetConf) meaning {
			return meaning{c.VF.String(), c.DataDir, c.LogFile, c.IPAMType, c.PodMAC.String(), string(c.State), c.Name, c.MTU, c.VLAN}
		}
		if diff := cmp.Diff(m(c), m(again)); diff != "" {
			t.Fatalf("Load(%s) and Load of it written out differ (-first +again):\n%s", conf, diff)
		}
	})
}

// checkLoaded checks what Load accepted against the rules it enforces.
func checkLoaded(t *testing.T, c *NetConf) {
	t.Helper()
	if c.MTU != nil && (*c.MTU < MinMTU || *c.MTU > MaxMTU) {
		t.Fatalf("accepted mtu %d", *c.MTU)
	}
	if c.VLAN != nil && (*c.VLAN < 0 || *c.VLAN > 4094) {
		t.Fatalf("accepted vlan %d", *c.VLAN)
	}
	if (c.VLANQoS != nil && *c.VLANQoS != 0) || (c.MinTxRate != nil && *c.MinTxRate != 0) || (c.MaxTxRate != nil && *c.MaxTxRate < 0) {
		t.Fatalf("accepted vlanQoS %v, min_tx_rate %v, max_tx_rate %v", c.VLANQoS, c.MinTxRate, c.MaxTxRate)
	}
	// Every deviceID key given is a PCI address, and the first one is the VF.
	first := ""
	for _, v := range []string{c.DeviceID, c.PCIBusID, c.RC.DeviceID} {
		if v == "" {
			continue
		}
		a, err := vf.ParsePCIAddr(v)
		if err != nil {
			t.Fatalf("accepted device ID %q: %v", v, err)
		}
		if first == "" {
			first = a.String()
		}
	}
	if (first == "") != c.VF.IsZero() || (first != "" && c.VF.String() != first) {
		t.Fatalf("VF %v, want the first device ID given (%q)", c.VF, first)
	}
	// Paths: absolute, clean, printable, no ".." component; dataDir not "/", logFile
	// not a directory.
	for key, p := range map[string]string{"dataDir": c.DataDir, "logFile": c.LogFile} {
		if p == "" && key == "logFile" {
			continue
		}
		if checkAbsPath(key, p) != nil || !strings.HasPrefix(p, "/") || slices.Contains(strings.Split(p, "/"), "..") ||
			strings.IndexFunc(p, unicode.IsControl) >= 0 {
			t.Fatalf("accepted %s %q", key, p)
		}
	}
	if c.DataDir == "/" || strings.HasSuffix(c.LogFile, "/") {
		t.Fatalf("accepted dataDir %q, logFile %q", c.DataDir, c.LogFile)
	}
	if c.Name != "" && !networkNameRE.MatchString(c.Name) {
		t.Fatalf("accepted name %q", c.Name)
	}
	if c.IPAMType != "" && (strings.ContainsAny(c.IPAMType, "/\\") || fileNameProblem(c.IPAMType) != "") {
		t.Fatalf("accepted ipam type %q", c.IPAMType)
	}
	if c.PodMAC != nil && (len(c.PodMAC) != 6 || c.PodMAC[0]&1 != 0 || slices.Equal(c.PodMAC, make([]byte, 6))) {
		t.Fatalf("accepted MAC %v", c.PodMAC)
	}
}
