package pebble_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/bridges/store/pebble"
)

func ExampleOpen() {
	dir, _ := os.MkdirTemp("", "jabbergate")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "state") // a directory, created by Open

	s, err := pebble.Open(path)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	ctx := context.Background()
	q := store.Queue{Bridge: "telegram.example.org", JID: "alice@example.org", Kind: store.Outbox}
	ids, _ := s.Append(ctx, q, []byte("hello"), []byte("world"))
	fmt.Println(ids)

	// A second process (or Open) on the same directory fails.
	_, err = pebble.Open(path)
	fmt.Println(errors.Is(err, store.ErrLocked))
	// Output:
	// [00000000000000000001 00000000000000000002]
	// true
}
