package bridges

import (
	"slices"
	"testing"

	"github.com/jabbergate/jabbergate/legacy"
)

// TestContactFeatureAccessors: the accessors other code uses read the set
// computed once, and follow Caps.
func TestContactFeatureAccessors(t *testing.T) {
	b := &Bridge{info: legacy.Info{DisplayName: "X", DiscoType: "sms", Caps: legacy.Caps{Edits: true, Files: true}}}
	var err error
	if b.caps, err = b.newCaps(); err != nil {
		t.Fatal(err)
	}
	for f, want := range map[string]bool{
		"urn:xmpp:message-correct:0": true, "jabber:x:oob": true, nsPing: true,
		nsReceipts: false, "urn:xmpp:reactions:0": false, nsGateway: false,
	} {
		if got := b.contactHas(f); got != want {
			t.Errorf("contactHas(%s) = %v", f, got)
		}
	}
	fs := b.contactFeatures()
	if !slices.IsSorted(fs) || len(fs) != 5 {
		t.Errorf("contactFeatures = %q", fs)
	}
	fs[0] = "mutated"
	if b.contactFeatures()[0] == "mutated" {
		t.Errorf("contactFeatures shares its slice")
	}
	if gf := b.gatewayFeatures(); slices.Contains(gf, nsGateway) || !slices.Contains(gf, featCommands) {
		t.Errorf("gateway features without a Resolver = %q", gf)
	}
	if id := b.caps.gateway.info.Identities[0]; id.Type != "sms" || id.Name != "X gateway" {
		t.Errorf("gateway identity = %+v", id)
	}
	if b.caps.gateway.ver == b.caps.contact.ver || b.caps.gateway.ver == "" {
		t.Errorf("vers %q %q", b.caps.gateway.ver, b.caps.contact.ver)
	}
}
