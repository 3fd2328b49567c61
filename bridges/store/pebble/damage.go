package pebble

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	pebbledb "github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/record"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/jabbergate/jabbergate/bridges/store"
)

// damagedError is a store directory Open refuses because its database is
// not whole. It wraps store.ErrCorrupt.
type damagedError struct {
	path, problem string
	err           error // Pebble's error, if any
}

func (e *damagedError) Error() string {
	return "store directory " + e.path + " is damaged: " + e.problem
}

func (e *damagedError) Unwrap() []error {
	if e.err == nil {
		return []error{store.ErrCorrupt}
	}
	return []error{store.ErrCorrupt, e.err}
}

// isData reports whether name is one of the files a Pebble database keeps
// its data in: tables, MANIFESTs (the list of tables) and write-ahead logs.
func isData(name string) bool {
	return strings.HasSuffix(name, ".sst") || strings.HasPrefix(name, "MANIFEST-") || strings.HasSuffix(name, ".log")
}

// Exists reports whether dir holds a Pebble store, or what is left of
// one (its marker or any data file): something Open would not create
// afresh.
func Exists(dir string) bool {
	es, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(es, func(e os.DirEntry) bool {
		return strings.HasPrefix(e.Name(), "marker.manifest.") || isData(e.Name())
	})
}

// checkDir refuses a directory that holds Pebble's data files but no
// marker.manifest.* file (which names the current MANIFEST): Pebble would
// take it for a new database, and delete the tables as obsolete.
func checkDir(path string, fsys vfs.FS) error {
	names, err := fsys.List(path)
	if err != nil {
		return fmt.Errorf("store: open %s: %w", path, err)
	}
	var data []string
	for _, n := range names {
		if strings.HasPrefix(n, "marker.manifest.") {
			return nil
		}
		if isData(n) {
			data = append(data, n)
		}
	}
	if len(data) == 0 {
		return nil // a new store
	}
	slices.Sort(data)
	list := strings.Join(data[:min(len(data), 3)], ", ")
	if len(data) > 3 {
		list += fmt.Sprintf(" and %d more", len(data)-3)
	}
	return &damagedError{path: path, problem: "it holds Pebble data files (" + list + ") but no marker.manifest.* file, which names the current MANIFEST; " +
		"opening it would start an empty store and delete those files as obsolete, so it is not opened: restore the directory from a backup"}
}

// openError turns the error of pebble.Open on path into a *damagedError
// when Pebble found the database damaged, naming the directory and what
// is damaged. Pebble's errors carry stack traces, printed with %+v only:
// the message keeps their text alone.
func openError(path string, fsys vfs.FS, err error) error {
	switch {
	case errors.Is(err, record.ErrInvalidChunk), errors.Is(err, record.ErrZeroedChunk), errors.Is(err, record.ErrUnexpectedEOF):
		var logs []string
		if names, lerr := fsys.List(path); lerr == nil {
			for _, n := range names {
				if strings.HasSuffix(n, ".log") {
					logs = append(logs, n)
				}
			}
		}
		slices.Sort(logs)
		return &damagedError{path: path, err: err, problem: fmt.Sprintf("its write-ahead log (%s) is damaged (%v): "+
			"the writes it holds cannot be replayed; restore the directory from a backup", strings.Join(logs, ", "), err)}
	case strings.Contains(err.Error(), "object size mismatch"): // Pebble's consistency check of the tables' sizes; no mark to test
		return &damagedError{path: path, err: err, problem: fmt.Sprintf("a table file's size differs from what its MANIFEST says (truncated?): %s; restore the directory from a backup",
			strings.ReplaceAll(err.Error(), "\n", "; "))}
	case pebbledb.IsCorruptionError(err):
		return &damagedError{path: path, err: err, problem: fmt.Sprintf("%v: restore the directory from a backup", err)}
	case errors.Is(err, fs.ErrNotExist) && strings.Contains(err.Error(), "MANIFEST"):
		return &damagedError{path: path, err: err, problem: fmt.Sprintf("its current MANIFEST is missing (%v): restore the directory from a backup", err)}
	}
	return fmt.Errorf("store: open %s: %w", path, err)
}
