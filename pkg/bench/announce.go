package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// Announcement is what a bench server says, over its announce address, about
// where its bench port is: the addresses of one interface (a pod's net1, the VF)
// and the port. A client that reaches the server some other way (a Service on
// the pod network) learns from it the address to measure, with nothing typed.
type Announcement struct {
	Interface string   `json:"interface"`
	Addresses []string `json:"addresses"`
	Port      int      `json:"port"`
}

// InterfaceAddrs lists the addresses of the named interface; net's, by default.
type InterfaceAddrs func(name string) ([]net.Addr, error)

func netInterfaceAddrs(name string) ([]net.Addr, error) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return nil, err
	}
	return ifc.Addrs()
}

// AnnounceHandler serves GET /address: the Announcement of interface ifname and
// port, read at each request (the interface may come up after the server). 503
// while the interface has no global unicast address.
func AnnounceHandler(ifname string, port int, addrs InterfaceAddrs) http.Handler {
	if addrs == nil {
		addrs = netInterfaceAddrs
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /address", func(w http.ResponseWriter, _ *http.Request) {
		as, err := addrs(ifname)
		if err != nil {
			http.Error(w, fmt.Sprintf("interface %s: %v", ifname, err), http.StatusServiceUnavailable)
			return
		}
		a := Announcement{Interface: ifname, Port: port, Addresses: []string{}}
		var v6 []string
		for _, ad := range as {
			ipn, ok := ad.(*net.IPNet)
			if !ok || !ipn.IP.IsGlobalUnicast() {
				continue
			}
			if ipn.IP.To4() != nil {
				a.Addresses = append(a.Addresses, ipn.IP.String())
			} else {
				v6 = append(v6, ipn.IP.String())
			}
		}
		a.Addresses = append(a.Addresses, v6...) // IPv4 first
		if len(a.Addresses) == 0 {
			http.Error(w, fmt.Sprintf("interface %s has no address yet", ifname), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(a)
	})
	return mux
}

// Discover asks the announce URL of a bench server (http://HOST:PORT/address)
// for its bench address, again every `every` until it answers or ctx ends, and
// returns HOST:PORT of the first address it announces. Each failed try is
// reported on progress (nil: none); the error on ctx's end names the URL and
// the last failure.
func Discover(ctx context.Context, url string, every time.Duration, progress io.Writer) (string, error) {
	if progress == nil {
		progress = io.Discard
	}
	client := &http.Client{Timeout: 5 * time.Second}
	var last error // the last answer's, not a try that ctx's end cut short
	for try := 1; ; try++ {
		addr, err := askAddress(ctx, client, url)
		if err == nil {
			return addr, nil
		}
		if ctx.Err() == nil || last == nil {
			last = err
			fmt.Fprintf(progress, "chelsio-vf bench: %s: %v (try %d, again in %v)\n", url, err, try, every)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("no bench server announced itself at %s: %w", url, last)
		case <-time.After(every):
		}
	}
}

func askAddress(ctx context.Context, client *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, firstLine(body))
	}
	var a Announcement
	if err := json.Unmarshal(body, &a); err != nil {
		return "", fmt.Errorf("not an announcement: %w", err)
	}
	if len(a.Addresses) == 0 || a.Port <= 0 || a.Port > 65535 {
		return "", errors.New("the announcement has no address or no port")
	}
	if net.ParseIP(a.Addresses[0]) == nil {
		return "", fmt.Errorf("announced address %q is not an IP address", a.Addresses[0])
	}
	return net.JoinHostPort(a.Addresses[0], strconv.Itoa(a.Port)), nil
}

func firstLine(b []byte) string {
	for i, c := range b {
		if c == '\n' {
			return string(b[:i])
		}
	}
	return string(b)
}
