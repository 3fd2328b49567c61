// Package record is the encoding of store.Account and store.Contact shared by
// the store backends, and the queue entry ids and expiries of the embedded
// ones (ids.go).
//
// The form is a compact binary one rather than JSON because JSON replaces
// invalid UTF-8 in strings with U+FFFD, and legacy ids, names and fields are
// opaque strings that must round-trip byte for byte. A record is a version
// byte followed by fields in a fixed order: strings and byte slices as
// uvarint length + bytes, maps as uvarint count + sorted key/value strings,
// times as time.MarshalBinary output (length-prefixed). New fields are only
// ever appended; a decoder stops at the end of the data (missing trailing
// fields keep their zero value) and ignores trailing fields it does not know.
package record

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/jabbergate/jabbergate/bridges/store"
)

const (
	accountV1 = 1
	contactV1 = 1
)

// errCorrupt is returned for data that is not a record.
var errCorrupt = errors.New("record: corrupt data")

type writer struct{ b []byte }

func (w *writer) bytes(p []byte) {
	w.b = binary.AppendUvarint(w.b, uint64(len(p)))
	w.b = append(w.b, p...)
}

func (w *writer) str(s string) {
	w.b = binary.AppendUvarint(w.b, uint64(len(s)))
	w.b = append(w.b, s...)
}

func (w *writer) strmap(m map[string]string) {
	w.b = binary.AppendUvarint(w.b, uint64(len(m)))
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		w.str(k)
		w.str(m[k])
	}
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) done() bool { return r.err != nil || len(r.b) == 0 }

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errCorrupt
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = errCorrupt
		return nil
	}
	p := slices.Clone(r.b[:n])
	r.b = r.b[n:]
	return p
}

func (r *reader) str() string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.b)) {
		r.err = errCorrupt
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *reader) strmap() map[string]string {
	n := r.uvarint()
	if r.err != nil || n == 0 {
		return nil
	}
	if n > uint64(len(r.b)) { // each pair takes at least two bytes
		r.err = errCorrupt
		return nil
	}
	m := make(map[string]string, n)
	for range n {
		k := r.str()
		m[k] = r.str()
	}
	return m
}

// EncodeAccount encodes a.
func EncodeAccount(a *store.Account) ([]byte, error) {
	t, err := a.Created.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("record: account created time: %w", err)
	}
	w := writer{b: make([]byte, 0, 64+len(a.State))}
	w.b = append(w.b, accountV1)
	w.str(a.Bridge)
	w.str(a.JID)
	w.str(a.LegacyID)
	w.strmap(a.Fields)
	w.strmap(a.Settings)
	w.bytes(a.State)
	w.bytes(t)
	w.str(a.Subscription)
	return w.b, nil
}

// DecodeAccount decodes what EncodeAccount wrote.
func DecodeAccount(b []byte) (*store.Account, error) {
	if len(b) == 0 || b[0] != accountV1 {
		return nil, fmt.Errorf("%w: unknown account version", errCorrupt)
	}
	r := reader{b: b[1:]}
	a := &store.Account{}
	a.Bridge = r.str()
	a.JID = r.str()
	a.LegacyID = r.str()
	a.Fields = r.strmap()
	a.Settings = r.strmap()
	a.State = r.bytes()
	if len(a.State) == 0 {
		a.State = nil
	}
	if t := r.bytes(); r.err == nil && len(t) > 0 {
		if err := a.Created.UnmarshalBinary(t); err != nil {
			return nil, fmt.Errorf("%w: %v", errCorrupt, err)
		}
	}
	if !r.done() {
		a.Subscription = r.str()
	}
	if r.err != nil {
		return nil, r.err
	}
	return a, nil
}

// Contact flags, one uvarint after the subscription.
const (
	contactGroup       = 1 << 0
	contactUnavailable = 1 << 1
)

// EncodeContact encodes c.
func EncodeContact(c *store.Contact) ([]byte, error) {
	w := writer{b: make([]byte, 0, 16+len(c.Localpart)+len(c.LegacyID)+len(c.Name))}
	w.b = append(w.b, contactV1)
	w.str(c.Localpart)
	w.str(c.LegacyID)
	w.str(c.Name)
	w.str(c.Subscription)
	var flags uint64
	if c.Group {
		flags |= contactGroup
	}
	if c.Unavailable {
		flags |= contactUnavailable
	}
	w.b = binary.AppendUvarint(w.b, flags)
	if c.UnavailableStatus != "" {
		w.str(c.UnavailableStatus)
	}
	return w.b, nil
}

// DecodeContact decodes what EncodeContact wrote.
func DecodeContact(b []byte) (*store.Contact, error) {
	if len(b) == 0 || b[0] != contactV1 {
		return nil, fmt.Errorf("%w: unknown contact version", errCorrupt)
	}
	r := reader{b: b[1:]}
	c := &store.Contact{}
	c.Localpart = r.str()
	c.LegacyID = r.str()
	c.Name = r.str()
	c.Subscription = r.str()
	if !r.done() { // appended after the first records
		flags := r.uvarint()
		c.Group = flags&contactGroup != 0
		c.Unavailable = flags&contactUnavailable != 0
	}
	if !r.done() {
		c.UnavailableStatus = r.str()
	}
	if r.err != nil {
		return nil, r.err
	}
	return c, nil
}
