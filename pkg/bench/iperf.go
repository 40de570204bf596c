package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// startIperf starts `iperf -s` on s.IperfPort (5001 if 0) and returns once it
// listens; wait reaps it after ctx ends, which kills it.
func (s *Server) startIperf(ctx context.Context) (wait func() error, err error) {
	port := s.IperfPort
	if port == 0 {
		port = 5001
	}
	args := []string{"-s", "-p", strconv.Itoa(port)}
	if s.Window > 0 {
		args = append(args, "-w", strconv.Itoa(s.Window))
	}
	cmd := exec.CommandContext(ctx, s.Iperf, args...)
	// The context's end kills it; so does this process's, even by SIGKILL. (The
	// signal follows the thread that forks it, and nothing here locks a thread,
	// which is what would make the runtime retire one.)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s -s: %w", s.Iperf, err)
	}
	s.IperfPort = port
	// A client told the port runs iperf -c at once: answer only once iperf
	// listens, or its first size meets a refused connection.
	if err := waitListening(ctx, port, 5*time.Second); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("%s -s: %w", s.Iperf, err)
	}
	return func() error {
		// The context's end kills it; reap it.
		if err := cmd.Wait(); err != nil && ctx.Err() == nil {
			return fmt.Errorf("iperf -s: %w", err)
		}
		return nil
	}, nil
}

// waitListening waits until a TCP socket of this network namespace listens on
// port (a LISTEN entry in /proc/self/net/tcp or tcp6), up to timeout.
func waitListening(ctx context.Context, port int, timeout time.Duration) error {
	want := fmt.Sprintf(":%04X", port)
	deadline := time.Now().Add(timeout)
	for {
		for _, f := range []string{"/proc/self/net/tcp", "/proc/self/net/tcp6"} {
			b, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			for _, l := range strings.Split(string(b), "\n")[1:] {
				fields := strings.Fields(l)
				// sl local_address rem_address st …; st 0A is LISTEN.
				if len(fields) > 3 && strings.HasSuffix(fields[1], want) && fields[3] == "0A" {
					return nil
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not listening on port %d after %v", port, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// parseIperfCSV reads iperf2's `-y C` report (timestamp,src,sport,dst,dport,id,
// interval,bytes,bits/s): with several streams the SUM line (id -1) when iperf
// prints one, else the sum of each stream's last line (iperf 2.1 prints no SUM line
// in CSV when the streams end in the same report interval); with one stream its
// last line.
func parseIperfCSV(out string, streams int) (float64, error) {
	var sum float64
	haveSum := false
	perStream := map[string]float64{}
	for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		f := strings.Split(strings.TrimSpace(line), ",")
		if len(f) < 9 {
			continue
		}
		v, err := strconv.ParseFloat(f[8], 64)
		if err != nil || v < 0 {
			continue
		}
		if f[5] == "-1" {
			sum, haveSum = v, true
			continue
		}
		perStream[f[5]] = v
	}
	switch {
	case haveSum:
		return sum / 1e9, nil
	case len(perStream) == 0:
		return 0, fmt.Errorf("iperf printed no throughput: %q", out)
	case streams > 1 && len(perStream) != streams:
		return 0, fmt.Errorf("iperf reported %d of %d streams and no sum: %q", len(perStream), streams, out)
	}
	var bps float64
	for _, v := range perStream {
		bps += v
	}
	return bps / 1e9, nil
}
