package vf_test

import (
	"testing"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

func TestPortSpeedMbps(t *testing.T) {
	tests := []struct {
		model string
		want  int
	}{
		{"T62100-CR", 100000},
		{"T62100-LP-CR", 100000},
		{"T61100-OCP-SO", 100000},
		{"Custom T64100-CR", 100000},
		{"Custom T62100-CR-LOM", 100000},
		{"T6225-CR", 25000},
		{"T6225-SO-CR", 25000},
		{"T6425-CR", 25000},
		{"Custom T6225-CR", 25000},
		{"T580-cr", 40000},
		{"T580-LP-cr", 40000},
		{"T580-dbg", 40000},
		{"Custom 3x T580-CR", 40000},
		{"Custom T580-KR4", 40000},
		{"Custom 2x40G QSFP", 40000},
		{"T520-cr", 10000},
		{"T540-cr", 10000},
		{"T420-cr", 10000},
		{"T440-dbg", 10000},
		{"Custom T440 2-xaui, 2-xfi", 10000},
		{"T6210-BT", 10000},
		{"T6201-BT", 10000},
		{"T7250", 50000},
		{"T7450", 50000},
		{"T72200", 200000},
		{"S72200-OCP3", 200000},
		{"T71400", 400000},
		{"S7210-BT", 10000},
		{"T7-DBG", 10000},
		{"Custom XES S7", 10000},
	}
	for _, tt := range tests {
		p, ok := vf.LookupModel(tt.model)
		if !ok {
			t.Errorf("LookupModel(%q) found nothing", tt.model)
			continue
		}
		if got := p.PortSpeedMbps(); got != tt.want {
			t.Errorf("Product{%s}.PortSpeedMbps() = %d, want %d", tt.model, got, tt.want)
		}
	}
	// Unknown boards (no model) are 10G.
	if got := (vf.Product{Chip: vf.T6, Code: 0x77}).PortSpeedMbps(); got != 10000 {
		t.Errorf("unknown T6 board: PortSpeedMbps() = %d, want 10000", got)
	}
	for _, p := range vf.Products() {
		switch s := p.PortSpeedMbps(); s {
		case 10000, 25000, 40000, 50000, 100000, 200000, 400000:
		default:
			t.Errorf("Product{%s}.PortSpeedMbps() = %d, not an Ethernet speed", p.Model, s)
		}
	}
}
