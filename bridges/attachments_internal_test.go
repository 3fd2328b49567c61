package bridges

import (
	"errors"
	"net"
	"net/url"
	"testing"

	"github.com/jabbergate/jabbergate/component/stanza"
)

// A file whose host does not exist is refused at once; a resolver that
// fails is retried.
func TestFetchErrorOfAHostThatDoesNotExist(t *testing.T) {
	b := &Bridge{}
	chain := func(de *net.DNSError) error {
		return &url.Error{Op: "Get", URL: "https://example.invalid/a.png", Err: &net.OpError{Op: "dial", Net: "tcp", Err: de}}
	}
	var se *stanza.Error
	err := b.fetchError(chain(&net.DNSError{Err: "no such host", Name: "example.invalid", IsNotFound: true}))
	if !errors.As(err, &se) || se.Condition != stanza.ItemNotFound || se.Type != stanza.ErrCancel {
		t.Errorf("NXDOMAIN: %v, want item-not-found (cancel)", err)
	}
	err = b.fetchError(chain(&net.DNSError{Err: "i/o timeout", Name: "example.org", IsTimeout: true}))
	if errors.As(err, &se) {
		t.Errorf("resolver timeout: %v, want a retried error", err)
	}
}
