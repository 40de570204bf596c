package uevent

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/chelsio-k8s/chelsio-sriov/internal/roottest"
)

// TestPrivilegedSendReceive sends a uevent from a user socket and receives it on a
// listener in the same scratch namespace, with the sender's non-zero port ID; a
// listener in another namespace hears nothing of it, and Close ends a Receive.
func TestPrivilegedSendReceive(t *testing.T) {
	roottest.Require(t)
	l, s := pair(t)
	other, err := ListenAt(roottest.ScratchNetns(t), 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse([]byte(kernelAdd))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(m); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, MaxSize)
	n, sender, err := l.Receive(buf)
	if err != nil {
		t.Fatal(err)
	}
	if string(buf[:n]) != string(m.Marshal()) {
		t.Errorf("received %q", buf[:n])
	}
	if sender == 0 {
		t.Error("a user process's message reports the kernel's port ID 0")
	}

	// The other namespace got nothing: Close ends its Receive with os.ErrClosed.
	done := make(chan error, 1)
	go func() { _, _, err := other.Receive(buf[:0:0]); done <- err }()
	time.Sleep(50 * time.Millisecond) // let Receive block; the result does not depend on it
	_ = other.Close()
	if err := <-done; !errors.Is(err, os.ErrClosed) {
		t.Errorf("Receive in another namespace = %v; want os.ErrClosed after Close", err)
	}
}

// TestPrivilegedReceiveTooLarge: a message longer than the buffer is reported and
// discarded, and the next one is read whole.
func TestPrivilegedReceiveTooLarge(t *testing.T) {
	roottest.Require(t)
	l, s := pair(t)
	m, _ := Parse([]byte(kernelAdd))
	for range 2 {
		if err := s.Send(m); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := l.Receive(make([]byte, 16)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Receive into 16 bytes = %v; want ErrTooLarge", err)
	}
	buf := make([]byte, MaxSize)
	if n, _, err := l.Receive(buf); err != nil || string(buf[:n]) != string(m.Marshal()) {
		t.Fatalf("next Receive = %q, %v", buf[:n], err)
	}
}

func TestAtMissingNetns(t *testing.T) {
	if _, err := ListenAt("/nonexistent/netns", 0); err == nil {
		t.Fatal("ListenAt a missing namespace succeeded")
	}
}

// pair returns a listener and a sender in a scratch namespace, closed at the end of
// the test.
func pair(t *testing.T) (l, s *Conn) {
	t.Helper()
	ns := roottest.ScratchNetns(t)
	l, err := ListenAt(ns, 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	if s, err = DialAt(ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return l, s
}
