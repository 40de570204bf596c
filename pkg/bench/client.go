package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Tools the client can use for the data plane.
const (
	ToolAuto  = "auto"  // iperf when both ends have it, else go
	ToolIperf = "iperf" // iperf2, the seed's tool
	ToolGo    = "go"    // this package's own streams
)

// DefaultPort is the server's port when --server names none.
const DefaultPort = 5201

// Client is the sending end of a bench (`iperf -c`).
type Client struct {
	// Server is HOST or HOST:PORT of a Server (port DefaultPort if absent).
	Server string
	// Streams is the number of parallel TCP streams per size (iperf -P).
	Streams int
	// Duration is how long each size runs (iperf -t).
	Duration time.Duration
	// Sizes are the I/O sizes, each one write (iperf -l).
	Sizes []int
	// Window is SO_SNDBUF and SO_RCVBUF of every stream (iperf -w); 0 leaves
	// autotuning on.
	Window int
	// Tool is ToolAuto, ToolIperf or ToolGo; "" means ToolAuto.
	Tool string
	// Iperf is the path of the local iperf2 binary; "" means none.
	Iperf string
	// Proc is the procfs root for host CPU times; "" means /proc.
	Proc string
	// Progress, if set, gets one line per size as it finishes.
	Progress io.Writer
	// DialTimeout bounds each connect; 0 means 5 s.
	DialTimeout time.Duration
}

// Result is a whole sweep; its JSON is what `chelsio-vf bench client --json` writes.
type Result struct {
	Tool     string  `json:"tool"`
	Streams  int     `json:"streams"`
	Duration string  `json:"duration"`
	Points   []Point `json:"points"`
}

// Point is one I/O size's figures.
type Point struct {
	// Size is the I/O size in bytes.
	Size int `json:"size"`
	// Gbps is the receiver's throughput in 10⁹ bits per second.
	Gbps float64 `json:"gbps"`
	// SenderCPU and ReceiverCPU are host CPU % of each end over the run.
	SenderCPU   float64 `json:"senderCPU"`
	ReceiverCPU float64 `json:"receiverCPU"`
}

func (c *Client) validate() error {
	switch {
	case c.Streams < 1 || c.Streams > 128:
		return fmt.Errorf("bad stream count %d: want 1 to 128", c.Streams)
	case c.Duration <= 0:
		return fmt.Errorf("bad duration %v: want a positive duration such as 10s", c.Duration)
	case len(c.Sizes) == 0:
		return errors.New("bad size list: empty")
	}
	for _, s := range c.Sizes {
		if s <= 0 || s > MaxSize {
			return fmt.Errorf("bad size list: %d is not between 1 and %d bytes", s, MaxSize)
		}
	}
	switch c.Tool {
	case "", ToolAuto, ToolGo:
	case ToolIperf:
		if c.Iperf == "" {
			return errors.New("--tool iperf: iperf is not on PATH")
		}
	default:
		return fmt.Errorf("bad tool %q: want auto, iperf or go", c.Tool)
	}
	return nil
}

// serverAddr is Server with the default port added if it has none.
func (c *Client) serverAddr() string {
	if _, _, err := net.SplitHostPort(c.Server); err == nil {
		return c.Server
	}
	return net.JoinHostPort(strings.Trim(c.Server, "[]"), strconv.Itoa(DefaultPort))
}

func (c *Client) dialer() *net.Dialer {
	t := c.DialTimeout
	if t == 0 {
		t = 5 * time.Second
	}
	return &net.Dialer{Timeout: t, Control: bufControl(c.Window)}
}

// Run sweeps the sizes in order and returns every point, or the first error.
func (c *Client) Run(ctx context.Context) (*Result, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	addr := c.serverAddr()
	ctl, err := (&net.Dialer{Timeout: c.dialer().Timeout}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect to bench server %s: %w", addr, unwrapOp(err))
	}
	// Closing a connection this side is done with reports nothing worth returning.
	defer func() { _ = ctl.Close() }()
	stop := context.AfterFunc(ctx, func() { _ = ctl.Close() })
	defer stop()
	enc, dec := json.NewEncoder(ctl), json.NewDecoder(bufio.NewReader(ctl))
	var hello msg
	if err := enc.Encode(msg{Op: "hello"}); err != nil {
		return nil, fmt.Errorf("bench server %s: %w", addr, err)
	}
	if err := dec.Decode(&hello); err != nil || hello.Version != protocolVersion {
		return nil, fmt.Errorf("bench server %s: no chelsio-vf bench server answered (is it iperf or another service?)", addr)
	}
	tool := ToolGo
	switch {
	case c.Tool == ToolIperf && hello.IperfPort == 0:
		return nil, fmt.Errorf("--tool iperf: the bench server at %s runs no iperf -s (iperf is not on its PATH)", addr)
	case (c.Tool == ToolIperf || c.Tool == ToolAuto || c.Tool == "") && c.Iperf != "" && hello.IperfPort != 0:
		tool = ToolIperf
	}
	res := &Result{Tool: tool, Streams: c.Streams, Duration: c.Duration.String()}
	for i, size := range c.Sizes {
		p, err := c.one(ctx, enc, dec, addr, hello.IperfPort, tool, size)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("size %s (%d/%d): %w", SizeLabel(size), i+1, len(c.Sizes), err)
		}
		res.Points = append(res.Points, p)
		if c.Progress != nil {
			fmt.Fprintf(c.Progress, "size %d/%d: %7s  %8.2f Gbps  sender CPU %5.1f %%  receiver CPU %5.1f %%\n",
				i+1, len(c.Sizes), SizeLabel(size), p.Gbps, p.SenderCPU, p.ReceiverCPU)
		}
	}
	return res, nil
}

// one runs one size: start, the streams, stop.
func (c *Client) one(ctx context.Context, enc *json.Encoder, dec *json.Decoder, addr string, iperfPort int, tool string, size int) (Point, error) {
	streams := c.Streams
	if tool == ToolIperf {
		streams = 0 // the server counts no Go streams
	}
	ack, err := exchange(enc, dec, msg{Op: "start", Size: size, Streams: streams})
	if err != nil {
		return Point{}, err
	}
	cpu0, err := readCPU(c.proc())
	if err != nil {
		return Point{}, err
	}
	var iperfGbps float64
	if tool == ToolIperf {
		host, _, _ := net.SplitHostPort(addr)
		iperfGbps, err = c.runIperf(ctx, net.JoinHostPort(host, strconv.Itoa(iperfPort)), size)
	} else {
		err = c.runStreams(ctx, addr, ack.Run, size)
	}
	cpu1, cerr := readCPU(c.proc())
	if err != nil {
		return Point{}, err
	}
	if cerr != nil {
		return Point{}, cerr
	}
	rep, err := exchange(enc, dec, msg{Op: "stop"})
	if err != nil {
		return Point{}, err
	}
	p := Point{Size: size, SenderCPU: cpu0.percent(cpu1), ReceiverCPU: rep.CPU, Gbps: iperfGbps}
	if tool != ToolIperf && rep.Seconds > 0 {
		p.Gbps = float64(rep.Bytes) * 8 / rep.Seconds / 1e9
	}
	return p, nil
}

// exchange sends req on the control connection and returns the server's reply;
// a reply that reports an error is returned as one.
func exchange(enc *json.Encoder, dec *json.Decoder, req msg) (msg, error) {
	if err := enc.Encode(req); err != nil {
		return msg{}, fmt.Errorf("control connection: %w", err)
	}
	var rep msg
	if err := dec.Decode(&rep); err != nil {
		return msg{}, fmt.Errorf("control connection: %w", err)
	}
	if rep.Error != "" {
		return msg{}, fmt.Errorf("bench server: %s", rep.Error)
	}
	return rep, nil
}

// runStreams opens the streams, writes size-byte blocks on each for the duration,
// and closes them.
func (c *Client) runStreams(ctx context.Context, addr, id string, size int) error {
	hello, err := json.Marshal(msg{Op: "data", Run: id})
	if err != nil {
		return err
	}
	hello = append(hello, '\n')
	conns := make([]net.Conn, 0, c.Streams)
	defer func() {
		for _, k := range conns {
			_ = k.Close() // after CloseWrite, or on the way out of an error
		}
	}()
	d := c.dialer()
	for range c.Streams {
		k, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return fmt.Errorf("open stream to %s: %w", addr, unwrapOp(err))
		}
		conns = append(conns, k)
		if tc, ok := k.(*net.TCPConn); ok {
			// iperf leaves Nagle on; small writes coalesce as they do there.
			if err := tc.SetNoDelay(false); err != nil {
				return fmt.Errorf("stream to %s: %w", addr, err)
			}
		}
		if _, err := k.Write(hello); err != nil {
			return fmt.Errorf("stream to %s: %w", addr, err)
		}
	}
	var over atomic.Bool
	end := time.Now().Add(c.Duration)
	t := time.AfterFunc(c.Duration, func() { over.Store(true) })
	defer t.Stop()
	stop := context.AfterFunc(ctx, func() { over.Store(true) })
	defer stop()
	errs := make([]error, len(conns))
	var wg sync.WaitGroup
	for i, k := range conns {
		wg.Go(func() {
			buf := make([]byte, size)
			for j := range buf {
				buf[j] = byte(j)
			}
			// A stalled receiver ends the stream instead of hanging it.
			if err := k.SetWriteDeadline(end.Add(30 * time.Second)); err != nil {
				errs[i] = err
				return
			}
			for !over.Load() {
				if _, err := k.Write(buf); err != nil {
					errs[i] = fmt.Errorf("stream %d: write: %w", i+1, unwrapOp(err))
					return
				}
			}
			if tc, ok := k.(*net.TCPConn); ok {
				errs[i] = tc.CloseWrite()
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	return errors.Join(errs...)
}

// runIperf runs `iperf -c` for one size and returns its SUM throughput.
func (c *Client) runIperf(ctx context.Context, addr string, size int) (float64, error) {
	host, port, _ := net.SplitHostPort(addr)
	secs := int(math.Ceil(c.Duration.Seconds()))
	args := []string{"-c", host, "-p", port, "-t", strconv.Itoa(secs), "-l", strconv.Itoa(size), "-P", strconv.Itoa(c.Streams), "-y", "C"}
	if c.Window > 0 {
		args = append(args, "-w", strconv.Itoa(c.Window))
	}
	out, err := exec.CommandContext(ctx, c.Iperf, args...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return 0, fmt.Errorf("iperf -c %s: %w: %s", host, err, strings.TrimSpace(string(ee.Stderr)))
		}
		return 0, fmt.Errorf("iperf -c %s: %w", host, err)
	}
	return parseIperfCSV(string(out), c.Streams)
}

func (c *Client) proc() string {
	if c.Proc == "" {
		return "/proc"
	}
	return c.Proc
}

// unwrapOp drops net.OpError's repetition of the addresses the caller already names.
func unwrapOp(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}
