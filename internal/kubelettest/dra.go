package kubelettest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	resourceapi "k8s.io/api/resource/v1"
	drapb "k8s.io/kubelet/pkg/apis/dra/v1"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

// DRAPlugin is kubelet's side of a DRA driver that registered: like kubelet's
// plugin manager, RegisterDRA finds the driver's registration socket in the plugin
// registry directory, asks it GetInfo, checks what it says and tells it that it is
// registered; then Prepare and Unprepare call the driver's DRA service, on the
// endpoint it gave, with real gRPC.
type DRAPlugin struct {
	Info   *registerapi.PluginInfo
	conn   *grpc.ClientConn
	client drapb.DRAPluginClient
}

// RegisterDRA waits (until ctx ends) for a registration socket in registryDir
// whose plugin is the DRA driver driverName, and registers it.
func RegisterDRA(ctx context.Context, registryDir, driverName string) (*DRAPlugin, error) {
	var last error
	for {
		p, err := tryRegister(ctx, registryDir, driverName)
		if err == nil {
			return p, nil
		}
		last = err
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("register DRA driver %s from %s: %w", driverName, registryDir, errors.Join(ctx.Err(), last))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// tryRegister registers the driver through the first socket of registryDir that
// answers GetInfo with its name.
func tryRegister(ctx context.Context, registryDir, driverName string) (*DRAPlugin, error) {
	entries, err := os.ReadDir(registryDir)
	if err != nil {
		return nil, err
	}
	last := errors.New("no registration socket")
	for _, e := range entries {
		if e.Type()&os.ModeSocket == 0 {
			continue
		}
		p, err := registerAt(ctx, filepath.Join(registryDir, e.Name()), driverName)
		if err == nil {
			return p, nil
		}
		last = err
	}
	return nil, last
}

func registerAt(ctx context.Context, socket, driverName string) (*DRAPlugin, error) {
	reg, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer func() { _ = reg.Close() }()
	rc := registerapi.NewRegistrationClient(reg)
	info, err := rc.GetInfo(ctx, &registerapi.InfoRequest{})
	if err != nil {
		return nil, fmt.Errorf("GetInfo on %s: %w", socket, err)
	}
	var problem string
	switch {
	case info.Type != registerapi.DRAPlugin:
		problem = fmt.Sprintf("type %q, want %q", info.Type, registerapi.DRAPlugin)
	case info.Name != driverName:
		problem = fmt.Sprintf("name %q, want %q", info.Name, driverName)
	case !slices.Contains(info.SupportedVersions, drapb.DRAPluginService):
		problem = fmt.Sprintf("services %v lack %s", info.SupportedVersions, drapb.DRAPluginService)
	case !strings.HasPrefix(info.Endpoint, "/"):
		problem = fmt.Sprintf("endpoint %q is not an absolute path", info.Endpoint)
	}
	if problem != "" {
		_, _ = rc.NotifyRegistrationStatus(ctx, &registerapi.RegistrationStatus{Error: problem})
		return nil, fmt.Errorf("plugin at %s: %s", socket, problem)
	}
	conn, err := grpc.NewClient("unix://"+info.Endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	if _, err := rc.NotifyRegistrationStatus(ctx, &registerapi.RegistrationStatus{PluginRegistered: true}); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("NotifyRegistrationStatus on %s: %w", socket, err)
	}
	return &DRAPlugin{Info: info, conn: conn, client: drapb.NewDRAPluginClient(conn)}, nil
}

// DRAClaim names a claim as kubelet passes it to the driver.
type DRAClaim struct{ Namespace, Name, UID string }

func pbClaims(claims []DRAClaim) []*drapb.Claim {
	out := make([]*drapb.Claim, len(claims))
	for i, c := range claims {
		out[i] = &drapb.Claim{Namespace: c.Namespace, Name: c.Name, Uid: c.UID}
	}
	return out
}

// Prepare calls NodePrepareResources and returns its answer per claim UID.
func (p *DRAPlugin) Prepare(ctx context.Context, claims ...DRAClaim) (map[string]*drapb.NodePrepareResourceResponse, error) {
	resp, err := p.client.NodePrepareResources(ctx, &drapb.NodePrepareResourcesRequest{Claims: pbClaims(claims)})
	if err != nil {
		return nil, err
	}
	return resp.Claims, nil
}

// Unprepare calls NodeUnprepareResources and returns its answer per claim UID.
func (p *DRAPlugin) Unprepare(ctx context.Context, claims ...DRAClaim) (map[string]*drapb.NodeUnprepareResourceResponse, error) {
	resp, err := p.client.NodeUnprepareResources(ctx, &drapb.NodeUnprepareResourcesRequest{Claims: pbClaims(claims)})
	if err != nil {
		return nil, err
	}
	return resp.Claims, nil
}

// Close closes the connection to the driver.
func (p *DRAPlugin) Close() { _ = p.conn.Close() }

// AttributeStrings renders the attributes of a ResourceSlice device as strings,
// for a test to compare.
func AttributeStrings(d resourceapi.Device) map[string]string {
	out := map[string]string{}
	for k, a := range d.Attributes {
		switch {
		case a.StringValue != nil:
			out[string(k)] = *a.StringValue
		case a.IntValue != nil:
			out[string(k)] = strconv.FormatInt(*a.IntValue, 10)
		case a.BoolValue != nil:
			out[string(k)] = strconv.FormatBool(*a.BoolValue)
		case a.VersionValue != nil:
			out[string(k)] = *a.VersionValue
		}
	}
	return out
}
