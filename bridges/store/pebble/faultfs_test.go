package pebble

import (
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// walFaults is an errorfs injector acting on the syncs of WAL files: hold
// makes the next one wait until released, fail makes them fail.
type walFaults struct {
	mu      sync.Mutex
	held    chan struct{} // closed when the sync is held
	release chan struct{}
	failing bool
}

// hold makes the next WAL sync wait until release is closed; held is
// closed when it does.
func (f *walFaults) hold() (held, release chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.held, f.release = make(chan struct{}), make(chan struct{})
	return f.held, f.release
}

// fail makes every later WAL sync fail.
func (f *walFaults) fail() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failing = true
}

var errNoSpace = errors.New("injected: no space left on device")

func (f *walFaults) MaybeError(op errorfs.Op) error {
	switch op.Kind {
	case errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
	default:
		return nil
	}
	if !strings.HasSuffix(op.Path, ".log") {
		return nil
	}
	f.mu.Lock()
	held, release, failing := f.held, f.release, f.failing
	f.held, f.release = nil, nil
	f.mu.Unlock()
	if held != nil {
		close(held)
		<-release
	}
	if failing {
		return errNoSpace
	}
	return nil
}

func (f *walFaults) String() string { return "walFaults" }

// openFaulty opens a store in a new directory whose WAL syncs f controls.
func openFaulty(t *testing.T, f *walFaults, opts ...Option) (*Store, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "state")
	s, err := Open(dir, append([]Option{SweepInterval(-1), withFS(errorfs.Wrap(vfs.Default, f))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return s, dir
}
