package emulate

import "os"

// WorkerStatus is what Status reports of one worker.
type WorkerStatus struct {
	Worker
	NetnsOK   bool     // the namespace file exists
	InNetns   []string // VF netdevs present in the worker namespace (tree entries)
	Away      []string // VFs whose netdev is elsewhere (in a pod), by PCI address
	PeerOfVFs int      // the worker cabled to this one
}

// Status reports the node called name: per worker, which VFs are home and which
// are away, and whether the watcher runs.
func Status(runDir, name string) (*State, []WorkerStatus, bool, error) {
	st, err := Load(runDir, name)
	if err != nil {
		return nil, nil, false, err
	}
	var out []WorkerStatus
	for _, w := range st.Workers {
		ws := WorkerStatus{Worker: w, PeerOfVFs: w.PeerOf}
		_, err := os.Stat(w.NetnsPath())
		ws.NetnsOK = err == nil
		for _, v := range w.VFs {
			names, err := w.Root().ReadDir("bus/pci/devices/" + v.Addr.String() + "/net")
			if err == nil && len(names) > 0 {
				ws.InNetns = append(ws.InNetns, names[0])
			} else {
				ws.Away = append(ws.Away, v.Addr.String())
			}
		}
		out = append(out, ws)
	}
	return st, out, watcherAlive(st.WatcherPID), nil
}
