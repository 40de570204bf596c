package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// startServer runs a Server on a loopback port for the test and returns its address.
func startServer(t *testing.T, s *Server) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ln, err := s.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return within 10 s of cancel")
		}
	})
	return ln.Addr().String()
}

func TestBenchLoopbackSweep(t *testing.T) {
	addr := startServer(t, &Server{Window: 512 << 10})
	var progress bytes.Buffer
	c := &Client{
		Server: addr, Streams: 2, Duration: 200 * time.Millisecond,
		Sizes: []int{64, 1024, 65536}, Window: 512 << 10, Tool: ToolAuto, Progress: &progress,
	}
	res, err := c.Run(context.Background())
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.Tool != ToolGo || res.Streams != 2 || res.Duration != "200ms" {
		t.Errorf("Run() = tool %q streams %d duration %q, want go, 2, 200ms", res.Tool, res.Streams, res.Duration)
	}
	var sizes []int
	for _, p := range res.Points {
		sizes = append(sizes, p.Size)
		if p.Gbps <= 0 {
			t.Errorf("size %d: %.3f Gbps, want > 0", p.Size, p.Gbps)
		}
		for _, cpu := range []float64{p.SenderCPU, p.ReceiverCPU} {
			if cpu < 0 || cpu > 100 {
				t.Errorf("size %d: CPU %.1f %% out of 0..100", p.Size, cpu)
			}
		}
	}
	if d := cmp.Diff([]int{64, 1024, 65536}, sizes); d != "" {
		t.Errorf("Run() sizes mismatch (-want +got):\n%s", d)
	}
	lines := strings.Split(strings.TrimSpace(progress.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "size 1/3:") || !strings.HasPrefix(lines[2], "size 3/3:") {
		t.Errorf("progress:\n%s\nwant one line per size, size 1/3 … 3/3", progress.String())
	}

	var table bytes.Buffer
	if err := res.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	rows := strings.Split(strings.TrimSpace(table.String()), "\n")
	if len(rows) != 4 || !strings.Contains(rows[0], "SIZE") || !strings.Contains(rows[0], "RECEIVER CPU %") {
		t.Fatalf("table:\n%s", table.String())
	}
	for i, label := range []string{"64", "1K", "64K"} {
		if f := strings.Fields(rows[i+1]); f[0] != label {
			t.Errorf("table row %d starts with %q, want %q", i+1, f[0], label)
		}
	}

	dir := t.TempDir()
	jsonFile := filepath.Join(dir, "bench.json")
	if err := res.WriteJSON(jsonFile); err != nil {
		t.Fatal(err)
	}
	var back struct {
		Tool     string           `json:"tool"`
		Streams  int              `json:"streams"`
		Duration string           `json:"duration"`
		Points   []map[string]any `json:"points"`
	}
	b, err := os.ReadFile(jsonFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("JSON: %v\n%s", err, b)
	}
	if len(back.Points) != 3 {
		t.Fatalf("JSON has %d points, want 3:\n%s", len(back.Points), b)
	}
	for _, k := range []string{"size", "gbps", "senderCPU", "receiverCPU"} {
		if _, ok := back.Points[0][k]; !ok {
			t.Errorf("JSON point lacks %q: %v", k, back.Points[0])
		}
	}

	svg := filepath.Join(dir, "bench.svg")
	if err := res.Plot(svg); err != nil {
		t.Fatalf("Plot: %v", err)
	}
	checkSVG(t, svg, []string{"64", "1K", "64K"}, "chelsio-vf bench: 2 streams, 200ms per size")
	png := filepath.Join(dir, "bench.png")
	if err := res.Plot(png); err != nil {
		t.Fatalf("Plot: %v", err)
	}
	if b, err := os.ReadFile(png); err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) {
		t.Errorf("%s is not a PNG (err %v)", png, err)
	}
}

// checkSVG checks that file parses as XML and that its text holds each label.
func checkSVG(t *testing.T, file string, labels []string, title string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 {
		t.Fatalf("%s is empty", file)
	}
	texts := map[string]bool{}
	d := xml.NewDecoder(bytes.NewReader(b))
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s does not parse as XML: %v", file, err)
		}
		if cd, ok := tok.(xml.CharData); ok {
			texts[strings.TrimSpace(string(cd))] = true
		}
	}
	for _, l := range append(labels, title) {
		if !texts[l] {
			t.Errorf("%s has no text %q", file, l)
		}
	}
}

func TestBenchPlotSizeTicks(t *testing.T) {
	res := &Result{Tool: ToolGo, Streams: 8, Duration: "10s"}
	for _, s := range DefaultSizes() {
		res.Points = append(res.Points, Point{Size: s, Gbps: 98, SenderCPU: 30, ReceiverCPU: 35})
	}
	file := filepath.Join(t.TempDir(), "fig1.svg")
	if err := res.Plot(file); err != nil {
		t.Fatal(err)
	}
	checkSVG(t, file, []string{"64", "128", "256", "512", "1K", "2K", "4K", "8K", "16K", "32K", "64K", "128K", "256K", "512K"},
		"chelsio-vf bench: 8 streams, 10s per size")
	if err := res.Plot(filepath.Join(t.TempDir(), "fig1.jpg")); err == nil || !strings.Contains(err.Error(), ".svg or .png") {
		t.Errorf("Plot(.jpg) = %v, want an error naming .svg or .png", err)
	}
}

func TestBenchClientErrors(t *testing.T) {
	// A port nothing listens on: take one and close it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	// A listener that is not a bench server: it accepts and closes.
	other, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	go func() {
		for {
			c, err := other.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	ok := Client{Server: closed, Streams: 1, Duration: time.Second, Sizes: []int{64}}
	tests := []struct {
		name string
		edit func(c *Client)
		want string
	}{
		{"unreachable", func(*Client) {}, "connect to bench server " + closed + ": connect: connection refused"},
		{"not a bench server", func(c *Client) { c.Server = other.Addr().String() }, "no chelsio-vf bench server answered"},
		{"zero duration", func(c *Client) { c.Duration = 0 }, "bad duration 0s"},
		{"no sizes", func(c *Client) { c.Sizes = nil }, "bad size list: empty"},
		{"no streams", func(c *Client) { c.Streams = 0 }, "bad stream count 0"},
		{"bad tool", func(c *Client) { c.Tool = "netperf" }, `bad tool "netperf"`},
		{"iperf missing", func(c *Client) { c.Tool = ToolIperf }, "iperf is not on PATH"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.edit(&c)
			_, err := c.Run(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("Run() error = %v, want one line containing %q", err, tt.want)
			}
		})
	}
}

func TestBenchParseSizes(t *testing.T) {
	tests := []struct {
		in      string
		want    []int
		wantErr string
	}{
		{"64,128,1K,512K", []int{64, 128, 1024, 512 << 10}, ""},
		{" 64 , 1M", []int{64, 1 << 20}, ""},
		{"", nil, "bad size list: empty"},
		{"64,abc", nil, `bad size list: "abc" is not a positive byte count`},
		{"0", nil, "not a positive byte count"},
		{"64,64", nil, "64 appears twice"},
		{"32M", nil, "above the largest I/O size"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSizes(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseSizes(%q) error = %v, want %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("ParseSizes(%q) mismatch (-want +got):\n%s", tt.in, d)
			}
		})
	}
	if got := DefaultSizes(); len(got) != 14 || got[0] != 64 || got[13] != 512<<10 {
		t.Errorf("DefaultSizes() = %v, want 64 … 512K, 14 sizes", got)
	}
}

func TestBenchReadCPU(t *testing.T) {
	dir := t.TempDir()
	write := func(line string) cpuTimes {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(line+"\ncpu0 1 2 3 4 5 6 7 8 0 0\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := readCPU(dir)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// user nice system idle iowait irq softirq steal guest guest_nice
	a := write("cpu  100 0 50 800 50 0 0 0 30 0")
	b := write("cpu  200 0 100 1000 100 0 0 0 60 0")
	if got := a.percent(b); got != 37.5 { // busy +150 of total +400
		t.Errorf("percent() = %v, want 37.5", got)
	}
	if got := b.percent(b); got != 0 {
		t.Errorf("percent() with no elapsed jiffies = %v, want 0", got)
	}
}

func TestBenchParseIperfCSV(t *testing.T) {
	out := "20260101120000,198.51.100.2,40000,198.51.100.3,5001,3,0.0-10.0,1000,4000000000\n" +
		"20260101120000,198.51.100.2,40002,198.51.100.3,5001,4,0.0-10.0,1000,5000000000\n" +
		"20260101120000,198.51.100.2,0,198.51.100.3,5001,-1,0.0-10.0,2000,9000000000\n"
	got, err := parseIperfCSV(out, 2)
	if err != nil || got != 9 {
		t.Errorf("parseIperfCSV() = %v, %v; want 9 Gbps from the SUM line", got, err)
	}
	if _, err := parseIperfCSV("connect failed\n", 2); err == nil {
		t.Error("parseIperfCSV(no report) = nil error")
	}
	// iperf 2.1.8: two streams ending in the same interval, and no SUM line.
	noSum := "19700101000000,198.51.100.2,43394,198.51.100.3,5001,2,0.0-1.0,59525436,469518483\n" +
		"19700101000000,198.51.100.2,43404,198.51.100.3,5001,1,0.0-1.0,60669692,478151317\n"
	if got, err := parseIperfCSV(noSum, 2); err != nil || math.Abs(got-0.9476698) > 1e-6 {
		t.Errorf("parseIperfCSV(no SUM line) = %v, %v; want the streams' sum, 0.9476698 Gbps", got, err)
	}
	if _, err := parseIperfCSV(strings.SplitAfter(noSum, "\n")[0], 2); err == nil {
		t.Error("parseIperfCSV(one of two streams, no SUM line) = nil error")
	}
	if got, err := parseIperfCSV(strings.SplitAfter(noSum, "\n")[0], 1); err != nil || math.Abs(got-0.469518483) > 1e-9 {
		t.Errorf("parseIperfCSV(one stream) = %v, %v; want 0.469518483", got, err)
	}
}
