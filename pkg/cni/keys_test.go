package cni

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/google/go-cmp/cmp"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/cut"
)

// keysBase is a NetConf as Multus hands it over, without the closing brace.
const keysBase = `{"cniVersion":"1.0.0","name":"n","type":"chelsio-sriov","deviceID":"0000:81:01.0"`

// refusal is what the runtime gets of a refused config.
type refusal struct {
	Code uint
	Msg  string
}

func loadRefusal(conf string) (refusal, *NetConf) {
	c, err := Load([]byte(conf), "")
	if err == nil {
		return refusal{}, c
	}
	e := AsCNIError(err)
	return refusal{e.Code, e.Msg}, nil
}

// TestLoadKeysRefused: a config in which a key is given twice, or in which a key
// differs from one of the plugin's only in case, is refused with code 7 and a
// message that names the key (and the plugin's spelling), wherever Go's decoder
// would otherwise take one of the values silently.
func TestLoadKeysRefused(t *testing.T) {
	caseMsg := func(key, where, known string) string {
		return fmt.Sprintf("key %q in %s differs from the plugin's key %q only in case: spell it as the plugin does, or remove it", key, where, known)
	}
	twiceMsg := func(key, where string) string {
		return fmt.Sprintf("key %q appears twice in %s: give it once", key, where)
	}
	const top = "the network config"
	long := strings.Repeat("k", 4096)
	tests := []struct {
		name string
		conf string
		want string
	}{
		// The attack: Multus' deviceID is the VF kubelet allocated; Multus' sorted
		// re-marshalling puts the NAD's deviceId after it, and the last one wins.
		{"deviceId beside Multus' deviceID", keysBase + `,"deviceId":"0000:81:01.4"}`, caseMsg("deviceId", top, "deviceID")},
		{"deviceId alone", `{"cniVersion":"1.0.0","name":"n","type":"t","deviceId":"0000:81:01.4"}`, caseMsg("deviceId", top, "deviceID")},
		{"DEVICEID before deviceID", `{"cniVersion":"1.0.0","name":"n","type":"t","DEVICEID":"0000:81:01.4","deviceID":"0000:81:01.0"}`, caseMsg("DEVICEID", top, "deviceID")},
		{"pciBusID spelt with a long s", keysBase + `,"pciBu\u017fID":"0000:81:01.4"}`, caseMsg("pciBu\u017fID", top, "pciBusID")},
		{"MTU", keysBase + `,"MTU":9000}`, caseMsg("MTU", top, "mtu")},
		{"Type", `{"cniVersion":"1.0.0","name":"n","Type":"chelsio-sriov"}`, caseMsg("Type", top, "type")},
		{"a GC key in another case", keysBase + `,"cni.dev/Valid-Attachments":[]}`, caseMsg("cni.dev/Valid-Attachments", top, "cni.dev/valid-attachments")},
		{"mtu twice", keysBase + `,"mtu":9000,"mtu":1500}`, twiceMsg("mtu", top)},
		{"deviceID twice", keysBase + `,"deviceID":"0000:81:01.4"}`, twiceMsg("deviceID", top)},
		{"deviceID twice, once escaped", keysBase + `,"dev\u0069ceID":"0000:81:01.4"}`, twiceMsg("deviceID", top)},
		{"deviceId escaped", keysBase + `,"device\u0049d":"0000:81:01.4"}`, caseMsg("deviceId", top, "deviceID")},
		{"runtimeConfig DeviceID", keysBase + `,"runtimeConfig":{"deviceID":"0000:81:01.0","DeviceID":"0000:81:01.4"}}`, caseMsg("DeviceID", `"runtimeConfig"`, "deviceID")},
		{"runtimeConfig MAC", keysBase + `,"runtimeConfig":{"MAC":"0a:58:c6:33:64:01"}}`, caseMsg("MAC", `"runtimeConfig"`, "mac")},
		{"runtimeConfig mac twice", keysBase + `,"runtimeConfig":{"mac":"0a:58:c6:33:64:01","mac":"0a:58:c6:33:64:02"}}`, twiceMsg("mac", `"runtimeConfig"`)},
		{"dns Nameservers", keysBase + `,"dns":{"Nameservers":["198.51.100.53"]}}`, caseMsg("Nameservers", `"dns"`, "nameservers")},
		{"dns search twice", keysBase + `,"dns":{"search":["a"],"search":["b"]}}`, twiceMsg("search", `"dns"`)},
		{"ipam Type", keysBase + `,"ipam":{"type":"host-local","Type":"static"}}`, caseMsg("Type", `"ipam"`, "type")},
		{"ipam subnet twice", keysBase + `,"ipam":{"type":"host-local","subnet":"198.51.100.0/24","subnet":"203.0.113.0/24"}}`, twiceMsg("subnet", `"ipam"`)},
		{"ipam route key twice", keysBase + `,"ipam":{"type":"host-local","routes":[{"dst":"0.0.0.0/0","dst":"198.51.100.0/24"}]}}`, twiceMsg("dst", `"ipam"`)},
		{"args key twice", keysBase + `,"args":{"cni":{"ips":["198.51.100.7"],"ips":["198.51.100.8"]}}}`, twiceMsg("ips", `"args"`)},
		{"prevResult key twice", keysBase + `,"prevResult":{"cniVersion":"1.0.0","ips":[],"ips":[]}}`, twiceMsg("ips", `"prevResult"`)},
		{"GC attachment key twice", keysBase + `,"cni.dev/valid-attachments":[{"containerID":"a","ifname":"net1","ifname":"net2"}]}`, twiceMsg("ifname", `"cni.dev/valid-attachments"`)},
		{"capability twice", keysBase + `,"capabilities":{"mac":true,"mac":false}}`, twiceMsg("mac", `"capabilities"`)},
		{"long key twice", keysBase + `,"args":{"` + long + `":1,"` + long + `":2}}`, twiceMsg(cut.Value(long), `"args"`)},
		{"key twice under a long top-level key", keysBase + `,"` + long + `":{"a":1,"a":2}}`, twiceMsg("a", cut.Quote(long))},
		{"key twice deep down", keysBase + `,"args":` + strings.Repeat(`[`, 5000) + `{"a":1,"a":2}` + strings.Repeat(`]`, 5000) + `}`, twiceMsg("a", `"args"`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, c := loadRefusal(tt.conf)
			if c != nil {
				t.Fatalf("Load() accepted it: VF %s, MTU %v", c.VF, c.MTU)
			}
			if diff := cmp.Diff(refusal{CodeInvalidConfig, tt.want}, got); diff != "" {
				t.Errorf("Load() refusal mismatch (-want +got):\n%s", diff)
			}
			if len(got.Msg) > 256 {
				t.Errorf("message of %d bytes", len(got.Msg))
			}
		})
	}
}

// TestLoadRefusesIPAMSelf: an "ipam" whose type is the plugin itself (by its
// name or by the NetConf's own type) is refused: the plugin would run itself as its
// IPAM and wait for the VF lock that it holds.
func TestLoadRefusesIPAMSelf(t *testing.T) {
	msg := func(typ string) string {
		return fmt.Sprintf(`"ipam" type %q is this plugin itself: name an IPAM plugin, e.g. "host-local"`, typ)
	}
	tests := []struct {
		name string
		conf string
		want string
	}{
		{"chelsio-sriov", keysBase + `,"ipam":{"type":"chelsio-sriov"}}`, msg("chelsio-sriov")},
		{"the NetConf's own type", `{"cniVersion":"1.0.0","name":"n","type":"sriov","ipam":{"type":"sriov","subnet":"198.51.100.0/24"}}`, msg("sriov")},
		{"chelsio-sriov under another type", `{"cniVersion":"1.0.0","name":"n","type":"sriov","ipam":{"type":"chelsio-sriov"}}`, msg("chelsio-sriov")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, c := loadRefusal(tt.conf)
			if c != nil {
				t.Fatalf("Load() accepted it with IPAM %q", c.IPAMType)
			}
			if diff := cmp.Diff(refusal{CodeInvalidConfig, tt.want}, got); diff != "" {
				t.Errorf("Load() refusal mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestLoadKeysCoversEveryField: every key of every struct that Load decodes, given
// in upper case, is refused, so that a field added to NetConf, RuntimeConfig,
// types.DNS or ipamConf is covered without a list to update.
func TestLoadKeysCoversEveryField(t *testing.T) {
	where := map[string]reflect.Type{
		"":              reflect.TypeFor[NetConf](),
		"runtimeConfig": reflect.TypeFor[RuntimeConfig](),
		"dns":           reflect.TypeFor[types.DNS](),
		"ipam":          reflect.TypeFor[ipamConf](),
	}
	for in, typ := range where {
		for i := range typ.NumField() {
			key, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
			if key == "" || key == "-" || strings.ToUpper(key) == key {
				continue
			}
			name := key
			if in != "" {
				name = in + "." + key
			}
			t.Run(name, func(t *testing.T) {
				upper := strings.ToUpper(key)
				conf := keysBase + fmt.Sprintf(",%q:null}", upper)
				if in != "" {
					conf = keysBase + fmt.Sprintf(",%q:{%q:null}}", in, upper)
				}
				got, _ := loadRefusal(conf)
				if got.Code != CodeInvalidConfig || !strings.Contains(got.Msg, fmt.Sprintf("key %q", upper)) ||
					!strings.Contains(got.Msg, fmt.Sprintf("the plugin's key %q only in case", key)) {
					t.Errorf("Load(%s) = %+v, want code 7 naming %q and %q", conf, got, upper, key)
				}
			})
		}
	}
}

// TestLoadKeysRawFieldsDecided: each key that NetConf keeps as raw JSON is either
// decoded by Load with a schema of its own, or belongs to another party (the
// duplicate rule only). A new raw key fails here until it is one or the other.
func TestLoadKeysRawFieldsDecided(t *testing.T) {
	others := map[string]bool{"args": true, "prevResult": true}
	typ := reflect.TypeFor[NetConf]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		if f.Type != reflect.TypeFor[json.RawMessage]() {
			continue
		}
		key, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if _, decoded := netConfKeys().sub[key]; decoded == others[key] {
			t.Errorf("raw key %q: decoded by Load %v, another party's %v: want exactly one (netConfKeys or this test's list)", key, decoded, others[key])
		}
	}
}

// TestLoadKeysAccepts: what the rules leave alone. The same key in different
// objects; keys of other parties in any case; one spelling of each key.
func TestLoadKeysAccepts(t *testing.T) {
	tests := []struct {
		name   string
		conf   string
		wantVF string
	}{
		{"Multus' deviceID and pciBusID", keysBase + `,"pciBusID":"0000:81:01.0"}`, "0000:81:01.0"},
		{"the same key in nested objects", keysBase + `,"mac":"0a:58:c6:33:64:01","runtimeConfig":{"mac":"0a:58:c6:33:64:02"},"args":{"cni":{"mac":"0a:58:c6:33:64:03"}}}`, "0000:81:01.0"},
		{"ipam keys in any case but type's", keysBase + `,"ipam":{"type":"host-local","Subnet":"198.51.100.0/24","DataDir":"/run/x"}}`, "0000:81:01.0"},
		{"runtimeConfig keys of other capabilities", keysBase + `,"runtimeConfig":{"ips":["198.51.100.7/24"],"portMappings":[{"hostPort":80,"containerPort":80}]}}`, "0000:81:01.0"},
		{"args keys in any case", keysBase + `,"args":{"cni":{"IPs":["198.51.100.7"],"ips":["198.51.100.8"]}}}`, "0000:81:01.0"},
		{"GC attachment keys in the runtime's case", keysBase + `,"cni.dev/valid-attachments":[{"containerId":"a","ifName":"net1"}]}`, "0000:81:01.0"},
		{"ipam type another plugin", `{"cniVersion":"1.0.0","name":"n","type":"sriov","pciBusID":"0000:81:01.4","ipam":{"type":"host-local"}}`, "0000:81:01.4"},
		{"deep nesting within the decoder's limit", keysBase + `,"args":` + strings.Repeat(`[`, 9000) + strings.Repeat(`]`, 9000) + `}`, "0000:81:01.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, c := loadRefusal(tt.conf)
			if c == nil {
				t.Fatalf("Load() refused it: %+v", got)
			}
			if c.VF.String() != tt.wantVF {
				t.Errorf("VF %s, want %s", c.VF, tt.wantVF)
			}
		})
	}
}

// TestLoadKeysTooDeep: nesting beyond encoding/json's limit is the decoder's to
// refuse (code 6), even with a duplicate key further in, and costs no Go stack.
func TestLoadKeysTooDeep(t *testing.T) {
	const n = 200000
	conf := keysBase + `,"args":` + strings.Repeat(`[`, n) + `{"a":1,"a":2}` + strings.Repeat(`]`, n) + `}`
	got, c := loadRefusal(conf)
	if c != nil {
		t.Fatal("Load() accepted 200000 levels of nesting")
	}
	if got.Code != CodeDecoding || !strings.Contains(got.Msg, "depth") {
		t.Errorf("Load() = %+v, want code 6 for the depth", got)
	}
}
