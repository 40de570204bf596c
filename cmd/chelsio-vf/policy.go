package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/cnistore"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/httpserve"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/node"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/sysfs"
)

// policyFlags are the options of `chelsio-vf policy`.
type policyFlags struct {
	root, file, nodeName, stateDir, statusFile, metricsAddr, labels, labelsFile, podSocket *string
	once, dry, force                                                                       *bool
	interval                                                                               *time.Duration
}

func newPolicyFlags(stderr io.Writer) (*policyFlags, *flag.FlagSet) {
	fs := newFlags("policy", "policy [--file FILE] [--node-name NAME] [--node-labels K=V,...] [--node-labels-file FILE] [--once] [--dry-run] [--force] [--interval 30s] [--status-file FILE] [--metrics-address ADDR] [--cni-state-dir DIR] [--pod-resources-socket PATH] [--sysfs-root DIR]", stderr)
	return &policyFlags{
		root:        sysfsRootFlag(fs),
		file:        fs.String("file", "/etc/chelsio-sriov/policy.yaml", "the node policy (YAML or JSON)"),
		nodeName:    fs.String("node-name", os.Getenv("NODE_NAME"), "this node's name, for the policy's nodes lists (env NODE_NAME; default the host name)"),
		labels:      fs.String("node-labels", "", "this node's labels, for the policy's nodeSelector: K=V,K=V"),
		labelsFile:  fs.String("node-labels-file", "", "a file of this node's labels, one K=V (or K=\"V\") a line, read at every round"),
		once:        fs.Bool("once", false, "apply once, then exit (1 if anything was refused or failed)"),
		dry:         fs.Bool("dry-run", false, "print every write it would make; change nothing"),
		force:       fs.Bool("force", false, "change VF counts and drivers even while pods hold VFs (after draining the node; meant with --once)"),
		interval:    fs.Duration("interval", 30*time.Second, "time between two checks of the node against the policy"),
		stateDir:    fs.String("cni-state-dir", cnistore.DefaultDir, "the CNI plugin's dataDir, where the pods that hold VFs are recorded"),
		statusFile:  fs.String("status-file", node.DefaultPolicyStatusFile, "where to write what the last round did (chelsio-vf doctor reads it); empty: nowhere"),
		metricsAddr: fs.String("metrics-address", "", "address of /metrics and /healthz, e.g. 127.0.0.1:29101; empty turns them off"),
		podSocket:   holdersSocketFlag(fs),
	}, fs
}

// cmdPolicy applies the node policy file: once, or at start and then every
// --interval (edits of the file included) until stopped.
func cmdPolicy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f, fs := newPolicyFlags(stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	a, err := f.applier(stdout)
	if err != nil {
		return err
	}
	closeLinks, err := openLinks(&a.base)
	if err != nil {
		return err
	}
	defer closeLinks()
	if *f.once {
		return a.apply(ctx, true)
	}
	if *f.metricsAddr != "" {
		stop, err := servePolicyMetrics(*f.metricsAddr, a.metrics.Handler())
		if err != nil {
			return err
		}
		defer stop()
	}
	t := time.NewTicker(*f.interval)
	defer t.Stop()
	for {
		if err := a.apply(ctx, false); err != nil {
			fmt.Fprintf(stderr, "chelsio-vf policy: %v\n", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// applier checks the flags and builds the policyApplier they ask for.
func (f *policyFlags) applier(stdout io.Writer) (*policyApplier, error) {
	if *f.interval <= 0 {
		return nil, fmt.Errorf("--interval %v: want a positive duration", *f.interval)
	}
	if *f.nodeName == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("--node-name: none given and no host name: %w", err)
		}
		*f.nodeName = h
	}
	labels, err := parseLabels("--node-labels", strings.Split(*f.labels, ","))
	if err != nil {
		return nil, err
	}
	a := &policyApplier{
		file: *f.file, node: *f.nodeName, labels: labels, labelsFile: *f.labelsFile,
		labelsKnown: *f.labels != "" || *f.labelsFile != "",
		base:        node.SetupConfig{Sysfs: sysfs.Root(*f.root), DryRun: *f.dry, CNIStateDir: *f.stateDir, Force: *f.force, Pods: podLister(*f.podSocket)},
		stdout:      stdout, statusFile: *f.statusFile, metrics: node.NewPolicyMetrics(),
	}
	if !*f.once {
		a.interval = *f.interval
	}
	return a, nil
}

// servePolicyMetrics serves h on addr until stop is called.
func servePolicyMetrics(addr string, h http.Handler) (stop func(), err error) {
	_, stop, err = httpserve.Serve(addr, h)
	if err != nil {
		return nil, fmt.Errorf("--metrics-address %s: %w", addr, err)
	}
	return stop, nil
}

// parseLabels reads K=V (or K="V") items; empty items are skipped. what names
// where they come from, for errors.
func parseLabels(what string, items []string) (map[string]string, error) {
	out := map[string]string{}
	for _, it := range items {
		it = strings.TrimSpace(it)
		if it == "" || strings.HasPrefix(it, "#") {
			continue
		}
		k, v, ok := strings.Cut(it, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("%s: %q: want a label as KEY=VALUE", what, it)
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		out[k] = v
	}
	return out, nil
}

// readLabelsFile reads the node's labels from a file, one a line.
func readLabelsFile(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--node-labels-file: %w", err)
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return parseLabels(path, lines)
}

// policyApplier applies the policy file, and says what it did: everything with
// verbose, else only when the file changed, something was written or refused.
type policyApplier struct {
	file, node  string
	labels      map[string]string
	labelsFile  string
	labelsKnown bool
	base        node.SetupConfig
	stdout      io.Writer
	last        []byte // the file as last applied
	interval    time.Duration
	statusFile  string
	status      *node.PolicyStatus // of the last round
	metrics     *node.PolicyMetrics
}

// apply runs one round and reports it: on stdout, in the status file and in the
// metrics.
func (a *policyApplier) apply(ctx context.Context, verbose bool) error {
	r, err := a.round(ctx, verbose)
	st := node.NewPolicyStatus(a.status, r, err, time.Now())
	st.File, st.Node, st.DryRun, st.Force = a.file, a.node, a.base.DryRun, a.base.Force
	st.IntervalSeconds = a.interval.Seconds()
	a.status = &st
	a.metrics.Observe(st)
	if a.statusFile != "" {
		if serr := node.WritePolicyStatus(a.statusFile, st); serr != nil && err != nil {
			err = fmt.Errorf("%w; %w", err, serr)
		} else if serr != nil {
			err = serr
		}
	}
	return err
}

// round reads the policy file and the node's labels, and applies the policy.
func (a *policyApplier) round(ctx context.Context, verbose bool) (node.PolicyRound, error) {
	data, err := os.ReadFile(a.file)
	if err != nil {
		return node.PolicyRound{}, fmt.Errorf("read the node policy: %w", err)
	}
	p, err := node.LoadPolicy(data)
	if err != nil {
		return node.PolicyRound{}, fmt.Errorf("%s: %w (nothing applied)", a.file, err)
	}
	n := node.PolicyNode{Name: a.node, Labels: a.labels, LabelsKnown: a.labelsKnown}
	if a.labelsFile != "" {
		fromFile, err := readLabelsFile(a.labelsFile)
		if err != nil {
			return node.PolicyRound{}, fmt.Errorf("%w (nothing applied)", err)
		}
		n.Labels = mergeLabels(a.labels, fromFile)
	}
	edited := a.last != nil && !bytes.Equal(a.last, data)
	a.last = data
	var out bytes.Buffer
	r, err := node.ApplyPolicy(ctx, p, n, a.base, &out)
	if verbose || edited || r.Changed || err != nil {
		if edited {
			fmt.Fprintf(a.stdout, "%s changed: applying it\n", a.file)
		}
		_, _ = a.stdout.Write(out.Bytes())
	}
	if err != nil {
		return r, fmt.Errorf("node policy %s on node %s: %w", a.file, a.node, err)
	}
	return r, nil
}

// mergeLabels returns the labels of both maps; b wins.
func mergeLabels(a, b map[string]string) map[string]string {
	out := maps.Clone(a)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, b)
	return out
}
