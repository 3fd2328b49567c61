package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// CheckStorePath reports, as an *Error on store.path naming file, a
// store.path where the bolt or pebble store cannot be opened as the file
// system is now: for bolt a directory (or another non-regular file) or a
// missing parent directory, for pebble a regular file (or another
// non-directory) or a missing parent directory. Both stores create their
// file or directory on first start, never the directory holding it. It
// returns nil for redis and when the path is fine or the problem is of
// another kind (permissions: opening the store reports those), and, in a
// LoadWith check, when Load reported store.backend or store.path.
//
// Load checks only the pebble-on-a-file mistake, which is about the
// file's meaning; `jabbergate run` and check-config call CheckStorePath
// too, so that a path run would fail to open is a configuration error
// (exit status 78) rather than a runtime failure restarted forever.
func (c *Config) CheckStorePath(file string) error {
	if c.Reported("store.backend") || c.Reported("store.path") {
		return nil // reported by Load
	}
	c = c.Defaulted()
	s := c.Store
	if s.Backend != "bolt" && s.Backend != "pebble" {
		return nil
	}
	p := s.Path
	if p == "" { // a Config not from Load
		p = DefaultStorePath
		if s.Backend == "pebble" {
			p = DefaultPebbleStorePath
		}
	}
	if prob := storePathProblem(s.Backend, p, true); prob != "" {
		return &Error{File: file, Line: c.Line("store.path"), Key: "store.path", Problem: prob}
	}
	return nil
}

// storePathProblem returns why the backend's store cannot live at p, or
// "": what p names if it exists, and with parent whether the directory
// holding it exists when p does not.
func storePathProblem(backend, p string, parent bool) string {
	fi, err := os.Stat(p)
	switch {
	case err == nil:
		if prob := storeKindProblem(backend, p, fi); prob != "" || !parent {
			return prob
		}
		// Opened for writing (pebble: files made in the directory).
		mode := uint32(unix.R_OK | unix.W_OK)
		if fi.IsDir() {
			mode |= unix.X_OK
		}
		return AccessProblem(p, mode, "the "+backend+" store")
	case parent && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)):
		if prob := storeParentProblem(backend, p); prob != "" {
			return prob
		}
		return AccessProblem(filepath.Dir(p), unix.W_OK|unix.X_OK, "the "+backend+" store is created in its directory")
	}
	return "" // unreadable (Open says so)
}

// AccessProblem says why this process may not use p with mode (unix
// R_OK, W_OK, X_OK bits) for what, or "". It is checked as the user
// running the command: check-config run by another user than the service
// may differ from what the service meets.
func AccessProblem(p string, mode uint32, what string) string {
	err := unix.Access(p, mode)
	if err == nil || !errors.Is(err, fs.ErrPermission) && !errors.Is(err, unix.EROFS) {
		return ""
	}
	need := []string{}
	for _, m := range []struct {
		bit  uint32
		name string
	}{{unix.R_OK, "read"}, {unix.W_OK, "write"}, {unix.X_OK, "search"}} {
		if mode&m.bit != 0 {
			need = append(need, m.name)
		}
	}
	reason := "permission denied"
	if errors.Is(err, unix.EROFS) {
		reason = "read-only file system"
	}
	return fmt.Sprintf("%s: user %d may not %s %q (%s): fix its owner or mode, or give another path",
		what, os.Geteuid(), strings.Join(need, " and "), p, reason)
}

func storeKindProblem(backend, p string, fi fs.FileInfo) string {
	if backend == "pebble" {
		switch {
		case fi.Mode().IsRegular():
			return fmt.Sprintf("%q is a regular file, but the pebble backend keeps its data in a directory (a bolt store? bolt and pebble do not share data): give another path", p)
		case !fi.IsDir():
			return fmt.Sprintf("%q is not a directory; the pebble backend keeps its data in a directory", p)
		}
		return ""
	}
	switch {
	case fi.IsDir():
		return fmt.Sprintf("%q is a directory, but the bolt backend keeps its data in one file (a pebble store? bolt and pebble do not share data): give a file name", p)
	case !fi.Mode().IsRegular():
		return fmt.Sprintf("%q is not a regular file; the bolt backend keeps its data in one file", p)
	}
	return ""
}

func storeParentProblem(backend, p string) string {
	dir := filepath.Dir(p)
	fi, err := os.Stat(dir)
	what := "file"
	if backend == "pebble" {
		what = "directory"
	}
	switch {
	case err == nil && fi.IsDir():
		return ""
	case err == nil:
		return fmt.Sprintf("%q is not a directory, so the %s store %q cannot be created in it: give another path", dir, backend, p)
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
		return fmt.Sprintf("directory %q does not exist: create it or give another path (the %s store's %s %q is created on first start, the directory holding it is not)",
			dir, backend, what, filepath.Base(p))
	}
	return ""
}

// CheckMediaDir reports, as an *Error on media.dir naming file, a
// media.dir the files from legacy contacts cannot be written to as the
// file system is now: an existing one that is not a directory or that
// this process may not write, or, when it does not exist, a nearest
// existing parent that is not a directory or that it may not write (the
// media store creates the directory and its missing parents). It returns
// nil while media is off (no media.base_url), and, in a LoadWith check,
// when Load reported a key it depends on. Like AccessProblem it is
// checked as the user running the command.
func (c *Config) CheckMediaDir(file string) error {
	if c.Reported("media.base_url") || c.Reported("media.dir") || c.Media.Dir == "" && c.Reported("store.path") {
		return nil // reported by Load (media.dir defaults to one next to store.path)
	}
	c = c.Defaulted()
	m := c.Media
	if m.BaseURL == "" || m.Dir == "" {
		return nil
	}
	at := func(problem string) error {
		return &Error{File: file, Line: c.Line("media.dir"), Key: "media.dir", Problem: problem}
	}
	p := m.Dir
	fi, err := os.Stat(p)
	if err == nil {
		if !fi.IsDir() {
			return at(fmt.Sprintf("%q is not a directory: give the directory files from legacy contacts are kept in", p))
		}
		if prob := AccessProblem(p, unix.R_OK|unix.W_OK|unix.X_OK, "the media directory"); prob != "" {
			return at(prob)
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil // unreadable: creating it says why
	}
	for parent := filepath.Dir(p); ; parent = filepath.Dir(parent) {
		fi, err := os.Stat(parent)
		switch {
		case err == nil && !fi.IsDir():
			return at(fmt.Sprintf("%q is not a directory, so the media directory %q cannot be created in it: give another path", parent, p))
		case err == nil:
			if prob := AccessProblem(parent, unix.W_OK|unix.X_OK, fmt.Sprintf("the media directory is created in %q", parent)); prob != "" {
				return at(prob)
			}
			return nil
		case !errors.Is(err, fs.ErrNotExist) || parent == filepath.Dir(parent):
			return nil
		}
	}
}
