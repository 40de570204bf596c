package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/emulate"
)

const emulateUsage = `Usage: chelsio-vf emulate <command> [options]

Run an emulated Chelsio node: workers as network namespaces, each with a fake sysfs
tree shaped like a real adapter and real veth netdevs as its VF and port netdevs;
VF k of worker 1 is cabled to VF k of worker 2.

Commands:
  up       build the workers and start the watcher that keeps sysfs in step
  down     remove everything up created
  status   show the workers, their VFs and the watcher
  exec     run a command as if on a worker: exec --worker N -- CMD [ARGS...]

Every command takes --name (default chelsio-emu) to run several nodes side by side.
`

func cmdEmulate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, emulateUsage)
		return errUsage
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "up":
		return emulateUp(ctx, args, stdout, stderr)
	case "down":
		name, runDir, err := parseCommon("down", "[--name NAME]", args, stderr)
		if err != nil {
			return err
		}
		if err := emulate.Down(runDir, name, stdout); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "emulated node %s is down\n", name)
		return nil
	case "status":
		return emulateStatus(args, stdout, stderr)
	case "exec":
		return emulateExec(args, stderr)
	case "serve":
		name, runDir, err := parseCommon("serve", "[--name NAME] (started by up)", args, stderr)
		if err != nil {
			return err
		}
		return emulate.Serve(ctx, runDir, name, stdout)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, emulateUsage)
		return nil
	}
	fmt.Fprintf(stderr, "chelsio-vf emulate: unknown command %q\n\n%s", sub, emulateUsage)
	return errUsage
}

func commonFlags(fs interface {
	String(string, string, string) *string
},
) (name, runDir *string) {
	name = fs.String("name", emulate.DefaultName, "name prefix of the emulated node's namespaces, netdevs and state")
	runDir = fs.String("run-dir", "/run", "directory that holds the state directory <run-dir>/<name>")
	return name, runDir
}

// parseCommon parses the flags of emulate cmd, which takes only those of
// commonFlags; synopsis follows "emulate cmd" in its usage.
func parseCommon(cmd, synopsis string, args []string, stderr io.Writer) (name, runDir string, err error) {
	fs := newFlags("emulate "+cmd, "emulate "+cmd+" "+synopsis, stderr)
	n, r := commonFlags(fs)
	if err := parse(fs, args); err != nil {
		return "", "", err
	}
	return *n, *r, nil
}

func emulateUp(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("emulate up", "emulate up [options]", stderr)
	name, runDir := commonFlags(fs)
	model := fs.String("model", "T62100-CR", "adapter model of every worker")
	vfs := fs.Int("vfs", 8, "VFs per worker (1-64): PF0 first, 16 per PF")
	workers := fs.Int("workers", 2, "number of workers (1-8); worker 2i-1 is cabled to worker 2i")
	mtu := fs.Int("mtu", 1500, "MTU of the VF and port netdevs (81-9600)")
	spread := fs.Bool("spread", false, "place VFs round-robin on PF0-PF3 (spread over ports) instead of PF0 first")
	if err := parse(fs, args); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	st, err := emulate.Up(ctx, emulate.Config{Name: *name, RunDir: *runDir, Model: *model, VFs: *vfs, Workers: *workers, MTU: *mtu, Spread: *spread}, self, stdout)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "emulated node %s is up: %d workers; try `chelsio-vf emulate exec --name %s --worker 1 -- chelsio-vf list`\n", st.Config.Name, len(st.Workers), st.Config.Name)
	return nil
}

func emulateStatus(args []string, stdout, stderr io.Writer) error {
	name, runDir, err := parseCommon("status", "[--name NAME]", args, stderr)
	if err != nil {
		return err
	}
	st, workers, alive, err := emulate.Status(runDir, name)
	if err != nil {
		return err
	}
	watcher := "running"
	if !alive {
		watcher = "NOT RUNNING: sysfs trees no longer follow the netdevs; run down and up again"
	}
	fmt.Fprintf(stdout, "emulated node %s: %s, %d VFs per worker, MTU %d; watcher pid %d %s\n", st.Config.Name, st.Config.Model, st.Config.VFs, st.Config.MTU, st.WatcherPID, watcher)
	for _, w := range workers {
		ns := w.Netns
		if !w.NetnsOK {
			ns += " (MISSING)"
		}
		fmt.Fprintf(stdout, "worker %d: netns %s, sysfs %s, cabled to worker %d\n", w.Index, ns, w.Sysfs, w.PeerOf)
		fmt.Fprintf(stdout, "  %d VFs at home: %s\n", len(w.InNetns), strings.Join(w.InNetns, " "))
		if len(w.Away) > 0 {
			fmt.Fprintf(stdout, "  %d VFs away (in a pod): %s\n", len(w.Away), strings.Join(w.Away, " "))
		}
	}
	if !alive {
		return errReported
	}
	return nil
}

func emulateExec(args []string, stderr io.Writer) error {
	fs := newFlags("emulate exec", "emulate exec [--name NAME] --worker N -- CMD [ARGS...]", stderr)
	name, runDir := commonFlags(fs)
	worker := fs.Int("worker", 1, "worker to run on")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "chelsio-vf emulate exec: no command given")
		fs.Usage()
		return errUsage
	}
	st, err := emulate.Load(*runDir, *name)
	if err != nil {
		return err
	}
	w, err := st.Worker(*worker)
	if err != nil {
		return err
	}
	return emulate.Exec(w, fs.Args(), emulate.Environ())
}
