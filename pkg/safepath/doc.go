// Package safepath opens a directory that a config names, and the files in it,
// without ever following a symbolic link.
//
// A walk opens the directory one path component at a time from "/", each one with
// O_NOFOLLOW relative to the one before, and checks each component before it goes
// below it: its type, with Private its owner and mode, and its filesystem, which
// must not be a pseudo filesystem of the kernel (procfs, sysfs, cgroupfs…), where
// a write is a command. It returns an O_PATH descriptor, and every file below is
// reached through that descriptor, again with O_NOFOLLOW. A path checked once is
// never resolved again, so nothing can swap a directory or file for a link between
// the check and the use.
//
// What the package will not use, it refuses with a *Refusal, which names the
// config's key, its path and the part at fault. A system call that fails on the way
// for another reason than a missing entry is an *IOError. A missing directory or
// file is an error that matches fs.ErrNotExist.
package safepath
