//go:build !faultinject

package main

// faultHook is nil in a release binary: no step can be made to fail.
func faultHook() func(string) error { return nil }
