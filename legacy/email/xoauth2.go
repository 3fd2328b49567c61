package email

import "github.com/emersion/go-sasl"

// xoauth2 is the SASL XOAUTH2 client of Google and Microsoft (not a
// standard; go-sasl dropped it). Its initial response is
// "user=<u>\x01auth=Bearer <token>\x01\x01". On failure the server sends a
// JSON challenge, answered with an empty response to get the final error.
type xoauth2 struct{ user, token string }

var _ sasl.Client = (*xoauth2)(nil)

func (a *xoauth2) Start() (mech string, ir []byte, err error) {
	return "XOAUTH2", []byte("user=" + a.user + "\x01auth=Bearer " + a.token + "\x01\x01"), nil
}

func (a *xoauth2) Next(challenge []byte) ([]byte, error) { return []byte{}, nil }
