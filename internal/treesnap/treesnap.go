// Package treesnap describes a directory tree for tests that must show that
// nothing under it was created, removed or changed.
package treesnap

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// Of describes every entry under root, root included, links not followed: by
// path relative to root, its type and mode, a link's target, a file's size and
// content (quoted up to 256 bytes, else a hash). Two equal descriptions mean
// nothing changed; cmp.Diff of two shows what did.
func Of(tb testing.TB, root string) map[string]string {
	tb.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		desc := fi.Mode().String()
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			desc += " -> " + target
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if len(b) <= 256 {
				desc += fmt.Sprintf(" %d %q", len(b), b)
			} else {
				sum := sha256.Sum256(b)
				desc += fmt.Sprintf(" %d sha256:%s", len(b), hex.EncodeToString(sum[:8]))
			}
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}
