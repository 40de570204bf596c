package cni

import "testing"

// BenchmarkLoad decodes and validates the reference NAD's config with Multus'
// additions and every VF-level setting.
func BenchmarkLoad(b *testing.B) {
	conf := []byte(`{"type":"chelsio-sriov","cniVersion":"0.3.1","name":"sriov-network",
		"ipam":{"type":"host-local","subnet":"198.51.100.0/24","routes":[{"dst":"0.0.0.0/0"}],"gateway":"198.51.100.1"},
		"deviceID":"0000:81:01.0","pciBusID":"0000:81:01.0","mtu":9000,"vlan":100,"mac":"0a:58:c6:33:64:01",
		"max_tx_rate":10000,"link_state":"enable"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load(conf, "IgnoreUnknown=true;K8S_POD_NAME=testpod1"); err != nil {
			b.Fatal(err)
		}
	}
}
