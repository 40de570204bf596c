package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// protocolVersion is the control protocol's version; the hello reply carries it.
const protocolVersion = 1

// msg is every control message: the fields a message does not use are zero.
type msg struct {
	Op        string  `json:"op,omitempty"`
	Version   int     `json:"version,omitempty"`
	IperfPort int     `json:"iperfPort,omitempty"`
	Size      int     `json:"size,omitempty"`
	Streams   int     `json:"streams,omitempty"`
	Run       string  `json:"run,omitempty"`
	Bytes     int64   `json:"bytes,omitempty"`
	Seconds   float64 `json:"seconds,omitempty"`
	CPU       float64 `json:"cpu,omitempty"`
	Error     string  `json:"error,omitempty"`
}

// Server is the receiving end of a bench (`iperf -s`).
type Server struct {
	// Window is SO_RCVBUF and SO_SNDBUF of the listener, in bytes (iperf -w); 0
	// leaves autotuning on.
	Window int
	// Proc is the procfs root for host CPU times; "" means /proc.
	Proc string
	// Iperf is the path of an iperf2 binary to run as `iperf -s` beside the Go
	// receiver, on IperfPort, for clients that have iperf too; "" runs none.
	Iperf     string
	IperfPort int
	// StreamTimeout bounds the wait for the streams' EOF after a client's stop;
	// 0 means 30 s.
	StreamTimeout time.Duration

	mu   sync.Mutex
	runs map[string]*run
}

// run is one size's transfer as the receiver sees it.
type run struct {
	streams int
	bytes   int64
	ended   int
	done    chan struct{}
	end     time.Time
}

// Listen opens the server's TCP listener with the window applied.
func (s *Server) Listen(ctx context.Context, addr string) (net.Listener, error) {
	lc := net.ListenConfig{Control: bufControl(s.Window)}
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ln, nil
}

// Serve accepts clients on ln until ctx ends, then closes ln and returns nil.
func (s *Server) Serve(ctx context.Context, ln net.Listener) (retErr error) {
	s.mu.Lock()
	if s.runs == nil {
		s.runs = map[string]*run{}
	}
	s.mu.Unlock()
	if s.Iperf != "" {
		wait, err := s.startIperf(ctx)
		if err != nil {
			return err
		}
		defer func() {
			if err := wait(); err != nil {
				retErr = errors.Join(retErr, err)
			}
		}()
	}
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() }) // ends Accept
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	var conns sync.Map
	defer conns.Range(func(k, _ any) bool { _ = k.(net.Conn).Close(); return true }) // ends the handlers' reads
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("accept: %w", err)
		}
		conns.Store(c, nil)
		wg.Go(func() {
			defer conns.Delete(c)
			defer func() { _ = c.Close() }()
			s.handle(ctx, c)
		})
	}
}

// handle reads a connection's first message and serves it as a control or a data
// connection.
func (s *Server) handle(ctx context.Context, c net.Conn) {
	r := bufio.NewReaderSize(c, 256<<10)
	var first msg
	line, err := r.ReadBytes('\n')
	if err != nil || json.Unmarshal(line, &first) != nil {
		return
	}
	switch first.Op {
	case "hello":
		s.control(ctx, c, r)
	case "data":
		s.data(first.Run, r)
	}
}

// data counts a stream's bytes until EOF.
func (s *Server) data(id string, r io.Reader) {
	s.mu.Lock()
	rn := s.runs[id]
	s.mu.Unlock()
	if rn == nil {
		return
	}
	buf := make([]byte, 256<<10)
	var n int64
	for {
		k, err := r.Read(buf)
		n += int64(k)
		if err != nil {
			break
		}
	}
	s.mu.Lock()
	rn.bytes += n
	rn.ended++
	if rn.ended == rn.streams {
		rn.end = time.Now()
		close(rn.done)
	}
	s.mu.Unlock()
}

// control serves one client's sequence of runs.
func (s *Server) control(ctx context.Context, c net.Conn, r *bufio.Reader) {
	enc := json.NewEncoder(c)
	if enc.Encode(msg{Version: protocolVersion, IperfPort: s.iperfPort()}) != nil {
		return
	}
	dec := json.NewDecoder(r)
	for {
		var m msg
		if dec.Decode(&m) != nil || m.Op != "start" {
			return
		}
		res := s.oneRun(ctx, m, dec, enc)
		if enc.Encode(res) != nil || res.Error != "" {
			return
		}
	}
}

func (s *Server) iperfPort() int {
	if s.Iperf == "" {
		return 0
	}
	return s.IperfPort
}

// oneRun registers a run, acknowledges it, waits for the client's stop and the
// streams' EOF, and returns the receiver's figures.
func (s *Server) oneRun(ctx context.Context, m msg, dec *json.Decoder, enc *json.Encoder) msg {
	if m.Streams < 0 || m.Streams > 1024 {
		return msg{Error: fmt.Sprintf("bad stream count %d", m.Streams)}
	}
	id := newRunID()
	rn := &run{streams: m.Streams, done: make(chan struct{})}
	if m.Streams == 0 { // iperf carries the data
		close(rn.done)
	}
	s.mu.Lock()
	s.runs[id] = rn
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.runs, id)
		s.mu.Unlock()
	}()
	cpu0, err := readCPU(s.proc())
	if err != nil {
		return msg{Error: err.Error()}
	}
	start := time.Now()
	if err := enc.Encode(msg{Run: id}); err != nil {
		return msg{Error: err.Error()}
	}
	var stop msg
	if err := dec.Decode(&stop); err != nil || stop.Op != "stop" {
		return msg{Error: "control connection: expected stop"}
	}
	timeout := s.StreamTimeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	select {
	case <-rn.done:
	case <-time.After(timeout):
		return msg{Error: fmt.Sprintf("streams did not all end within %v of stop", timeout)}
	case <-ctx.Done():
		return msg{Error: "server shutting down"}
	}
	cpu1, err := readCPU(s.proc())
	if err != nil {
		return msg{Error: err.Error()}
	}
	s.mu.Lock()
	end, n := rn.end, rn.bytes
	s.mu.Unlock()
	if end.IsZero() {
		end = time.Now()
	}
	return msg{Bytes: n, Seconds: end.Sub(start).Seconds(), CPU: cpu0.percent(cpu1)}
}

func (s *Server) proc() string {
	if s.Proc == "" {
		return "/proc"
	}
	return s.Proc
}

func newRunID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}
