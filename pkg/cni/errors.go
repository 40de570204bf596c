package cni

import (
	"errors"

	"github.com/containernetworking/cni/pkg/types"
)

// Error codes of the CNI spec that the plugin returns, and its own.
const (
	CodeInvalidEnv    = types.ErrInvalidEnvironmentVariables // 4: bad CNI_* value
	CodeIOFailure     = types.ErrIOFailure                   // 5
	CodeDecoding      = types.ErrDecodingFailure             // 6
	CodeInvalidConfig = types.ErrInvalidNetworkConfig        // 7: NetConf refused
	CodeInvalidNetNS  = types.ErrInvalidNetNS                // 8: CNI_NETNS is no pod's namespace
	CodeTryAgainLater = types.ErrTryAgainLater               // 11: VF lock held, VF in transit
	CodeNotAvailable  = 50                                   // STATUS: cannot serve ADDs
	CodeVFBusy        = 101                                  // the VF belongs to another live attachment
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
// runtime: the whole message, with the code of the outermost codedError, else of
// an error a delegated plugin (IPAM) returned, else 999 (internal). A delegated
// plugin's error keeps the context around it ("IPAM host-local ADD: …", an undo
// that failed too, the other errors of a DEL).
func AsCNIError(err error) *types.Error {
	if err == nil {
		return nil
	}
	// err itself, not its chain: a wrapped one gains its context below.
	if te, ok := err.(*types.Error); ok { //nolint:errorlint // see above
		return te
	}
	code := uint(types.ErrInternal)
	var ce *codedError
	var te *types.Error
	switch {
	case errors.As(err, &ce):
		code = ce.code
	case errors.As(err, &te) && te.Code != 0:
		code = te.Code
	}
	return &types.Error{Code: code, Msg: err.Error()}
}
