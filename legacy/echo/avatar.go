package echo

// Names and pictures of echo contacts: the first time the user writes to a
// contact in a running session, the session reports it with a legacy.Contact event
// carrying a display name ("Hello Echo" for hello) and a generated 64×64
// PNG, deterministic per contact name (a symmetric 5×5 identicon in a
// colour derived from the name's SHA-1), so the gateway's vCard, photo
// hash and PEP avatar paths are exercised end to end. A restarted session
// reports it again; the gateway sees the same hash and does nothing.

import (
	"bytes"
	"context"
	"crypto/sha1"
	"image"
	"image/color"
	"image/png"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/jabbergate/jabbergate/legacy"
)

// running holds, for each session whose Run is active, the contacts it
// has introduced. Sessions that are not Run (unit tests driving Send
// directly) introduce nothing, so their event sequences stay exactly the
// echoes. It is package-level so that session stays as echo.go declares
// it; an entry lives as long as its Run.
var running = struct {
	sync.Mutex
	m map[*session]map[legacy.ChatID]bool
}{m: map[*session]map[legacy.ChatID]bool{}}

// introductions is the end of Run: it marks the session as running and
// waits for ctx to end.
func (s *session) introductions(ctx context.Context) {
	running.Lock()
	running.m[s] = map[legacy.ChatID]bool{}
	running.Unlock()
	defer func() {
		running.Lock()
		delete(running.m, s)
		running.Unlock()
	}()
	<-ctx.Done()
}

// introduce reports chat's name and picture the first time the user
// writes to it while the session runs, before the echo. It is best
// effort: after a failure the next message tries again.
func (s *session) introduce(ctx context.Context, chat legacy.ChatID) {
	running.Lock()
	seen, ok := running.m[s]
	first := ok && !seen[chat]
	if first {
		seen[chat] = true
	}
	running.Unlock()
	if !first {
		return
	}
	if err := s.sink.Emit(ctx, Contact(chat)); err != nil {
		running.Lock()
		if seen, ok := running.m[s]; ok {
			delete(seen, chat)
		}
		running.Unlock()
	}
}

// Contact is the legacy.Contact the echo network reports for chat: its
// display name and generated picture.
func Contact(chat legacy.ChatID) legacy.Contact {
	return legacy.Contact{Chat: chat, Name: DisplayName(chat), Avatar: Avatar(chat), AvatarType: "image/png"}
}

// DisplayName is an echo contact's name: the word capitalised, then "Echo".
func DisplayName(chat legacy.ChatID) string {
	s := string(chat)
	r, n := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError {
		return "Echo"
	}
	return string(unicode.ToUpper(r)) + s[n:] + " Echo"
}

// Avatar returns the PNG picture of an echo contact: 64×64, two colours,
// the same bytes for the same name.
func Avatar(chat legacy.ChatID) []byte {
	sum := sha1.Sum([]byte(strings.ToLower(string(chat))))
	fg := color.RGBA{R: 64 + sum[0]%160, G: 64 + sum[1]%160, B: 64 + sum[2]%160, A: 255}
	img := image.NewPaletted(image.Rect(0, 0, 64, 64), color.Palette{color.RGBA{R: 240, G: 240, B: 240, A: 255}, fg})
	// A 5×5 grid mirrored around the middle column, 2 px margin + 12 px cells.
	for row := 0; row < 5; row++ {
		for col := 0; col < 3; col++ {
			bit := row*3 + col
			if sum[3+bit/8]>>(bit%8)&1 == 0 {
				continue
			}
			for _, c := range []int{col, 4 - col} {
				for y := 2 + row*12; y < 2+(row+1)*12; y++ {
					for x := 2 + c*12; x < 2+(c+1)*12; x++ {
						img.SetColorIndex(x, y, 1)
					}
				}
			}
		}
	}
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	if err := enc.Encode(&buf, img); err != nil {
		return nil // cannot happen with an in-memory image
	}
	return buf.Bytes()
}
