package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/node"
)

func cmdInstallCNI(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var dest, src, name string
	var wait, check bool
	fs := newFlags("install-cni", "install-cni [--dest DIR] [--src FILE] [--name NAME] [--wait | --check]", stderr)
	fs.StringVar(&dest, "dest", node.DefaultCNIBinDir, "directory the container runtime loads CNI plugins from (created if missing)")
	fs.StringVar(&src, "src", "", "plugin binary to install (default: "+node.PluginName+" in the directory of this chelsio-vf)")
	fs.StringVar(&name, "name", node.PluginName, "file name in --dest: the type of the NetworkAttachmentDefinition")
	fs.BoolVar(&wait, "wait", false, "after installing, wait for SIGTERM (the main container of the installer DaemonSet: a new image installs its binary when the pod restarts)")
	fs.BoolVar(&check, "check", false, "install nothing: exit 0 when --dest holds the plugin, identical to --src with mode 0755, else 1 saying what differs (the installer's readiness probe)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if wait && check {
		return errors.New("install-cni: --wait and --check exclude each other")
	}
	from := src
	if from == "" {
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("install-cni: find the plugin next to this program: %w (pass --src)", err)
		}
		from = filepath.Join(filepath.Dir(self), node.PluginName)
	}
	if check {
		if err := node.Verify(from, dest, name); err != nil {
			return fmt.Errorf("install-cni --check: %w", err)
		}
		fmt.Fprintf(stdout, "%s is installed and identical to %s\n", filepath.Join(dest, name), from)
		return nil
	}
	in, err := node.Install(from, dest, name)
	if err != nil {
		if src == "" && errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("install-cni: %w (pass --src)", err)
		}
		return fmt.Errorf("install-cni: %w", err)
	}
	if in.MadeDir {
		fmt.Fprintf(stdout, "created %s\n", dest)
	}
	fmt.Fprintln(stdout, in)
	if wait {
		<-ctx.Done()
	}
	return nil
}
