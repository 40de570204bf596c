// Package e2e holds end-to-end tests that run the real binaries on the emulated
// Chelsio node. They need root (network namespaces, mounts) and are named
// TestPrivileged…; CI runs them as root and fails if any skips.
package e2e
