package cni

import (
	"errors"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/cnistore"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/safepath"
)

// Error codes of the CNI spec that the plugin returns, and its own.
const (
	CodeIncompatibleVersion = types.ErrIncompatibleCNIVersion      // 1: cniVersion not spoken
	CodeInvalidEnv          = types.ErrInvalidEnvironmentVariables // 4: bad CNI_* value
	CodeIOFailure           = types.ErrIOFailure                   // 5
	CodeDecoding            = types.ErrDecodingFailure             // 6
	CodeInvalidConfig       = types.ErrInvalidNetworkConfig        // 7: NetConf refused
	CodeInvalidNetNS        = types.ErrInvalidNetNS                // 8: CNI_NETNS is no pod's namespace
	CodeTryAgainLater       = types.ErrTryAgainLater               // 11: VF lock held, VF in transit
	CodeNotAvailable        = 50                                   // STATUS: cannot serve ADDs
	CodeVFBusy              = 101                                  // the VF belongs to another live attachment
	CodeInternal            = types.ErrInternal                    // 999: anything else
)

// codedError carries a CNI error code to the outermost layer.
type codedError struct {
	code uint
	err  error
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

// withCode tags err with a CNI error code; nil stays nil.
func withCode(code uint, err error) error {
	if err == nil {
		return nil
	}
	return &codedError{code: code, err: err}
}

// AsCNIError turns any error of the plugin into the *types.Error printed to the
// runtime: the whole message, with the code of the outermost error that carries
// one (codeOf), else of an error a delegated plugin (IPAM) returned, else 999
// (internal). A delegated plugin's error keeps the context around it ("IPAM
// host-local ADD: …", an undo that failed too, the other errors of a DEL).
func AsCNIError(err error) *types.Error {
	if err == nil {
		return nil
	}
	// err itself, not its chain: a wrapped one gains its context below.
	if te, ok := err.(*types.Error); ok { //nolint:errorlint // see above
		return te
	}
	code, ok := codeIn(err)
	var te *types.Error
	switch {
	case ok:
	case errors.As(err, &te) && te.Code != 0:
		code = te.Code
	default:
		code = CodeInternal
	}
	return &types.Error{Code: code, Msg: err.Error()}
}

// codeOf is the CNI code of err itself, not of its chain: the code withCode gave
// it, or the code of one of the typed errors of the packages the plugin builds on.
// Every such error type is mapped here, and only here.
func codeOf(err error) (uint, bool) {
	switch e := err.(type) { //nolint:errorlint // one link of the chain: see codeIn
	case *codedError:
		return e.code, true
	case *safepath.Refusal, *cnistore.TooLargeError:
		return CodeInvalidConfig, true // the config names the path, or is too large
	case *safepath.IOError, *cnistore.IOError:
		return CodeIOFailure, true
	case *cnistore.KeyError:
		return CodeInvalidEnv, true
	case *cnistore.LockedError:
		return CodeTryAgainLater, true
	}
	return 0, false
}

// codeIn is codeOf of the first error of err's tree that has a code, in the order
// errors.As walks the tree: the outermost first, a joined error's in turn.
func codeIn(err error) (uint, bool) {
	if code, ok := codeOf(err); ok {
		return code, true
	}
	switch u := err.(type) { //nolint:errorlint // walks the chain itself
	case interface{ Unwrap() error }:
		if next := u.Unwrap(); next != nil {
			return codeIn(next)
		}
	case interface{ Unwrap() []error }:
		for _, next := range u.Unwrap() {
			if code, ok := codeIn(next); ok {
				return code, true
			}
		}
	}
	return 0, false
}
