package pebble

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/jabbergate/jabbergate/bridges/store"
)

// TestWALSyncFailureIsFatal: when a WAL sync fails (a full disk), Pebble
// calls Logger.Fatalf; the store then calls its fatal function (in the
// gateway: log and exit) once, with a message naming the directory, the
// error and why the gateway stops — and nothing else happens: the write's
// caller is not answered, and reads still see only the durable writes,
// not the failed one (which Pebble has already put in its memtable).
func TestWALSyncFailureIsFatal(t *testing.T) {
	f := &walFaults{}
	fatal := make(chan string, 10)
	s, dir := openFaulty(t, f, onFatal(func(msg string) { fatal <- msg }))
	// Not closed: after Fatalf the database is unusable (in the gateway
	// the process is gone). Release the directory's identity, which a
	// later test's directory may get.
	t.Cleanup(func() { releaseDir(s.dir) })
	ctx := context.Background()
	q := store.Queue{Bridge: "b", JID: "j", Kind: store.Inbox}
	if _, err := s.Append(ctx, q, []byte("durable")); err != nil {
		t.Fatal(err)
	}

	f.fail()
	appended := make(chan error, 1)
	go func() { _, err := s.Append(ctx, q, []byte("lost")); appended <- err }()
	msg := <-fatal
	for _, want := range []string{dir, errNoSpace.Error(), "the gateway stops: the store can no longer write durably"} {
		if !strings.Contains(msg, want) {
			t.Errorf("fatal message %q does not contain %q", msg, want)
		}
	}
	if es, err := s.Read(ctx, q, "", 10); err != nil || len(es) != 1 || string(es[0].Payload) != "durable" {
		t.Errorf("Read after the failed sync = %q, %v; want only the durable entry", es, err)
	}
	if _, err := s.GetAccount(ctx, "b", "j"); err != store.ErrNotFound {
		t.Errorf("GetAccount = %v", err)
	}
	select {
	case err := <-appended:
		t.Errorf("the Append whose sync failed returned (%v)", err)
	default:
	}
	select {
	case msg := <-fatal:
		t.Errorf("fatal called again: %s", msg)
	default:
	}
}

// TestWALSyncFailureExits: by default a failed WAL sync ends the process
// with status 1 after logging the error at error level through slog.
// The process is this test binary run again as a child.
func TestWALSyncFailureExits(t *testing.T) {
	if dir := os.Getenv("JG_PEBBLE_FATAL_DIR"); dir != "" {
		f := &walFaults{}
		s, err := Open(dir, SweepInterval(-1), withFS(errorfs.Wrap(vfs.Default, f)))
		if err != nil {
			fmt.Println("open:", err)
			os.Exit(2)
		}
		f.fail()
		_, err = s.Append(context.Background(), store.Queue{Bridge: "b", JID: "j", Kind: store.Inbox}, []byte("x"))
		fmt.Println("Append returned:", err)
		os.Exit(3)
	}
	dir := filepath.Join(t.TempDir(), "state")
	cmd := exec.Command(os.Args[0], "-test.run=^TestWALSyncFailureExits$")
	cmd.Env = append(os.Environ(), "JG_PEBBLE_FATAL_DIR="+dir)
	out, err := cmd.CombinedOutput()
	if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 1 {
		t.Fatalf("child: %v, want exit status 1; output:\n%s", err, out)
	}
	want := "ERROR store: pebble: " + dir + ": pebble: fatal commit error: " + errNoSpace.Error() +
		"; the gateway stops: the store can no longer write durably\n"
	if !strings.HasSuffix(string(out), want) {
		t.Fatalf("child output:\n%s\nwant it to end with %q", out, want)
	}
}
