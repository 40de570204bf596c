package cnistore

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/safepath"
)

// LockIfStored is Lock for DEL and GC, which make no directory: where the state
// directory, its vfs/ or its locks/ is missing, it takes no lock and returns an
// unlock that does nothing. None is needed then. ADD makes all three before it
// takes the lock or records anything, so nothing is recorded, and DEL has nothing
// of the VF's to read or restore: it only fetches the VF out of its own pod if it
// is there (the runtime never runs ADD and DEL of one attachment at once, and an
// ADD of another attachment that meets the VF in this pod finds it out of the
// host and answers try again) and frees its own lease (the IPAM plugin locks its
// own store). An ADD that makes the directories meanwhile takes the lock, and its
// owner record, should this DEL read it, names that other attachment: DEL leaves
// the VF alone then.
func (s Store) LockIfStored(addr string, timeout time.Duration) (func(), error) {
	d, err := s.open()
	switch {
	case isNotExist(err):
		return func() {}, nil
	case safepath.IsRefusal(err):
		return nil, err
	case err != nil:
		return nil, &IOError{wrapped{fmt.Errorf("lock VF %s: %w", addr, err)}}
	}
	_, verr := d.sub("vfs")
	_, lerr := d.sub("locks")
	d.close()
	if isNotExist(verr) || isNotExist(lerr) {
		return func() {}, nil
	}
	return s.Lock(addr, timeout)
}

// Lock takes the VF's lock (flock on locks/<addr>.lock), waiting up to timeout;
// then it fails with a *LockedError (try again later). Every verb takes it before it
// changes anything of the VF's, so it also refuses there a lock file or owner
// record that is a symbolic link or not a regular file. The directories must
// exist (ADD makes them with Ensure first; DEL takes LockIfStored).
func (s Store) Lock(addr string, timeout time.Duration) (func(), error) {
	l, err := s.LockVF(addr, timeout)
	if err != nil {
		return nil, err
	}
	return l.Unlock, nil
}

// VFLock is a VF's lock, held.
type VFLock struct{ f *os.File }

// File is the lock's open file. A child process that inherits it holds the lock
// with the caller, and after the caller dies, until the child exits: that is how
// an IPAM plugin still allocating when a runtime kills ADD keeps the runtime's DEL
// waiting until it is done.
func (l *VFLock) File() *os.File { return l.f }

// Unlock lets go of the lock, for every holder of its file.
func (l *VFLock) Unlock() {
	_ = unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
	_ = l.f.Close()
}

// LockVF is Lock that returns the held lock itself.
func (s Store) LockVF(addr string, timeout time.Duration) (*VFLock, error) {
	if err := checkAddr(addr); err != nil {
		return nil, err
	}
	fail := func(err error) (*VFLock, error) {
		if safepath.IsRefusal(err) {
			return nil, err
		}
		return nil, &IOError{wrapped{fmt.Errorf("lock VF %s: %w", addr, err)}}
	}
	d, err := s.open()
	if err != nil {
		return fail(err)
	}
	defer d.close()
	vfs, err := d.sub("vfs")
	if err != nil {
		return fail(err)
	}
	if err := s.setting().CheckFile(d.at("vfs", addr+".json"), vfs, addr+".json"); err != nil {
		return fail(err)
	}
	locks, err := d.sub("locks")
	if err != nil {
		return fail(err)
	}
	f, err := s.setting().OpenFile(d.at("locks", addr+".lock"), locks, addr+".lock", unix.O_RDWR|unix.O_CREAT, 0o600)
	if err != nil {
		return fail(err)
	}
	deadline := time.Now().Add(timeout)
	wait := time.Millisecond
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return &VFLock{f: f}, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			_ = f.Close()
			return nil, &IOError{wrapped{fmt.Errorf("lock VF %s: %w", addr, err)}}
		}
		if time.Now().After(deadline) {
			_ = f.Close()
			return nil, &LockedError{wrapped{fmt.Errorf("VF %s is locked by another chelsio-sriov operation for more than %v; try again", addr, timeout)}}
		}
		time.Sleep(wait)
		wait = min(wait*2, 50*time.Millisecond)
	}
}
