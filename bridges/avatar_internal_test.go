package bridges

import (
	"errors"
	"fmt"
	"testing"

	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/component/stanza"
)

// A picture the store cannot read now is a temporary error (wait), so
// clients ask again; a damaged or vanished one is not found.
func TestPictureError(t *testing.T) {
	for _, c := range []struct {
		err  error
		cond stanza.Condition
		typ  string
	}{
		{errors.New("redis: connection refused"), stanza.ResourceConstraint, stanza.ErrWait},
		{fmt.Errorf("%w: its record", errAvatarDamaged), stanza.ItemNotFound, stanza.ErrCancel},
		{store.ErrNotFound, stanza.ItemNotFound, stanza.ErrCancel},
	} {
		if se := pictureError(c.err); se.Condition != c.cond || se.Type != c.typ || se.Text == "" {
			t.Errorf("pictureError(%v) = %+v, want %s (%s) with a text", c.err, se, c.cond, c.typ)
		}
	}
}
