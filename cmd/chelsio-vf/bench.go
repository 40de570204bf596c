package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"time"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/bench"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/httpserve"
)

const benchUsage = `Usage:
  chelsio-vf bench server [--listen :5201] [--window 512K] [--tool auto|iperf|go]
  chelsio-vf bench client --server HOST[:PORT] [--streams 8] [--duration 10s]
      [--sizes 64,128,...,512K] [--window 512K] [--json FILE] [--plot FILE.svg|FILE.png]
      [--tool auto|iperf|go]
`

func cmdBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, benchUsage)
		return errUsage
	}
	switch args[0] {
	case "server":
		return cmdBenchServer(ctx, args[1:], stderr)
	case "client":
		return cmdBenchClient(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, benchUsage)
		return nil
	}
	fmt.Fprintf(stderr, "chelsio-vf bench: unknown role %q\n\n%s", args[0], benchUsage)
	return errUsage
}

// lookIperf finds iperf2 for --tool: "" when the Go implementation is to be used.
func lookIperf(tool string) (string, error) {
	switch tool {
	case bench.ToolGo:
		return "", nil
	case bench.ToolAuto, bench.ToolIperf:
		p, err := exec.LookPath("iperf")
		if err != nil && tool == bench.ToolIperf {
			return "", errors.New("--tool iperf: iperf is not on PATH")
		}
		return p, nil
	}
	return "", fmt.Errorf("bad tool %q: want auto, iperf or go", tool)
}

func cmdBenchServer(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlags("bench server", "bench server [--listen :5201] [--window 512K] [--tool auto|iperf|go] [--announce :5202 [--interface net1]]", stderr)
	listen := fs.String("listen", fmt.Sprintf(":%d", bench.DefaultPort), "address to listen on")
	announce := fs.String("announce", "", "also serve GET /address on this address (e.g. :5202): the addresses of --interface and the bench port, for `bench client --server-from`")
	ifname := fs.String("interface", "net1", "with --announce: the interface whose addresses are announced (the pod's VF)")
	window := fs.String("window", "512K", "socket buffer size, SO_RCVBUF and SO_SNDBUF (iperf -w); 0 keeps autotuning")
	tool := fs.String("tool", bench.ToolAuto, "auto: also run `iperf -s` on port 5001 when iperf is on PATH; iperf: require it; go: never")
	if err := parse(fs, args); err != nil {
		return err
	}
	w, err := parseWindow(*window)
	if err != nil {
		return err
	}
	ip, err := lookIperf(*tool)
	if err != nil {
		return err
	}
	s := &bench.Server{Window: w, Iperf: ip}
	ln, err := s.Listen(ctx, *listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "chelsio-vf bench: listening on %s\n", ln.Addr())
	if *announce != "" {
		port := ln.Addr().(*net.TCPAddr).Port
		bound, stop, err := httpserve.Serve(*announce, bench.AnnounceHandler(*ifname, port, nil))
		if err != nil {
			_ = ln.Close()
			return fmt.Errorf("--announce %s: %w", *announce, err)
		}
		defer stop()
		fmt.Fprintf(stderr, "chelsio-vf bench: announcing %s's addresses and port %d on http://%s/address\n", *ifname, port, bound)
	}
	if ip != "" {
		fmt.Fprintf(stderr, "chelsio-vf bench: %s -s on port 5001\n", ip)
	}
	return s.Serve(ctx, ln)
}

func cmdBenchClient(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench client", "bench client --server HOST[:PORT] | --server-from URL [options]", stderr)
	server := fs.String("server", "", fmt.Sprintf("the bench server, HOST or HOST:PORT (port %d if absent)", bench.DefaultPort))
	serverFrom := fs.String("server-from", "", "instead of --server: ask this URL (a `bench server --announce`, e.g. http://chelsio-bench-server:5202/address) for the server's address, again every 2 s until it answers or --wait ends")
	wait := fs.Duration("wait", 10*time.Minute, "with --server-from: how long to wait for the server to announce itself")
	streams := fs.Int("streams", 8, "parallel TCP streams per size (iperf -P)")
	duration := fs.String("duration", "10s", "time per size (iperf -t)")
	var def []string
	for _, s := range bench.DefaultSizes() {
		def = append(def, bench.SizeLabel(s))
	}
	sizes := fs.String("sizes", strings.Join(def, ","), "I/O sizes, comma-separated, K/M suffixes allowed (iperf -l)")
	window := fs.String("window", "512K", "socket buffer size, SO_SNDBUF and SO_RCVBUF (iperf -w); 0 keeps autotuning")
	jsonFile := fs.String("json", "", `write {"tool","streams","duration","points":[{"size","gbps","senderCPU","receiverCPU"}]} to FILE`)
	plotFile := fs.String("plot", "", "write the throughput and CPU plot to FILE (.svg or .png)")
	tool := fs.String("tool", bench.ToolAuto, "auto: iperf when both ends have it, else go; iperf; go")
	if err := parse(fs, args); err != nil {
		return err
	}
	if (*server == "") == (*serverFrom == "") {
		fmt.Fprintln(stderr, "chelsio-vf bench client: give one of --server and --server-from")
		fs.Usage()
		return errUsage
	}
	d, err := time.ParseDuration(*duration)
	if err != nil || d <= 0 {
		return fmt.Errorf("bad duration %q: want a positive duration such as 10s or 500ms", *duration)
	}
	sz, err := bench.ParseSizes(*sizes)
	if err != nil {
		return err
	}
	w, err := parseWindow(*window)
	if err != nil {
		return err
	}
	if *plotFile != "" {
		if ext := strings.ToLower(*plotFile); !strings.HasSuffix(ext, ".svg") && !strings.HasSuffix(ext, ".png") {
			return fmt.Errorf("bad --plot %q: want a .svg or .png file name", *plotFile)
		}
	}
	ip, err := lookIperf(*tool)
	if err != nil {
		return err
	}
	if *serverFrom != "" {
		wctx, cancel := context.WithTimeout(ctx, *wait)
		addr, err := bench.Discover(wctx, *serverFrom, 2*time.Second, stderr)
		cancel()
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "chelsio-vf bench: %s announces %s\n", *serverFrom, addr)
		*server = addr
	}
	c := &bench.Client{
		Server: *server, Streams: *streams, Duration: d, Sizes: sz, Window: w,
		Tool: *tool, Iperf: ip, Progress: stderr,
	}
	fmt.Fprintf(stderr, "chelsio-vf bench: %d sizes × %v, %d streams, to %s\n", len(sz), d, *streams, *server)
	res, err := c.Run(ctx)
	if err != nil {
		return err
	}
	if err := res.WriteTable(stdout); err != nil {
		return err
	}
	if *jsonFile != "" {
		if err := res.WriteJSON(*jsonFile); err != nil {
			return err
		}
	}
	if *plotFile != "" {
		if err := res.Plot(*plotFile); err != nil {
			return err
		}
	}
	return nil
}

// parseWindow parses --window: a byte count, or 0 for the kernel's autotuning.
func parseWindow(s string) (int, error) {
	if strings.TrimSpace(s) == "0" {
		return 0, nil
	}
	n, err := bench.ParseBytes(s)
	if err != nil {
		return 0, fmt.Errorf("bad --window: %w", err)
	}
	return n, nil
}
