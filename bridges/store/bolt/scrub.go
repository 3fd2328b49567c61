package bolt

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	bbolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Scrub rewrites the closed store file at path with only its live data,
// so that what was deleted or overwritten is gone from the file: bbolt is
// copy-on-write, and a page it freed keeps the old bytes (a deleted
// user's sealed credentials, values sealed with a retired key) until it is
// reused. The copy is written next to the file, synced, and renamed over
// it; the file keeps its mode, owner and group. It fails with an error wrapping
// store.ErrLocked if a process holds the file. The old bytes may still
// exist on the disk's free blocks, which only the file system can erase.
func Scrub(path string) error {
	src, err := bbolt.Open(path, 0, &bbolt.Options{Timeout: time.Second})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return &lockedError{path: path}
	}
	if err != nil {
		return fmt.Errorf("store: scrub %s: %w", path, err)
	}
	defer src.Close()
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("store: scrub %s: %w", path, err)
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".scrub")
	os.Remove(tmp) // a copy left by an interrupted scrub
	dst, err := bbolt.Open(tmp, fi.Mode().Perm(), nil)
	if err != nil {
		return fmt.Errorf("store: scrub %s: %w", path, err)
	}
	err = bbolt.Compact(dst, src, 1<<20)
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && err == nil {
		// The service's user must still own it: admin commands run as
		// root, the gateway as its own user.
		err = os.Chown(tmp, int(st.Uid), int(st.Gid))
	}
	if err == nil {
		err = syncFile(tmp)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncFile(filepath.Dir(path))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("store: scrub %s: %w", path, err)
	}
	return nil
}

func syncFile(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
