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
type concat struct {
	From  string         `json:"from"`
	Total int            `json:"total"`
	First time.Time      `json:"first"`
	Parts map[int]string `json:"parts"`
}

// receivePart stores one part of a concatenated SMS (SaveState) and, when
// it completes the message, delivers the whole text. It returns nil only
// once the part is durable, as a part or inside the delivered message.
// Duplicated parts overwrite harmlessly.
func (s *session) receivePart(ctx context.Context, mo smpp.MO, via route) error {
	from := mo.From
	if e, err := s.net.normalize(from); err == nil {
		from = e
	}
	key := fmt.Sprintf("%s|%d|%d", from, mo.Ref, mo.Total)
	s.mu.Lock()
	c := s.concat[key]
	if c == nil {
		c = &concat{From: from, Total: int(mo.Total), First: time.Now().UTC(), Parts: map[int]string{}}
		s.concat[key] = c
	}
	old, had := c.Parts[int(mo.Part)]
	c.Parts[int(mo.Part)] = mo.Text
	complete := len(c.Parts) == c.Total
	s.mu.Unlock()
	if complete {
		return s.finishConcat(ctx, key, via)
	}
	if err := s.sink.Emit(ctx, legacy.SaveState{State: s.stateBlob()}); err != nil {
		s.mu.Lock()
		if had {
			c.Parts[int(mo.Part)] = old
		} else {
			delete(c.Parts, int(mo.Part))
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
	var b strings.Builder
	for i := 1; i <= c.Total; i++ {
		if p, ok := c.Parts[i]; ok {
			b.WriteString(p)
		} else {
			fmt.Fprintf(&b, "[part %d missing]", i)
		}
	}
	from := c.From
	sum := sha256.Sum256([]byte(key + "|" + c.First.Format(time.RFC3339Nano)))
	s.mu.Unlock()
	if err := s.receive(ctx, "smpp-mo-"+hex.EncodeToString(sum[:12]), from, b.String(), via); err != nil {
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
