// Package cnistore is the chelsio-sriov CNI plugin's attachment store, under the
// plugin's dataDir: one state file per (container, ifname) attachment, and one owner
// record and one lock per VF. ADD records what it found before it changes anything,
// so that DEL and GC can give a VF back as it was after a failed or interrupted ADD
// or a pod whose network namespace is gone; chelsio-vf doctor reads it too.
//
// Every operation reaches the directory and its files through package safepath,
// never following a symbolic link, and refuses (*safepath.Refusal) what it must
// not use. Its other errors are typed, so that the plugin can give each its CNI
// code: *KeyError, *IOError, *TooLargeError and *LockedError; a state file that
// does not decode is a *CorruptError.
package cnistore
