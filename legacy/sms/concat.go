package sms

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/jabbergate/jabbergate/legacy"
	"github.com/jabbergate/jabbergate/legacy/sms/smpp"
)

// DefaultConcatTimeout is how long the parts of a concatenated SMS are
// kept waiting for the missing ones (Kannel's sms-combine-concatenated-mo
// default).
const DefaultConcatTimeout = 30 * time.Minute

// concat is a concatenated SMS being reassembled. It lives in the session
// state, so every part is durable before the SMSC gets its ESME_ROK.
//
// Parts are kept as the SMSC sent them (user data octets and data_coding)
// and decoded once joined: phones cut long messages by octets, so a GSM-7
// escape pair (€, [, ]) or a UTF-16 surrogate pair (most emoji) may be
// split between two parts, and decoding each part alone would lose it.
type concat struct {
	From  string          `json:"from"`
	Total int             `json:"total"`
	First time.Time       `json:"first"`
	Raw   map[int]rawPart `json:"raw,omitempty"`
	Parts map[int]string  `json:"parts,omitempty"` // decoded parts, as states before Raw kept them
}

// rawPart is one part's user data and data_coding.
type rawPart struct {
	Coding byte   `json:"dc"`
	Data   []byte `json:"d"`
}

// count is how many distinct parts arrived.
func (c *concat) count() int {
	n := len(c.Raw)
	for i := range c.Parts {
		if _, ok := c.Raw[i]; !ok {
			n++
		}
	}
	return n
}

// text joins the parts in order: runs of consecutive raw parts of one
// data_coding are decoded together, a missing part is marked.
func (c *concat) text() string {
	var b strings.Builder
	var run []byte
	var runCoding byte
	flush := func() {
		if len(run) > 0 {
			b.WriteString(smpp.Decode(runCoding, run))
			run = nil
		}
	}
	for i := 1; i <= c.Total; i++ {
		if p, ok := c.Raw[i]; ok {
			if len(run) > 0 && p.Coding != runCoding {
				flush()
			}
			run, runCoding = append(run, p.Data...), p.Coding
			continue
		}
		flush()
		if p, ok := c.Parts[i]; ok {
			b.WriteString(p)
		} else {
			fmt.Fprintf(&b, "[part %d missing]", i)
		}
	}
	flush()
	return b.String()
}

// receivePart stores one part of a concatenated SMS (SaveState) and, when
// it completes the message, delivers the whole text. It returns nil only
// once the part is durable, as a part or inside the delivered message.
// Duplicated parts overwrite harmlessly.
func (s *session) receivePart(ctx context.Context, mo smpp.MO, via route) error {
	from := s.chatOf(mo.From)
	key := fmt.Sprintf("%s|%d|%d", from, mo.Ref, mo.Total)
	s.mu.Lock()
	c := s.concat[key]
	if c == nil {
		c = &concat{From: from, Total: int(mo.Total), First: time.Now().UTC()}
		s.concat[key] = c
	}
	if c.Raw == nil {
		c.Raw = map[int]rawPart{}
	}
	old, had := c.Raw[int(mo.Part)]
	c.Raw[int(mo.Part)] = rawPart{Coding: mo.Coding, Data: mo.Data}
	complete := c.count() == c.Total
	s.mu.Unlock()
	if complete {
		return s.finishConcat(ctx, key, via)
	}
	if err := s.sink.Emit(ctx, legacy.SaveState{State: s.stateBlob()}); err != nil {
		s.mu.Lock()
		if had {
			c.Raw[int(mo.Part)] = old
		} else {
			delete(c.Raw, int(mo.Part))
		}
		s.mu.Unlock()
		return err
	}
	return nil
}

// finishConcat delivers a concatenated SMS, complete or timed out (missing
// parts are marked "[part n missing]"), then forgets its parts. The id
// derives from the parts' key and first arrival, so a replay after a crash
// is recognised.
func (s *session) finishConcat(ctx context.Context, key string, via route) error {
	s.mu.Lock()
	c := s.concat[key]
	if c == nil {
		s.mu.Unlock()
		return nil
	}
	text := c.text()
	from := c.From
	sum := sha256.Sum256([]byte(key + "|" + c.First.Format(time.RFC3339Nano)))
	s.mu.Unlock()
	if err := s.receive(ctx, "smpp-mo-"+hex.EncodeToString(sum[:12]), from, text, via); err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.concat, key)
	s.mu.Unlock()
	if err := s.sink.Emit(ctx, legacy.SaveState{State: s.stateBlob()}); err != nil {
		// Delivered already; the stale parts come back after a restart and
		// are delivered again under the same id, which the core drops.
		s.log.Warn("could not save state after a concatenated SMS", "err", err)
	}
	return nil
}

// flushStale delivers the concatenated SMS whose parts waited longer than
// the timeout.
func (s *session) flushStale(ctx context.Context, timeout time.Duration, via route) {
	s.mu.Lock()
	var stale []string
	for k, c := range s.concat {
		if time.Since(c.First) >= timeout {
			stale = append(stale, k)
		}
	}
	s.mu.Unlock()
	for _, k := range stale {
		if err := s.finishConcat(ctx, k, via); err != nil && ctx.Err() == nil {
			s.log.Warn("incomplete concatenated SMS not delivered yet", "err", err)
		}
	}
}
