package bolt

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/jabbergate/jabbergate/bridges/store"
	bbolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// damagedError is a store file that Open refuses because it is not a
// whole bbolt database. It wraps store.ErrCorrupt.
type damagedError struct {
	path, problem string
}

func (e *damagedError) Error() string {
	return "store file " + e.path + " is damaged: " + e.problem
}

func (e *damagedError) Unwrap() error { return store.ErrCorrupt }

// The parts of bbolt's file format checkFile reads (go.etcd.io/bbolt,
// internal/common: page.go, meta.go). A page starts with a 16-byte header
// (id uint64, flags uint16, count uint16, overflow uint32); pages 0 and 1
// are meta pages, whose meta follows the header. Numbers are in the
// machine's byte order, as bbolt writes them.
const (
	pageHeaderSize = 16
	branchPageFlag = 0x01
	leafPageFlag   = 0x02
	freelistFlag   = 0x10
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	noFreelist     = ^uint64(0)
	// meta field offsets within the page
	metaMagic    = pageHeaderSize + 0
	metaVersion  = pageHeaderSize + 4
	metaPageSize = pageHeaderSize + 8
	metaRoot     = pageHeaderSize + 16
	metaFreelist = pageHeaderSize + 32
	metaPgid     = pageHeaderSize + 40
	metaTxid     = pageHeaderSize + 48
	metaChecksum = pageHeaderSize + 56
)

// boltMeta is what checkFile uses of one meta page.
type boltMeta struct {
	pageSize, root, freelist, pgid, txid uint64
}

// readMeta decodes the meta page in buf; ok is false when it is not a
// valid meta page of this bbolt version (magic, version, checksum).
func readMeta(buf []byte) (m boltMeta, ok bool) {
	if len(buf) < metaChecksum+8 {
		return m, false
	}
	ne := binary.NativeEndian
	if ne.Uint32(buf[metaMagic:]) != boltMagic || ne.Uint32(buf[metaVersion:]) != boltVersion {
		return m, false
	}
	h := fnv.New64a()
	h.Write(buf[pageHeaderSize:metaChecksum])
	if h.Sum64() != ne.Uint64(buf[metaChecksum:]) {
		return m, false
	}
	return boltMeta{
		pageSize: uint64(ne.Uint32(buf[metaPageSize:])),
		root:     ne.Uint64(buf[metaRoot:]),
		freelist: ne.Uint64(buf[metaFreelist:]),
		pgid:     ne.Uint64(buf[metaPgid:]),
		txid:     ne.Uint64(buf[metaTxid:]),
	}, true
}

// checkFile reads the meta pages of the existing file at path, and the
// page headers they point to, before bbolt maps the file: bbolt trusts
// them, and a file shorter than its meta page says faults (SIGBUS) when a
// page past its end is read, and a freelist page that is not one panics.
// It returns a *damagedError, nil when the file looks whole (or is
// missing: a new store), or another error when it cannot be read.
//
// A file no meta page of which is valid is left to bbolt, which refuses
// it (Open turns that into a *damagedError too).
func checkFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: open %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("store: open %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil // bbolt says what is wrong
	}
	size := uint64(fi.Size())
	if size == 0 {
		return &damagedError{path, "the file is empty (0 bytes), so it holds no store; Open creates a new store only where no file exists: " +
			"restore the file from a backup, or delete it to start with an empty store"}
	}
	readAt := func(off uint64, n int) []byte {
		buf := make([]byte, n)
		k, _ := f.ReadAt(buf, int64(off))
		return buf[:k]
	}
	var metas []boltMeta
	if m, ok := readMeta(readAt(0, 4096)); ok {
		metas = append(metas, m)
		if m1, ok := readMeta(readAt(m.pageSize, 4096)); ok && m1.pageSize == m.pageSize {
			metas = append(metas, m1)
		}
	} else {
		// Page 0 is unreadable: find page 1 as bbolt does, trying the page
		// sizes it supports.
		for ps := uint64(1024); ps <= 1024<<14 && ps+metaChecksum+8 <= size; ps <<= 1 {
			if m1, ok := readMeta(readAt(ps, 4096)); ok && m1.pageSize == ps {
				metas = append(metas, m1)
				break
			}
		}
	}
	if len(metas) == 0 {
		return nil
	}
	m := metas[0] // the meta bbolt uses: the valid one with the highest txid
	if len(metas) == 2 && metas[1].txid > m.txid {
		m = metas[1]
	}
	ps := m.pageSize
	if ps < 1024 || ps > 1<<24 || m.pgid < 2 || m.pgid > (1<<62)/ps {
		return &damagedError{path, fmt.Sprintf("its meta page is inconsistent (page size %d, %d pages)", ps, m.pgid)}
	}
	if need := m.pgid * ps; size < need {
		return &damagedError{path, fmt.Sprintf("the file is %d bytes but its meta page says %d (%d pages of %d bytes): truncated?", size, need, m.pgid, ps)}
	}
	if m.root < 2 || m.root >= m.pgid {
		return &damagedError{path, fmt.Sprintf("its meta page names root page %d, outside the file's %d pages", m.root, m.pgid)}
	}
	if m.freelist != noFreelist && (m.freelist < 2 || m.freelist >= m.pgid) {
		return &damagedError{path, fmt.Sprintf("its meta page names freelist page %d, outside the file's %d pages", m.freelist, m.pgid)}
	}
	header := func(pgid uint64) (id uint64, flags uint16) {
		h := readAt(pgid*ps, pageHeaderSize)
		if len(h) < pageHeaderSize {
			return ^uint64(0), 0
		}
		return binary.NativeEndian.Uint64(h), binary.NativeEndian.Uint16(h[8:])
	}
	if m.freelist != noFreelist {
		if id, flags := header(m.freelist); id != m.freelist || flags&freelistFlag == 0 {
			return &damagedError{path, fmt.Sprintf("invalid freelist page %d (its header says page %d, flags %#x)", m.freelist, id, flags)}
		}
	}
	if id, flags := header(m.root); id != m.root || flags&(branchPageFlag|leafPageFlag) == 0 {
		return &damagedError{path, fmt.Sprintf("invalid root page %d (its header says page %d, flags %#x)", m.root, id, flags)}
	}
	return nil
}

// guarded runs fn, turning a panic or a memory fault (a page of the
// mapped file that cannot be read) into a *damagedError about path: bbolt
// trusts the pages it reads, and panics or faults on damaged ones.
// SetPanicOnFault is per goroutine, and bbolt's Open and transactions
// run on the caller's, so this one is covered; the setting is restored.
func guarded(path string, fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = &damagedError{path, fmt.Sprintf("reading it failed: %v", r)}
		}
	}()
	return fn()
}

// openDB opens path with bbolt, checking the file first (checkFile), and
// runs first in a write transaction, turning bbolt's refusals and panics
// on a damaged file into a *damagedError, and a held lock into a
// *lockedError.
//
// After a panic in first, bbolt has rolled the transaction back and the
// database is closed, releasing the file lock (waiting at most a second:
// a rollback that panicked too may leave bbolt's writer lock held). After
// a panic inside bbolt.Open, the file descriptor is closed, but the
// mapping bbolt made, which it does not return, keeps the lock until the
// process ends: the process is expected to stop, as it cannot use the
// store.
func openDB(path string, bo *bbolt.Options, first func(tx *bbolt.Tx) error) (*bbolt.DB, error) {
	if err := checkFile(path); err != nil {
		return nil, err
	}
	var file *os.File
	bo.OpenFile = func(name string, flag int, mode os.FileMode) (*os.File, error) {
		f, err := os.OpenFile(name, flag, mode)
		file = f
		return f, err
	}
	var db *bbolt.DB
	err := guarded(path, func() error {
		var err error
		db, err = bbolt.Open(path, 0o600, bo)
		return err
	})
	var de *damagedError
	if err == nil {
		err = guarded(path, func() error { return db.Update(first) })
		switch {
		case errors.As(err, &de):
			closeDamaged(path, db)
			return nil, err
		case err != nil:
			db.Close()
		}
	}
	switch {
	case err == nil:
		return db, nil
	case errors.As(err, &de):
		if file != nil {
			file.Close()
		}
		return nil, err
	case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrChecksum):
		return nil, &damagedError{path, "no valid meta page (" + err.Error() + "): it is not a jabbergate bolt store, or its first pages are overwritten"}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return nil, &damagedError{path, err.Error()}
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, &lockedError{path: path}
	}
	return nil, fmt.Errorf("store: open %s: %w", path, err)
}

// closeDamaged closes db after a transaction on it panicked, giving up
// after a second (see openDB).
func closeDamaged(path string, db *bbolt.DB) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = guarded(path, db.Close)
	}()
	select {
	case <-done:
	case <-time.After(time.Second):
	}
}

// Check runs bbolt's consistency check, which reads every page of the
// file, and returns a *damagedError naming the first problems it finds,
// or nil. It reads the whole file — about 0.3 s for a 400 MB store of
// 100 000 users already in the page cache, seconds from a cold disk — so
// Open does not run it (Open checks the meta, root and freelist pages,
// and the pages its first transaction reads); `jabbergate doctor` does.
// Run it while no other process writes: the gateway holds the file lock.
func (s *Store) Check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var problems []string
	more := 0
	err := guarded(s.path, func() error {
		return s.db.View(func(tx *bbolt.Tx) error {
			for err := range tx.Check() {
				if len(problems) < 3 {
					problems = append(problems, err.Error())
				} else {
					more++
				}
			}
			return nil
		})
	})
	if err != nil || len(problems) == 0 {
		return err
	}
	msg := "consistency check: " + strings.Join(problems, "; ")
	if more > 0 {
		msg += fmt.Sprintf("; and %d more", more)
	}
	return &damagedError{s.path, msg}
}
