package deviceplugin

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/chelsio-k8s/chelsio-sriov/internal/kubelettest"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/emulate/sysfstree"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// SeedConfig is kubelettest.SeedConfig, for the package's external tests too.
func SeedConfig(t *testing.T) []byte { return kubelettest.SeedConfig(t) }

// seedTree is the tree of docs/hardware.md section 7: a T62100-CR with 4 VFs on PF0 and 2 on PF1;
// VF 0/1 is on vfio-pci, VF 0/2 is unbound, the others are on cxgb4vf.
func seedTree(t *testing.T) (*sysfstree.Tree, []*vf.VF) {
	t.Helper()
	return discovered(t, sysfstree.Adapter{
		VFs:     [4]int{4, 2},
		Drivers: map[sysfstree.VFRef]string{{PF: 0, VF: 1}: vf.DriverVFIO, {PF: 0, VF: 2}: ""},
	})
}

// discovered builds a tree of the adapters and returns it with the VFs that
// Discover finds there.
func discovered(t *testing.T, adapters ...sysfstree.Adapter) (*sysfstree.Tree, []*vf.VF) {
	t.Helper()
	tree, err := sysfstree.Build(t.TempDir(), sysfstree.Options{}, adapters...)
	if err != nil {
		t.Fatal(err)
	}
	node, err := vf.Discover(tree.Root, vf.Options{})
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	return tree, node.VFs()
}

// sorted sorts canonical PCI addresses, whose text order is their address order.
func sorted(groups ...[]string) [][]string {
	for _, g := range groups {
		slices.Sort(g)
	}
	return groups
}

// addrs turns Assign's result into PCI addresses.
func addrs(groups [][]*vf.VF) [][]string {
	out := make([][]string, len(groups))
	for i, g := range groups {
		out[i] = []string{}
		for _, v := range g {
			out[i] = append(out[i], v.Addr.String())
		}
	}
	return out
}

func TestParseSeedConfigMap(t *testing.T) {
	data := SeedConfig(t)
	seedSelectors := []Selector{{Vendors: []uint16{0x1425}, Devices: []uint16{0x680d}, Drivers: []string{"cxgb4vf"}}}
	tests := []struct {
		name     string
		prefix   string
		wantName string
	}{
		{"intel.com as the seed deploys it", "intel.com", "intel.com/chelsio_sriov_netdevice"},
		{"our default prefix", DefaultResourcePrefix, "chelsio.com/chelsio_sriov_netdevice"},
		{"empty prefix is the default", "", "chelsio.com/chelsio_sriov_netdevice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse(data, tt.prefix)
			if err != nil {
				t.Fatalf("Parse() error: %v", err)
			}
			want := &Config{Pools: []Pool{{
				ResourceName:   "chelsio_sriov_netdevice",
				ResourcePrefix: strings.TrimSuffix(tt.wantName, "/chelsio_sriov_netdevice"),
				DeviceType:     DeviceTypeNetDevice,
				Selectors:      seedSelectors,
			}}}
			if diff := cmp.Diff(want, cfg); diff != "" {
				t.Errorf("Parse() mismatch (-want +got):\n%s", diff)
			}
			if got := cfg.Pools[0].FullName(); got != tt.wantName {
				t.Errorf("FullName() = %q, want %q", got, tt.wantName)
			}
		})
	}

	t.Run("assigns the cxgb4vf VFs only", func(t *testing.T) {
		cfg, err := Parse(data, "intel.com")
		if err != nil {
			t.Fatal(err)
		}
		tree, vfs := seedTree(t)
		b := tree.Adapters[0]
		want := sorted([]string{
			b.VFs[0][0].Addr.String(), b.VFs[1][0].Addr.String(), b.VFs[0][3].Addr.String(), b.VFs[1][1].Addr.String(),
		})
		if diff := cmp.Diff(want, addrs(cfg.Assign(vfs))); diff != "" {
			t.Errorf("Assign() mismatch (-want +got):\n%s", diff)
		}
	})
}

func TestZeroConfig(t *testing.T) {
	cfg, fromFile, err := Load(filepath.Join(t.TempDir(), "config.json"), "")
	if err != nil || fromFile {
		t.Fatalf("Load(missing file) = fromFile %v, error %v; want the zero-config", fromFile, err)
	}
	if diff := cmp.Diff(Default(DefaultResourcePrefix), cfg); diff != "" {
		t.Errorf("Load(missing file) mismatch (-want +got):\n%s", diff)
	}
	var names []string
	for _, p := range cfg.Pools {
		names = append(names, p.FullName())
	}
	if diff := cmp.Diff([]string{"chelsio.com/vf", "chelsio.com/vf-vfio"}, names); diff != "" {
		t.Errorf("zero-config pools mismatch (-want +got):\n%s", diff)
	}

	tree, vfs := seedTree(t)
	b := tree.Adapters[0]
	want := sorted(
		[]string{b.VFs[0][0].Addr.String(), b.VFs[1][0].Addr.String(), b.VFs[0][3].Addr.String(), b.VFs[1][1].Addr.String()},
		[]string{b.VFs[0][1].Addr.String()},
	)
	if diff := cmp.Diff(want, addrs(cfg.Assign(vfs))); diff != "" {
		t.Errorf("Assign() mismatch (-want +got):\n%s", diff)
	}

	// The file in testdata spells the zero-config out; it parses to Default.
	data, err := os.ReadFile("testdata/default-config.json")
	if err != nil {
		t.Fatal(err)
	}
	fromJSON, err := Parse(data, "example.com")
	if err != nil {
		t.Fatalf("Parse(default-config.json): %v", err)
	}
	if diff := cmp.Diff(Default("example.com"), fromJSON); diff != "" {
		t.Errorf("Parse(default-config.json) mismatch with Default (-want +got):\n%s", diff)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(good, SeedConfig(t), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte(`{"resourceList": [{"resourceName": "x", "selectors": {"vendor": ["1425"]}}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name         string
		path         string
		prefix       string
		wantFromFile bool
		wantPools    []string
		wantErr      []string
	}{
		{"file", good, "intel.com", true, []string{"intel.com/chelsio_sriov_netdevice"}, nil},
		{"missing file is the zero-config", filepath.Join(dir, "absent.json"), "intel.com", false, []string{"intel.com/vf", "intel.com/vf-vfio"}, nil},
		{"bad config names the path", bad, "intel.com", false, nil, []string{bad, `unknown key "vendor"`}},
		{"a directory names the path", dir, "intel.com", false, nil, []string{"read config", dir}},
		{"zero-config with a bad prefix", filepath.Join(dir, "absent.json"), "Intel.com", false, nil, []string{`default resource prefix "Intel.com"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, fromFile, err := Load(tt.path, tt.prefix)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("Load() = %+v, want an error", cfg)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("Load() error %q does not contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Load() error: %v", err)
			}
			if fromFile != tt.wantFromFile {
				t.Errorf("Load() fromFile = %v, want %v", fromFile, tt.wantFromFile)
			}
			var names []string
			for _, p := range cfg.Pools {
				names = append(names, p.FullName())
			}
			if diff := cmp.Diff(tt.wantPools, names); diff != "" {
				t.Errorf("Load() pools mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParse(t *testing.T) {
	example, err := os.ReadFile("testdata/example-config.json")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data string
		want *Config
	}{
		{
			name: "sriov-dp keys that cannot apply, given empty",
			data: `{"resourceList": [{"resourceName": "a", "selectors": {"acpiIndexes": [], "ddpProfiles": [], "pKeys": [],
				"isRdma": false, "needVhostNet": false, "vdpaType": "", "auxTypes": []}}]}`,
			want: &Config{Pools: []Pool{{ResourceName: "a", ResourcePrefix: "chelsio.com", DeviceType: "netDevice", Selectors: []Selector{{}}}}},
		},
		{
			name: "null is absent",
			data: `{"resourceList": [{"resourceName": "a", "resourcePrefix": null, "selectors": null, "additionalInfo": null}]}`,
			want: &Config{Pools: []Pool{{ResourceName: "a", ResourcePrefix: "chelsio.com", DeviceType: "netDevice"}}},
		},
		{
			name: "values are normalised",
			data: `{"resourceList": [{"resourceName": "a", "resourcePrefix": "example.com", "deviceType": "accelerator",
				"excludeTopology": true, "selectors": [{"vendors": ["1425"], "devices": ["680D"], "pciAddresses": ["81:01.0", "0000:81:01.4"],
				"linkTypes": ["ETHERNET", "Ether"], "models": ["t62100-cr", "Custom T62100-CR"], "chips": ["t6", "T5"]},
				{"rootDevices": ["81:00.1", "0000:81:00.2#3,0-1"], "pfNames": ["mgmtpf1,0#7", "mgmtpf12,3"], "ports": [0, 1], "pfs": [3]}],
				"additionalInfo": {"*": {"k": "v"}, "81:01.0": {"k": "w", "l": ""}}}]}`,
			want: &Config{Pools: []Pool{{
				ResourceName: "a", ResourcePrefix: "example.com", DeviceType: "accelerator", ExcludeTopology: true,
				Selectors: []Selector{
					{
						Vendors: []uint16{0x1425}, Devices: []uint16{0x680d},
						PCIAddresses: []vf.PCIAddr{vf.MustParsePCIAddr("0000:81:01.0"), vf.MustParsePCIAddr("0000:81:01.4")},
						LinkTypes:    []string{"ether", "ether"}, Models: []string{"T62100-CR", "Custom T62100-CR"}, Chips: []vf.Chip{vf.T6, vf.T5},
					},
					{
						RootDevices: []RootDevice{
							{PF: vf.MustParsePCIAddr("0000:81:00.1")},
							{PF: vf.MustParsePCIAddr("0000:81:00.2"), VFs: VFIndexes{{3, 3}, {0, 1}}},
						},
						PFNames: []PFName{{Name: "mgmtpf1,0", VFs: VFIndexes{{7, 7}}}, {Name: "mgmtpf12,3"}},
						Ports:   []int{0, 1}, PFs: []int{3},
					},
				},
				AdditionalInfo: map[string]map[string]string{"*": {"k": "v"}, "0000:81:01.0": {"k": "w", "l": ""}},
			}}},
		},
		{
			name: "byte-order mark",
			data: "\ufeff" + `{"resourceList": [{"resourceName": "a"}]}`,
			want: &Config{Pools: []Pool{{ResourceName: "a", ResourcePrefix: "chelsio.com", DeviceType: "netDevice"}}},
		},
		{
			name: "same name under two prefixes",
			data: `{"resourceList": [{"resourceName": "a"}, {"resourceName": "a", "resourcePrefix": "example.com"}]}`,
			want: &Config{Pools: []Pool{
				{ResourceName: "a", ResourcePrefix: "chelsio.com", DeviceType: "netDevice"},
				{ResourceName: "a", ResourcePrefix: "example.com", DeviceType: "netDevice"},
			}},
		},
		{
			name: "example config",
			data: string(example),
			want: &Config{Pools: []Pool{
				{
					ResourceName: "t6_port0", ResourcePrefix: "chelsio.com", DeviceType: "netDevice",
					Selectors: []Selector{{Vendors: []uint16{0x1425}, Devices: []uint16{0x680d}, Drivers: []string{"cxgb4vf"}, Ports: []int{0}}},
				},
				{
					ResourceName: "t6_dpdk", ResourcePrefix: "example.com", DeviceType: "netDevice", ExcludeTopology: true,
					Selectors: []Selector{
						{Drivers: []string{"vfio-pci"}, Models: []string{"T62100-CR"}, PFs: []int{0, 2}},
						{Drivers: []string{"vfio-pci"}, RootDevices: []RootDevice{{PF: vf.MustParsePCIAddr("0000:81:00.1"), VFs: VFIndexes{{0, 3}}}}},
					},
					AdditionalInfo: map[string]map[string]string{"*": {"fabric": "storage"}, "0000:81:01.1": {"fabric": "backup"}},
				},
				{
					ResourceName: "first_vfs", ResourcePrefix: "chelsio.com", DeviceType: "netDevice",
					Selectors: []Selector{{
						PFNames: []PFName{{Name: "mgmtpf1,0", VFs: VFIndexes{{0, 0}, {2, 5}}}}, Chips: []vf.Chip{vf.T6}, LinkTypes: []string{"ether"},
					}},
				},
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.data), "")
			if err != nil {
				t.Fatalf("Parse() error: %v", err)
			}
			if diff := cmp.Diff(tt.want, cfg, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Parse() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	// pool wraps one pool's JSON into a config.
	pool := func(p string) string { return `{"resourceList": [` + p + `]}` }
	// sel wraps a selector's JSON into the seed's pool.
	sel := func(s string) string {
		return pool(`{"resourceName": "chelsio_sriov_netdevice", "selectors": {` + s + `}}`)
	}
	const where = "resourceList[0] (chelsio_sriov_netdevice): "
	tests := []struct {
		name   string
		data   string
		prefix string
		want   []string // substrings of the error
	}{
		// Unknown keys.
		{"unknown selector key", sel(`"vendor": ["1425"]`), "", []string{where + `selectors: unknown key "vendor" (did you mean "vendors"?)`}},
		{"key in the wrong case", sel(`"Drivers": ["cxgb4vf"]`), "", []string{`unknown key "Drivers" (did you mean "drivers"?)`}},
		{"transposed key", sel(`"rootDevcies": ["81:00.0"]`), "", []string{`unknown key "rootDevcies" (did you mean "rootDevices"?)`}},
		{"unknown pool key", pool(`{"resourceName": "a", "resourcename": "a"}`), "", []string{`resourceList[0] (a): unknown key "resourcename" (did you mean "resourceName"?)`}},
		{"selector key in the pool", pool(`{"resourceName": "a", "drivers": ["cxgb4vf"]}`), "", []string{`resourceList[0] (a): unknown key "drivers" ("drivers" is a selector key: it goes under "selectors")`}},
		{"pool key in a selector", sel(`"resourcePrefix": "x.io"`), "", []string{`unknown key "resourcePrefix" ("resourcePrefix" is a pool key`}},
		{"old sriov-dp pool key", pool(`{"resourceName": "a", "sriovMode": true}`), "", []string{`unknown key "sriovMode" (known keys: resourceName,`}},
		{"unknown top-level key", `{"resourceList": [{"resourceName": "a"}], "logLevel": 5}`, "", []string{`unknown key "logLevel"`}},
		{"pool at the top level", `{"resourceName": "a"}`, "", []string{`the config: unknown key "resourceName" ("resourceName" is a pool key: it goes in a resourceList entry`}},
		{"duplicate key", sel(`"drivers": ["cxgb4vf"], "drivers": ["vfio-pci"]`), "", []string{`key "drivers" appears twice`}},

		// The document.
		{"empty", " \n", "", []string{"the config is empty"}},
		{"not JSON", "{\n  \"resourceList\": [\n  }", "", []string{"not valid JSON: line 3, column 3"}},
		{"YAML", "resourceList:\n- resourceName: a\n", "", []string{"not valid JSON: line 1"}},
		{"not an object", `[]`, "", []string{"the config: want an object, got list"}},
		{"no resourceList", `{}`, "", []string{`no "resourceList"`}},
		{"empty resourceList", `{"resourceList": []}`, "", []string{`"resourceList" is empty`}},
		{"resourceList not a list", `{"resourceList": {"resourceName": "a"}}`, "", []string{"resourceList: want a list, got object"}},
		{"pool not an object", `{"resourceList": ["a"]}`, "", []string{`resourceList[0]: want an object, got string "a"`}},

		// Names and prefixes.
		{"no resourceName", pool(`{"selectors": {}}`), "", []string{`resourceList[0]: no "resourceName"`}},
		{"resourceName of the wrong type", pool(`{"resourceName": 5}`), "", []string{"resourceList[0]: resourceName: want a string, got number 5"}},
		{"resourceName with a space", pool(`{"resourceName": "chelsio sriov"}`), "", []string{`resourceList[0]: resourceName "chelsio sriov": ' ' is not allowed`}},
		{"resourceName with a newline", pool(`{"resourceName": "a\nb"}`), "", []string{`resourceName "a\nb"`}},
		{"resourceName ending in _", pool(`{"resourceName": "vf_"}`), "", []string{`resourceName "vf_": must begin and end with a letter or digit`}},
		{"resourceName too long", pool(`{"resourceName": "` + strings.Repeat("a", 64) + `"}`), "", []string{"64 characters"}},
		{"upper-case prefix", pool(`{"resourceName": "a", "resourcePrefix": "Intel.com"}`), "", []string{`resourceList[0] (a): resourcePrefix "Intel.com": 'I' is not allowed`}},
		{"prefix with an empty label", pool(`{"resourceName": "a", "resourcePrefix": "intel..com"}`), "", []string{`resourcePrefix "intel..com": empty label`}},
		{"kubernetes.io prefix", pool(`{"resourceName": "a", "resourcePrefix": "kubernetes.io"}`), "", []string{"kubernetes.io is reserved"}},
		{"bad default prefix", pool(`{"resourceName": "a"}`), "chelsio_com", []string{`default resource prefix "chelsio_com" (--resource-prefix)`}},
		{"duplicate name after prefixing", `{"resourceList": [{"resourceName": "a", "resourcePrefix": "chelsio.com"}, {"resourceName": "a"}]}`, "", []string{`resourceList[1] (a): resource "chelsio.com/a" is also resourceList[0]'s`}},
		{"same Allocate variable", `{"resourceList": [{"resourceName": "vf-vfio"}, {"resourceName": "vf_vfio"}]}`, "", []string{`resourceList[1] (vf_vfio)`, "PCIDEVICE_CHELSIO_COM_VF_VFIO"}},

		// Pool values.
		{"auxNetDevice", pool(`{"resourceName": "a", "deviceType": "auxNetDevice"}`), "", []string{`resourceList[0] (a): deviceType "auxNetDevice": there are no Chelsio auxiliary devices`}},
		{"deviceType typo", pool(`{"resourceName": "a", "deviceType": "netdevice"}`), "", []string{`deviceType "netdevice": want "netDevice" or "accelerator" (did you mean "netDevice"?)`}},
		{"excludeTopology as a string", pool(`{"resourceName": "a", "excludeTopology": "yes"}`), "", []string{`excludeTopology: want true or false, got string "yes"`}},
		{"selectors as a string", pool(`{"resourceName": "a", "selectors": "all"}`), "", []string{"selectors: want an object or a list of objects"}},
		{"empty selectors list", pool(`{"resourceName": "a", "selectors": []}`), "", []string{"selectors: empty list"}},
		{"selector list element", pool(`{"resourceName": "a", "selectors": [{"pfs": [0]}, {"pfs": [5]}]}`), "", []string{"resourceList[0] (a): selectors[1]: pfs[0] 5: want 0-3"}},
		{"additionalInfo key", pool(`{"resourceName": "a", "additionalInfo": {"zz": {"k": "v"}}}`), "", []string{`additionalInfo key "zz": want "*" or a VF PCI address`}},
		{"additionalInfo same address twice", pool(`{"resourceName": "a", "additionalInfo": {"81:01.0": {}, "0000:81:01.0": {}}}`), "", []string{`additionalInfo key "0000:81:01.0": 0000:81:01.0 is already there`}},
		{"additionalInfo value", pool(`{"resourceName": "a", "additionalInfo": {"*": {"k": 1}}}`), "", []string{`additionalInfo["*"]["k"]: want a string, got number 1`}},

		// Selector values.
		{"vendors not 4 hex digits", sel(`"vendors": ["14250"]`), "", []string{where + `selectors: vendors[0] "14250": want 4 hex digits`}},
		{"vendors with 0x", sel(`"vendors": ["0x1425"]`), "", []string{`vendors[0] "0x1425": want 4 hex digits without 0x ("1425")`}},
		{"vendors not Chelsio", sel(`"vendors": ["1425", "8086"]`), "", []string{`vendors[1] "8086": not Chelsio's vendor ID 1425`}},
		{"vendors as a string", sel(`"vendors": "1425"`), "", []string{`vendors: want a list of strings, got string "1425" (write ["1425"])`}},
		{"vendors with a number", sel(`"vendors": [1425]`), "", []string{"vendors[0]: want a string, got number 1425"}},
		{"devices not 4 hex digits", sel(`"devices": ["68g0"]`), "", []string{`devices[0] "68g0": want 4 hex digits`}},
		{"devices of a PF4", sel(`"devices": ["640d"]`), "", []string{`devices[0] "640d": the PF4 ID of the T62100-CR, not a VF's: the board's VF ID is 680d`}},
		{"devices of PF0-3", sel(`"devices": ["600d"]`), "", []string{`devices[0] "600d": the PF0-3 ID`, "680d"}},
		{"devices not Chelsio", sel(`"devices": ["154c"]`), "", []string{`devices[0] "154c": not a Chelsio device ID`}},
		{"drivers: the module name", sel(`"drivers": ["vfio_pci"]`), "", []string{`drivers[0] "vfio_pci": no VF driver is named so (did you mean "vfio-pci"?)`}},
		{"drivers: the PF driver", sel(`"drivers": ["cxgb4"]`), "", []string{`drivers[0] "cxgb4": cxgb4 drives the PFs`}},
		{"drivers: empty", sel(`"drivers": [""]`), "", []string{`drivers[0] "": want a driver name`}},
		{"pciAddresses", sel(`"pciAddresses": ["81:1.0"]`), "", []string{`pciAddresses[0] "81:1.0": want a VF PCI address`}},
		{"linkTypes", sel(`"linkTypes": ["infiniband"]`), "", []string{`linkTypes[0] "infiniband": every Chelsio VF is Ethernet`}},
		{"negative port", sel(`"ports": [0, -1]`), "", []string{"ports[1] -1: want a port number, 0 or more"}},
		{"port as a string", sel(`"ports": ["1"]`), "", []string{`ports[0]: want an integer, got string "1"`}},
		{"fractional port", sel(`"ports": [1.5]`), "", []string{"ports[0]: want an integer, got number 1.5"}},
		{"ports as a number", sel(`"ports": 1`), "", []string{"ports: want a list of integers, got number 1 (write [1])"}},
		{"pf outside 0-3", sel(`"pfs": [4]`), "", []string{"pfs[0] 4: want 0-3"}},
		{"negative pf", sel(`"pfs": [-1]`), "", []string{"pfs[0] -1: want 0-3"}},
		{"unknown chip", sel(`"chips": ["T8"]`), "", []string{`chips[0] "T8": want T4, T5, T6 or T7`}},
		{"unknown model, close", sel(`"models": ["T62100-CX"]`), "", []string{`models[0] "T62100-CX": not a Chelsio model (did you mean "T62100-CR"?)`}},
		{"unknown model, prefix", sel(`"models": ["T62100"]`), "", []string{`models[0] "T62100": not a Chelsio model (did you mean "T62100-CR" or`}},
		{"rootDevices: range backwards", sel(`"rootDevices": ["0000:81:00.0#2-1"]`), "", []string{`rootDevices[0] "0000:81:00.0#2-1": VF range "2-1": runs backwards`}},
		{"rootDevices: empty element", sel(`"rootDevices": ["0000:81:00.0#0,,2"]`), "", []string{`VF range "0,,2": an empty element`}},
		{"rootDevices: empty range", sel(`"rootDevices": ["0000:81:00.0#"]`), "", []string{`VF range "": empty`}},
		{"rootDevices: not a number", sel(`"rootDevices": ["0000:81:00.0#0-x"]`), "", []string{`VF range "0-x": not VF indexes`}},
		{"rootDevices: negative", sel(`"rootDevices": ["0000:81:00.0#-1"]`), "", []string{`VF range "-1": not VF indexes`}},
		{"rootDevices: too big", sel(`"rootDevices": ["0000:81:00.0#0,2,0-65536"]`), "", []string{`VF range "0,2,0-65536": "0-65536" not VF indexes 0-65535`}},
		{"rootDevices: PF4", sel(`"rootDevices": ["0000:81:00.4"]`), "", []string{`rootDevices[0] "0000:81:00.4": function 4 is not a Chelsio PF0-3`}},
		{"rootDevices: not an address", sel(`"rootDevices": ["enp129s0f4"]`), "", []string{`rootDevices[0] "enp129s0f4": want the PCI address of a PF0-3`}},
		{"pfNames: a port netdev", sel(`"pfNames": ["enp129s0f4"]`), "", []string{`pfNames[0] "enp129s0f4": on Chelsio`, "mgmtpf<adapter>,<pf>", "chelsio-vf list"}},
		{"pfNames: PF out of range", sel(`"pfNames": ["mgmtpf1,4"]`), "", []string{`pfNames[0] "mgmtpf1,4": want mgmtpf<adapter>,<pf> with pf 0-3`}},
		{"pfNames: bad range", sel(`"pfNames": ["mgmtpf1,0#0-a"]`), "", []string{`pfNames[0] "mgmtpf1,0#0-a": VF range "0-a"`}},

		// sriov-dp keys that cannot apply to a Chelsio VF.
		{"acpiIndexes", sel(`"acpiIndexes": ["101"]`), "", []string{where + `selectors: acpiIndexes ["101"] cannot apply to a Chelsio VF`}},
		{"ddpProfiles", sel(`"ddpProfiles": ["GTPv1-C/U IPv4/IPv6 payload"]`), "", []string{"ddpProfiles", "cannot apply to a Chelsio VF"}},
		{"pKeys", sel(`"pKeys": ["0x8001"]`), "", []string{`pKeys ["0x8001"] cannot apply`}},
		{"isRdma", sel(`"isRdma": true`), "", []string{"isRdma true cannot apply to a Chelsio VF"}},
		{"isRdma as a string", sel(`"isRdma": "false"`), "", []string{`isRdma: want true or false, got string "false"`}},
		{"needVhostNet", sel(`"needVhostNet": true`), "", []string{"needVhostNet true cannot apply"}},
		{"vdpaType", sel(`"vdpaType": "virtio"`), "", []string{`vdpaType "virtio" cannot apply`}},
		{"auxTypes", sel(`"auxTypes": ["eth"]`), "", []string{`auxTypes ["eth"] cannot apply`}},
		{"multi-line value shown on one line", sel("\"acpiIndexes\": [\n  \"101\",\n  \"102\"\n]"), "", []string{`acpiIndexes ["101","102"] cannot apply`}},

		// Several problems are all reported.
		{
			"every problem", `{"resourceList": [{"resourceName": "a", "selectors": {"vendor": ["1425"], "pfs": [9]}}, {"resourceName": "b b"}]}`, "",
			[]string{`resourceList[0] (a): selectors: unknown key "vendor"`, "; resourceList[0] (a): selectors: pfs[0] 9", `; resourceList[1]: resourceName "b b"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.data), tt.prefix)
			if err == nil {
				t.Fatalf("Parse() = %+v, want an error", cfg)
			}
			if cfg != nil {
				t.Errorf("Parse() returned a config with its error")
			}
			msg := err.Error()
			t.Log(msg)
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("Parse() error does not contain %q:\n%s", w, msg)
				}
			}
			if strings.ContainsAny(msg, "\n\r") {
				t.Errorf("Parse() error is not one line: %q", msg)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || len(ce.Problems) == 0 {
				t.Errorf("Parse() error %T is not a *ConfigError with problems", err)
			}
		})
	}
}

func TestParseBadDefaultPrefix(t *testing.T) {
	// The pools that would use it are not checked further (their full names and
	// variables would carry the bad prefix): one problem, on one line.
	_, err := Parse([]byte(`{"resourceList": [{"resourceName": "vf-vfio"}, {"resourceName": "vf_vfio"}]}`), "\r")
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("Parse() error = %v, want a *ConfigError", err)
	}
	want := []string{`default resource prefix "\r" (--resource-prefix): '\r' is not allowed: want a lower-case DNS subdomain, e.g. "chelsio.com"`}
	if diff := cmp.Diff(want, ce.Problems); diff != "" {
		t.Errorf("Parse() problems mismatch (-want +got):\n%s", diff)
	}
}

func TestConfigErrorIsBounded(t *testing.T) {
	var pools []string
	for range 30 {
		pools = append(pools, `{"resourceName": "bad name"}`)
	}
	_, err := Parse([]byte(`{"resourceList": [`+strings.Join(pools, ",")+`]}`), "")
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("Parse() error = %v, want a *ConfigError", err)
	}
	if len(ce.Problems) != 30 {
		t.Errorf("Problems has %d entries, want 30", len(ce.Problems))
	}
	if got := strings.Count(err.Error(), "; "); got != maxProblems {
		t.Errorf("Error() joins %d problems, want %d and a count", got+1, maxProblems)
	}
	if !strings.HasSuffix(err.Error(), "; and 20 more problems") {
		t.Errorf("Error() = %q, want it to end with the count of the rest", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"resourceList": [{"resourceName": "chelsio_sriov_netdevice", "selectors": {"vendors": ["1425"], "devices": ["680d"], "drivers": ["cxgb4vf"]}}]}`), "intel.com")
	for _, name := range []string{"testdata/default-config.json", "testdata/example-config.json"} {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, "")
	}
	f.Add([]byte(`{"resourceList": [{"resourceName": "a", "selectors": [{"rootDevices": ["81:00.0#0,2-5"], "pfNames": ["mgmtpf1,0#1"]}, {}]}]}`), "x.io")
	f.Add([]byte(`{"resourceList": [{"resourceName": "a", "additionalInfo": {"*": {"k": "v"}}, "selectors": {"ports": [1], "pfs": [0], "models": ["T540-CR"], "chips": ["T5"]}}]}`), "")
	f.Add([]byte(`{"resourceList": [{"resourceName": "vf-vfio"}, {"resourceName": "vf_vfio"}]}`), "")
	f.Add([]byte(`{"resourceList": [{"resourceName": "a\u0000", "selectors": {"isRdma": true}}]}`), "Bad")
	f.Add([]byte(`[{"resourceName": 1}, null, "x"]`), "")

	f.Fuzz(func(t *testing.T, data []byte, prefix string) {
		cfg, err := Parse(data, prefix)
		if err != nil {
			if cfg != nil {
				t.Fatalf("Parse() returned a config with error %v", err)
			}
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("Parse() error is not one line: %q", err)
			}
			// Each problem says where it is: a pool (by index), the prefix, or the
			// file as a whole.
			var ce *ConfigError
			if !errors.As(err, &ce) || len(ce.Problems) == 0 {
				t.Fatalf("Parse() error %T %v, want a *ConfigError with problems", err, err)
			}
			for _, p := range ce.Problems {
				if !strings.HasPrefix(strings.TrimPrefix(p, `"`), "resourceList") && !strings.HasPrefix(p, "default resource prefix ") &&
					!strings.HasPrefix(p, "the config") && !strings.HasPrefix(p, "not valid JSON") && !strings.HasPrefix(p, `no "resourceList"`) {
					t.Fatalf("Parse() problem %q does not say where it is", p)
				}
			}
			return
		}
		if len(cfg.Pools) == 0 {
			t.Fatal("Parse() returned a config without pools")
		}
		names := map[string]bool{}
		for i, p := range cfg.Pools {
			if msg := checkResourceName(p.ResourceName); msg != "" {
				t.Fatalf("pool %d: resourceName %q: %s", i, p.ResourceName, msg)
			}
			if msg := checkPrefix(p.ResourcePrefix); msg != "" {
				t.Fatalf("pool %d: resourcePrefix %q: %s", i, p.ResourcePrefix, msg)
			}
			if p.DeviceType != DeviceTypeNetDevice && p.DeviceType != DeviceTypeAccelerator {
				t.Fatalf("pool %d: deviceType %q", i, p.DeviceType)
			}
			if names[p.FullName()] {
				t.Fatalf("pool %d: %s twice", i, p.FullName())
			}
			names[p.FullName()] = true
		}
		v := &vf.VF{VendorID: vf.VendorID, DeviceID: 0x680d, Chip: vf.T6, Model: "T62100-CR", Driver: vf.DriverCxgb4VF, MgmtNetdev: "mgmtpf1,0"}
		cfg.Assign([]*vf.VF{v, nil, v})
	})
}
