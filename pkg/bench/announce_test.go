package bench

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func ipnet(s string) *net.IPNet {
	ip, n, _ := net.ParseCIDR(s)
	n.IP = ip
	return n
}

func TestAnnounceAndDiscover(t *testing.T) {
	var state atomic.Int32 // 0: no interface, 1: link-local only, 2: addressed
	addrs := func(name string) ([]net.Addr, error) {
		if name != "net1" {
			t.Errorf("asked for %q", name)
		}
		switch state.Load() {
		case 0:
			return nil, errors.New("no such network interface")
		case 1:
			return []net.Addr{ipnet("fe80::1/64")}, nil
		}
		return []net.Addr{ipnet("fe80::1/64"), ipnet("2001:db8::7/64"), ipnet("198.51.100.7/24")}, nil
	}
	srv := httptest.NewServer(AnnounceHandler("net1", 5201, addrs))
	defer srv.Close()

	var progress strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	_, err := Discover(ctx, srv.URL+"/address", 5*time.Millisecond, &progress)
	cancel()
	if err == nil || !strings.Contains(err.Error(), "no bench server announced itself at "+srv.URL+"/address") ||
		!strings.Contains(err.Error(), "no such network interface") {
		t.Errorf("Discover before the interface exists: %v", err)
	}
	if !strings.Contains(progress.String(), "(try 1, again in 5ms)") {
		t.Errorf("progress %q says nothing of the tries", progress.String())
	}

	state.Store(1)
	go func() {
		time.Sleep(30 * time.Millisecond)
		state.Store(2)
	}()
	progress.Reset()
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := Discover(ctx, srv.URL+"/address", 5*time.Millisecond, &progress)
	if err != nil || got != "198.51.100.7:5201" {
		t.Fatalf("Discover = %q, %v; want the IPv4 address first", got, err)
	}
	if !strings.Contains(progress.String(), "interface net1 has no address yet") {
		t.Errorf("progress %q does not say why it waited", progress.String())
	}
}

func TestDiscoverRefusesWhatIsNotAnAnnouncement(t *testing.T) {
	for body, want := range map[string]string{
		`<html>`:                             "not an announcement",
		`{"addresses":[],"port":5201}`:       "no address or no port",
		`{"addresses":["x"],"port":5201}`:    `"x" is not an IP address`,
		`{"addresses":["1.2.3.4"],"port":0}`: "no address or no port",
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(body)) }))
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := Discover(ctx, srv.URL, 10*time.Millisecond, nil)
		cancel()
		srv.Close()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("body %s: %v, want %q", body, err, want)
		}
	}
}
