package vf_test

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// idRow is one row of testdata/chelsio-ids.tsv, which holds the rows of the ID table
// of docs/hardware.md section 2.
type idRow struct {
	VFID, PF03ID, PF4ID uint16
	Chip                vf.Chip
	Model               string
	Upstream            bool
}

func readIDTable(t testing.TB) []idRow {
	t.Helper()
	f, err := os.Open("testdata/chelsio-ids.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []idRow
	header := false
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		cols := strings.Split(text, "\t")
		if !header {
			want := []string{"vf_id", "pf03_id", "pf4_id", "chip", "model", "status"}
			if diff := cmp.Diff(want, cols); diff != "" {
				t.Fatalf("chelsio-ids.tsv header mismatch (-want +got):\n%s", diff)
			}
			header = true
			continue
		}
		if len(cols) != 6 {
			t.Fatalf("chelsio-ids.tsv:%d: %d columns, want 6: %q", line, len(cols), text)
		}
		var ids [3]uint16
		for i := range ids {
			v, err := strconv.ParseUint(cols[i], 16, 16)
			if err != nil || len(cols[i]) != 4 || cols[i] != strings.ToLower(cols[i]) {
				t.Fatalf("chelsio-ids.tsv:%d: bad ID %q", line, cols[i])
			}
			ids[i] = uint16(v)
		}
		var upstream bool
		switch cols[5] {
		case "upstream":
			upstream = true
		case "unconfirmed":
		default:
			t.Fatalf("chelsio-ids.tsv:%d: bad status %q", line, cols[5])
		}
		rows = append(rows, idRow{VFID: ids[0], PF03ID: ids[1], PF4ID: ids[2], Chip: vf.Chip(cols[3]), Model: cols[4], Upstream: upstream})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return rows
}

func TestIDTableMatchesDocument(t *testing.T) {
	rows := readIDTable(t)
	counts := map[vf.Chip]int{}
	upstream := 0
	for _, r := range rows {
		if r.Upstream {
			counts[r.Chip]++
			upstream++
		}
	}
	if diff := cmp.Diff(map[vf.Chip]int{vf.T4: 24, vf.T5: 70, vf.T6: 26}, counts); diff != "" {
		t.Errorf("upstream rows per chip in chelsio-ids.tsv mismatch (-want +got):\n%s", diff)
	}
	if len(rows) != 141 || upstream != 120 {
		t.Errorf("chelsio-ids.tsv has %d rows, %d upstream; want 141, 120", len(rows), upstream)
	}
	if got := len(vf.Products()); got != len(rows) {
		t.Errorf("len(Products()) = %d, want %d (rows of chelsio-ids.tsv)", got, len(rows))
	}

	for _, r := range rows {
		t.Run(fmt.Sprintf("%04x", r.VFID), func(t *testing.T) {
			for _, c := range []struct {
				id   uint16
				kind vf.FuncKind
			}{{r.VFID, vf.FuncVF}, {r.PF03ID, vf.FuncPF03}, {r.PF4ID, vf.FuncPF4}} {
				p, kind, ok := vf.LookupID(c.id)
				if !ok {
					t.Errorf("LookupID(%#04x) found nothing, want %s %q", c.id, r.Chip, r.Model)
					continue
				}
				if kind != c.kind {
					t.Errorf("LookupID(%#04x) kind = %v, want %v", c.id, kind, c.kind)
				}
				if p.Chip != r.Chip || p.Model != r.Model {
					t.Errorf("LookupID(%#04x) = %s %q, want %s %q", c.id, p.Chip, p.Model, r.Chip, r.Model)
				}
				got := [3]uint16{p.VFID(), p.PF03ID(), p.PF4ID()}
				if want := [3]uint16{r.VFID, r.PF03ID, r.PF4ID}; got != want {
					t.Errorf("LookupID(%#04x): VFID, PF03ID, PF4ID = %04x, want %04x", c.id, got, want)
				}
				if p.Upstream() != r.Upstream {
					t.Errorf("LookupID(%#04x).Upstream() = %v, want %v", c.id, p.Upstream(), r.Upstream)
				}
			}
			if got := vf.IsVFID(r.VFID, false); got != r.Upstream {
				t.Errorf("IsVFID(%#04x, false) = %v, want %v", r.VFID, got, r.Upstream)
			}
			if !vf.IsVFID(r.VFID, true) {
				t.Errorf("IsVFID(%#04x, true) = false, want true", r.VFID)
			}
			// PF5/PF6 (csiostor) IDs of the board map to the same product.
			for _, id := range []uint16{r.PF03ID | 0x500, r.PF03ID | 0x600} {
				if p, kind, ok := vf.LookupID(id); !ok || kind != vf.FuncStorage || p.Model != r.Model {
					t.Errorf("LookupID(%#04x) = %q, %v, %v; want %q, %v, true", id, p.Model, kind, ok, r.Model, vf.FuncStorage)
				}
			}
		})
	}

	// Products() holds exactly the rows of the document, in its order.
	var got []idRow
	for _, p := range vf.Products() {
		got = append(got, idRow{VFID: p.VFID(), PF03ID: p.PF03ID(), PF4ID: p.PF4ID(), Chip: p.Chip, Model: p.Model, Upstream: p.Upstream()})
	}
	if diff := cmp.Diff(rows, got); diff != "" {
		t.Errorf("Products() mismatch with chelsio-ids.tsv (-want +got):\n%s", diff)
	}
}

func TestProductsIsACopy(t *testing.T) {
	ps := vf.Products()
	ps[0].Model = "changed"
	if got := vf.Products()[0].Model; got == "changed" {
		t.Error("Products() returns the package's own slice")
	}
}

func TestLookupIDUnknown(t *testing.T) {
	tests := []struct {
		name string
		id   uint16
	}{
		{"gap 580f", 0x580f},
		{"gap 588a", 0x588a},
		{"gap 588b", 0x588b},
		{"gap 588c", 0x588c},
		{"gap 588d", 0x588d},
		{"gap 588e", 0x588e},
		{"gap 588f", 0x588f},
		{"gap 580f PF0-3", 0x500f},
		{"gap 588a PF4", 0x548a},
		{"T6-DBG-25 VF 6800", 0x6800},
		{"T6-DBG-100 VF 6810", 0x6810},
		{"T6-DBG-25 PF 6000", 0x6000},
		{"after 6892", 0x6893},
		{"FPGA a000", 0xa000},
		{"FPGA b000", 0xb000},
		{"FPGA b001", 0xb001},
		{"FPGA c006", 0xc006},
		{"FPGA c106", 0xc106},
		{"zero", 0x0000},
		{"Intel vendor as device", 0x8086},
		{"generation 3", 0x3801},
		{"function 1", 0x610d},
		{"function 2", 0x620d},
		{"function 9", 0x690d},
		{"function f", 0x6f0d},
		{"T7 gap", 0x7813},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if p, k, ok := vf.LookupID(tt.id); ok {
				t.Errorf("LookupID(%#04x) = %s %q (%v), want unknown", tt.id, p.Chip, p.Model, k)
			}
		})
	}
}

func TestIsVFID(t *testing.T) {
	tests := []struct {
		name    string
		id      uint16
		allowT7 bool
		want    bool
	}{
		{"T62100-CR VF", 0x680d, false, true},
		{"T520-CR VF", 0x5801, false, true},
		{"T420-CR VF", 0x4801, false, true},
		// The nibble rule, not the table, decides: unknown boards are VFs.
		{"T6-DBG-25 VF 6800", 0x6800, false, true},
		{"T6-DBG-100 VF 6810", 0x6810, false, true},
		{"unknown board 68ff", 0x68ff, false, true},
		{"gap 580f", 0x580f, false, true},
		{"T7 VF", 0x7801, false, false},
		{"T7 VF allowed", 0x7801, true, true},
		{"PF0-3", 0x600d, false, false},
		{"PF4", 0x640d, false, false},
		{"PF5", 0x650d, false, false},
		{"PF6", 0x660d, false, false},
		{"T7 PF4 allowed", 0x7401, true, false},
		{"zero", 0x0000, false, false},
		{"Intel vendor ID", 0x8086, false, false},
		{"FPGA a000", 0xa000, false, false},
		{"generation 8 VF nibble", 0x8800, true, false},
		{"generation a VF nibble", 0xa800, true, false},
		{"generation 3 VF nibble", 0x3800, true, false},
		{"generation 0 VF nibble", 0x0800, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := vf.IsVFID(tt.id, tt.allowT7); got != tt.want {
				t.Errorf("IsVFID(%#04x, %v) = %v, want %v", tt.id, tt.allowT7, got, tt.want)
			}
		})
	}
}

func TestChipOfAndKindOf(t *testing.T) {
	tests := []struct {
		id       uint16
		wantChip vf.Chip
		wantOK   bool
		wantKind vf.FuncKind
	}{
		{0x4001, vf.T4, true, vf.FuncPF03},
		{0x5401, vf.T5, true, vf.FuncPF4},
		{0x650d, vf.T6, true, vf.FuncStorage},
		{0x660d, vf.T6, true, vf.FuncStorage},
		{0x680d, vf.T6, true, vf.FuncVF},
		{0x7801, vf.T7, true, vf.FuncVF},
		{0x8086, "", false, vf.FuncPF03},
		{0x3801, "", false, vf.FuncVF},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%04x", tt.id), func(t *testing.T) {
			c, ok := vf.ChipOf(tt.id)
			if c != tt.wantChip || ok != tt.wantOK {
				t.Errorf("ChipOf(%#04x) = %q, %v; want %q, %v", tt.id, c, ok, tt.wantChip, tt.wantOK)
			}
			if k := vf.KindOf(tt.id); k != tt.wantKind {
				t.Errorf("KindOf(%#04x) = %v, want %v", tt.id, k, tt.wantKind)
			}
		})
	}
}

func TestFuncKindString(t *testing.T) {
	tests := []struct {
		k    vf.FuncKind
		want string
	}{
		{vf.FuncPF03, "PF0-3"},
		{vf.FuncPF4, "PF4"},
		{vf.FuncStorage, "PF5-6"},
		{vf.FuncVF, "VF"},
		{vf.FuncKind(0x9), "function 0x9"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.k.String(); got != tt.want {
				t.Errorf("FuncKind(%d).String() = %q, want %q", uint8(tt.k), got, tt.want)
			}
		})
	}
}

func TestLookupModel(t *testing.T) {
	tests := []struct {
		name      string
		model     string
		wantModel string
		wantVFID  uint16
		wantOK    bool
	}{
		{"exact", "T62100-CR", "T62100-CR", 0x680d, true},
		{"lower case", "t62100-cr", "T62100-CR", 0x680d, true},
		{"upper case of a lower-case table name", "T540-CR", "T540-cr", 0x5803, true},
		{"mixed case", "t520-Cr", "T520-cr", 0x5801, true},
		{"T4", "T420-CR", "T420-cr", 0x4801, true},
		{"T7", "t7250", "T7250", 0x7801, true},
		// Several Custom boards share a name; the lowest ID wins.
		{"shared custom name", "Custom T540-CR", "Custom T540-cr", 0x5880, true},
		{"shared custom T6 name", "custom t62100-cr", "Custom T62100-CR", 0x6881, true},
		{"unknown", "T999-CR", "", 0, false},
		{"empty", "", "", 0, false},
		{"surrounding space", " T62100-CR", "", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, ok := vf.LookupModel(tt.model)
			if ok != tt.wantOK || p.Model != tt.wantModel || (ok && p.VFID() != tt.wantVFID) {
				t.Errorf("LookupModel(%q) = %q (VF %04x), %v; want %q (VF %04x), %v", tt.model, p.Model, p.VFID(), ok, tt.wantModel, tt.wantVFID, tt.wantOK)
			}
		})
	}
}

func TestProductPorts(t *testing.T) {
	tests := []struct {
		model string
		want  int
	}{
		{"T62100-CR", 2},
		{"T540-CR", 4},
		{"T540-cr", 4},
		{"T6425-CR", 4},
		{"T61100-OCP-SO", 1},
		{"T520-CR", 2},
		{"T580-LP-CR", 2},
		{"Custom T540-CR", 4},
		{"Custom T64100-CR", 4},
		{"T6225-CR", 2},
		{"T440-cr", 4},
		{"S7450", 4},
		{"B420-sr", 2},
		{"", 2},
	}
	for _, tt := range tests {
		t.Run(tt.model, func(t *testing.T) {
			if got := (vf.Product{Model: tt.model}).Ports(); got != tt.want {
				t.Errorf("Product{Model: %q}.Ports() = %d, want %d", tt.model, got, tt.want)
			}
		})
	}
	// The table's own products.
	for _, tt := range []struct {
		model string
		want  int
	}{{"T62100-CR", 2}, {"T540-CR", 4}, {"T6425-CR", 4}, {"T61100-OCP-SO", 1}, {"T520-CR", 2}, {"T580-LP-CR", 2}, {"Custom T540-CR", 4}} {
		p, ok := vf.LookupModel(tt.model)
		if !ok {
			t.Errorf("LookupModel(%q) found nothing", tt.model)
			continue
		}
		if got := p.Ports(); got != tt.want {
			t.Errorf("LookupModel(%q).Ports() = %d, want %d", tt.model, got, tt.want)
		}
	}
}
