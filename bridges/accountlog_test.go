package bridges_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/legacy"
	"github.com/jabbergate/jabbergate/legacy/echo"
)

// acctNet is echo, logging one line through the Account.Log it is given.
type acctNet struct{ *echo.Network }

func (n acctNet) Open(ctx context.Context, a legacy.Account, s legacy.Sink) (legacy.Session, error) {
	a.Logger(nil).Info("adapter session line")
	return n.Network.Open(ctx, a, s)
}

// The core hands adapters a logger that names the bridge, the network and
// the user's hashed key, never the JID.
func TestAccountLoggerNamesBridgeNetworkAndHashedUser(t *testing.T) {
	e, _ := echo.New(nil)
	h := newHarness(t, acctNet{e})
	h.register(alice)
	var line string
	for deadline := time.Now().Add(wait); line == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for _, l := range strings.Split(h.log.String(), "\n") {
			if strings.Contains(l, "adapter session line") {
				line = l
			}
		}
	}
	if line == "" {
		t.Fatal("the adapter's line never reached the log")
	}
	for _, want := range []string{"bridge=" + domain, "network=echo", "user="} {
		if !strings.Contains(line, want) {
			t.Errorf("adapter log line %q lacks %s", line, want)
		}
	}
	if strings.Contains(line, alice) {
		t.Errorf("adapter log line %q names the user's JID", line)
	}
}
