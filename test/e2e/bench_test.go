package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/chelsio-k8s/chelsio-sriov/internal/roottest"
)

// TestPrivilegedBenchTwoPods is the acceptance for `chelsio-vf bench`: one
// pod per worker on the two ends of the cable (VF 0000:81:01.0, MTU 9000), attached
// through libcni with the seed's NAD; `chelsio-vf bench server` in pod 2 and
// `chelsio-vf bench client` in pod 1, both the real binary run in the pods' network
// namespaces; a table, JSON and a plot with one point per I/O size; once with the
// Go data plane and once with iperf2.
func TestPrivilegedBenchTwoPods(t *testing.T) {
	roottest.Require(t)
	node := upNode(t, "--vfs", "2", "--mtu", "9000")
	e := newCNIEnv(t, node)
	const addr = "0000:81:01.0"
	pods := map[int]ns.NetNS{1: newPod(t), 2: newPod(t)}
	ips := map[int]net.IP{}
	for w := 1; w <= 2; w++ {
		id, conf := "benchpod"+string(rune('0'+w)), e.conf(w, addr, nil)
		r, err := e.add(w, id, pods[w], conf)
		if err != nil {
			t.Fatalf("worker %d: ADD: %v", w, err)
		}
		t.Cleanup(func() {
			if err := e.del(w, id, pods[w], conf); err != nil {
				t.Errorf("worker %d: DEL: %v", w, err)
			}
		})
		res, err := current.NewResultFromResult(r)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.IPs) != 1 {
			t.Fatalf("worker %d: result IPs %v, want one", w, res.IPs)
		}
		ips[w] = res.IPs[0].Address.IP
	}

	// The Go data plane, and iperf2 (the seed's tool) when it is installed (CI
	// installs it): the same bench, the same checks.
	for _, tool := range []string{"go", "iperf"} {
		t.Run(tool, func(t *testing.T) {
			if tool == "iperf" {
				roottest.Tool(t, "iperf", "apt-get install iperf")
			}
			cvf := node.cvf
			// The server, in pod 2, until the test ends (nsenter execs it: same process).
			// The Go run also announces net1's address on 5202, and its client finds
			// the server there (--server-from), as the client Job in deployments/test does.
			srvArgs := []string{"--net=" + pods[2].Path(), cvf, "bench", "server", "--listen", net.JoinHostPort(ips[2].String(), "5201"), "--tool", tool}
			server := []string{"--server", ips[2].String()}
			if tool == "go" {
				srvArgs = append(srvArgs, "--announce", net.JoinHostPort(ips[2].String(), "5202"), "--interface", "net1")
				server = []string{"--server-from", "http://" + net.JoinHostPort(ips[2].String(), "5202") + "/address"}
			}
			srv := exec.Command("nsenter", srvArgs...)
			srvErr, err := srv.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := srv.Start(); err != nil {
				t.Fatalf("start bench server: %v", err)
			}
			exited := make(chan error, 1)
			var srvLog bytes.Buffer
			ready := make(chan struct{})
			go func() {
				sc := bufio.NewScanner(srvErr)
				signalled := false
				for sc.Scan() {
					srvLog.WriteString(sc.Text() + "\n")
					if !signalled && strings.Contains(sc.Text(), "listening on") {
						close(ready)
						signalled = true
					}
				}
				exited <- srv.Wait()
			}()
			t.Cleanup(func() {
				if err := srv.Process.Signal(os.Interrupt); err != nil {
					t.Errorf("stop bench server: %v", err)
				}
				select {
				case err := <-exited:
					if err != nil {
						t.Errorf("bench server exit: %v\n%s", err, srvLog.String())
					}
				case <-time.After(10 * time.Second):
					if err := srv.Process.Kill(); err != nil {
						t.Errorf("kill bench server: %v", err)
					}
					t.Error("bench server still running 10 s after SIGINT; killed")
				}
			})
			select {
			case <-ready:
			case err := <-exited:
				t.Fatalf("bench server exited: %v\n%s", err, srvLog.String())
			case <-time.After(10 * time.Second):
				t.Fatal("bench server not listening after 10 s")
			}

			dir := t.TempDir()
			jsonFile, plotFile := filepath.Join(dir, "bench.json"), filepath.Join(dir, "bench.svg")
			out, errb, err := run(t, "nsenter", append(append([]string{"--net=" + pods[1].Path(), cvf, "bench", "client"}, server...),
				"--sizes", "64,1024,65536", "--duration", "1s", "--streams", "2",
				"--json", jsonFile, "--plot", plotFile, "--tool", tool)...)
			t.Logf("bench client stdout:\n%s\nstderr:\n%s", out, errb)
			if err != nil {
				t.Fatalf("bench client: %v", err)
			}

			// The table: a header and one row per size, in order.
			rows := strings.Split(strings.TrimSpace(out), "\n")
			if len(rows) != 4 || !strings.Contains(rows[0], "SIZE") || !strings.Contains(rows[0], "Gbps") {
				t.Fatalf("table:\n%s\nwant a header and 3 rows", out)
			}
			for i, label := range []string{"64", "1K", "64K"} {
				if f := strings.Fields(rows[i+1]); len(f) != 4 || f[0] != label {
					t.Errorf("table row %d = %q, want SIZE %s and three figures", i+1, rows[i+1], label)
				}
			}
			if want := "announces " + net.JoinHostPort(ips[2].String(), "5201"); tool == "go" && !strings.Contains(errb, want) {
				t.Errorf("client stderr lacks %q: it did not take the announced address", want)
			}
			// Progress: one line per size.
			for _, want := range []string{"size 1/3:", "size 2/3:", "size 3/3:"} {
				if !strings.Contains(errb, want) {
					t.Errorf("progress on stderr lacks %q", want)
				}
			}

			// The JSON: 3 points, each with traffic.
			b, err := os.ReadFile(jsonFile)
			if err != nil {
				t.Fatal(err)
			}
			var res struct {
				Tool    string `json:"tool"`
				Streams int    `json:"streams"`
				Points  []struct {
					Size        int     `json:"size"`
					Gbps        float64 `json:"gbps"`
					SenderCPU   float64 `json:"senderCPU"`
					ReceiverCPU float64 `json:"receiverCPU"`
				} `json:"points"`
			}
			if err := json.Unmarshal(b, &res); err != nil {
				t.Fatalf("JSON: %v\n%s", err, b)
			}
			if res.Tool != tool {
				t.Errorf("JSON: tool %q, want %q", res.Tool, tool)
			}
			if res.Streams != 2 || len(res.Points) != 3 {
				t.Fatalf("JSON: streams %d, %d points; want 2 streams, 3 points:\n%s", res.Streams, len(res.Points), b)
			}
			for i, size := range []int{64, 1024, 65536} {
				p := res.Points[i]
				if p.Size != size || p.Gbps <= 0 || p.SenderCPU < 0 || p.SenderCPU > 100 || p.ReceiverCPU < 0 || p.ReceiverCPU > 100 {
					t.Errorf("JSON point %d = %+v, want size %d, gbps > 0, CPU %% in 0..100", i, p, size)
				}
			}

			// The plot: an SVG with a tick label per size.
			svg, err := os.ReadFile(plotFile)
			if err != nil {
				t.Fatal(err)
			}
			texts := map[string]bool{}
			d := xml.NewDecoder(bytes.NewReader(svg))
			for {
				tok, err := d.Token()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("%s does not parse as XML: %v", plotFile, err)
				}
				if cd, ok := tok.(xml.CharData); ok {
					texts[strings.TrimSpace(string(cd))] = true
				}
			}
			for _, l := range []string{"64", "1K", "64K", "chelsio-vf bench: 2 streams, 1s per size"} {
				if !texts[l] {
					t.Errorf("%s has no text %q", plotFile, l)
				}
			}
		})
	}
}
