package cnistore

import (
	"encoding/json"
	"errors"
	"io"
	"io/fs"
)

// wrapped is what the store's error types have in common: each only says which
// kind of failure its error, Err, is, and reads as Err.
type wrapped struct{ Err error }

func (e wrapped) Error() string { return e.Err.Error() }
func (e wrapped) Unwrap() error { return e.Err }

// KeyError refuses a CNI_CONTAINERID or CNI_IFNAME that cannot name an attachment.
type KeyError struct{ wrapped }

// IOError is a read or write of the store that failed: the node is at fault (a full
// disk, a read-only mount, permissions), not the config.
type IOError struct{ wrapped }

// TooLargeError refuses a record larger than the store reads back: the network
// config or the IPAM result that it holds is too large.
type TooLargeError struct{ wrapped }

// LockedError reports a VF whose lock another operation held for longer than the
// wait: the runtime should try again later.
type LockedError struct{ wrapped }

// CorruptError reports a state file whose content does not decode: empty or cut
// short (written just before a power loss: the state is not synced) or garbage.
type CorruptError struct {
	Path string // the state file
	Err  error  // what the decoder said
}

func (e *CorruptError) Error() string { return "read state " + e.Path + ": " + e.Err.Error() }
func (e *CorruptError) Unwrap() error { return e.Err }

// IsCorrupt reports whether err is, or wraps, a *CorruptError.
func IsCorrupt(err error) bool {
	var ce *CorruptError
	return errors.As(err, &ce)
}

// corrupt reports a decoder's error that says the content is not a record, rather
// than that it could not be read.
func corrupt(err error) bool {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	return errors.As(err, &syn) || errors.As(err, &typ) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
