package pebble

import (
	"bytes"
	"encoding/binary"

	"github.com/jabbergate/jabbergate/bridges/store"
)

// Key layout (see the package doc). A component is a caller's string with
// each 0x00 written as 0x00 0xff and ended by 0x00 0x01: no encoding is a
// prefix of another, and byte order of encodings is the string order of
// the components.

// Top-level tags.
const (
	tagMeta = 0x00 // "\x00version" → schema version
	tagUser = 'u'  // 'u' bridge jid kind ... : everything of one user
)

// Kinds under a user's prefix.
const (
	kindAccount = 'a'
	kindContact = 'c'
	kindMap     = 'm'
	kindQueue   = 'q'
	kindSeen    = 's'
)

var keyVersion = []byte{tagMeta, 'v', 'e', 'r', 's', 'i', 'o', 'n'}

// appendComponent appends s, escaped and terminated.
func appendComponent(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		b = append(b, s[i])
		if s[i] == 0 {
			b = append(b, 0xff)
		}
	}
	return append(b, 0, 1)
}

// readComponent decodes the component at the start of b and returns it
// and the bytes after it; ok is false if b does not start with one.
func readComponent(b []byte) (s string, rest []byte, ok bool) {
	var out []byte
	for i := 0; i < len(b); i++ {
		if b[i] != 0 {
			continue
		}
		if i+1 >= len(b) {
			return "", nil, false
		}
		switch b[i+1] {
		case 1:
			if out == nil {
				return string(b[:i]), b[i+2:], true
			}
			out = append(out, b[:i]...)
			return string(out), b[i+2:], true
		case 0xff:
			out = append(out, b[:i+1]...)
			b = b[i+2:]
			i = -1
		default:
			return "", nil, false
		}
	}
	return "", nil, false
}

// bridgePrefix is the prefix of every key of bridge.
func bridgePrefix(bridge string) []byte {
	return appendComponent(append(make([]byte, 0, 1+len(bridge)+2), tagUser), bridge)
}

// userPrefix is the prefix of every key of one user; extra is capacity
// for what the caller appends.
func userPrefix(bridge, jid string, extra int) []byte {
	return appendUserPrefix(make([]byte, 0, userPrefixMax(bridge, jid)+extra), bridge, jid)
}

// userPrefixMax bounds the length of the user's prefix: the tag, and two
// components with their terminators (escapes aside, which append grows for).
func userPrefixMax(bridge, jid string) int { return 1 + len(bridge) + len(jid) + 4 }

// appendUserPrefix appends the user's prefix to dst (the writer builds its
// keys in a reused buffer: Pebble copies what a batch is given).
func appendUserPrefix(dst []byte, bridge, jid string) []byte {
	dst = append(dst, tagUser)
	dst = appendComponent(dst, bridge)
	return appendComponent(dst, jid)
}

// splitUser returns the user of key k and the length of its prefix.
func splitUser(k []byte) (bridge, jid string, n int, ok bool) {
	if len(k) == 0 || k[0] != tagUser {
		return "", "", 0, false
	}
	bridge, rest, ok := readComponent(k[1:])
	if !ok {
		return "", "", 0, false
	}
	jid, rest, ok = readComponent(rest)
	if !ok {
		return "", "", 0, false
	}
	return bridge, jid, len(k) - len(rest), true
}

func accountKey(bridge, jid string) []byte {
	return append(userPrefix(bridge, jid, 1), kindAccount)
}

func contactPrefix(bridge, jid string) []byte {
	return append(userPrefix(bridge, jid, 1), kindContact)
}

func contactKey(bridge, jid, localpart string) []byte {
	return append(append(userPrefix(bridge, jid, 1+len(localpart)), kindContact), localpart...)
}

func mapKey(bridge, jid, ns, key string) []byte {
	return appendMapKey(make([]byte, 0, userPrefixMax(bridge, jid)+3+len(ns)+len(key)), bridge, jid, ns, key)
}

func appendMapKey(dst []byte, bridge, jid, ns, key string) []byte {
	dst = append(appendUserPrefix(dst, bridge, jid), kindMap)
	dst = appendComponent(dst, ns)
	return append(dst, key...)
}

func seenKey(bridge, jid, key string) []byte {
	return appendSeenKey(make([]byte, 0, userPrefixMax(bridge, jid)+1+len(key)), bridge, jid, key)
}

func appendSeenKey(dst []byte, bridge, jid, key string) []byte {
	return append(append(appendUserPrefix(dst, bridge, jid), kindSeen), key...)
}

// queueTag is the byte after kindQueue for a queue kind.
func queueTag(kind store.QueueKind) byte {
	if kind == store.Inbox {
		return 'i'
	}
	return 'o'
}

// queuePrefix is the queue's sequence key; its entries are the prefix
// followed by their 8-byte big-endian sequence.
func queuePrefix(q store.Queue) []byte {
	return appendQueuePrefix(make([]byte, 0, userPrefixMax(q.Bridge, q.JID)+10), q)
}

func appendQueuePrefix(dst []byte, q store.Queue) []byte {
	return append(appendUserPrefix(dst, q.Bridge, q.JID), kindQueue, queueTag(q.Kind))
}

func entryKey(prefix []byte, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(append(make([]byte, 0, len(prefix)+8), prefix...), seq)
}

// successor returns the smallest key greater than every key that starts
// with p (nil if there is none: p is all 0xff).
func successor(p []byte) []byte {
	b := bytes.Clone(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] != 0xff {
			b[i]++
			return b[:i+1]
		}
	}
	return nil
}

// --- entry ids --------------------------------------------------------------
