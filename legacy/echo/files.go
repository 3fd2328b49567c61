package echo

import "github.com/jabbergate/jabbergate/legacy"

// File echo: a message with attachments comes back with the same files
// (and the same caption), as inbound attachments of the echo.

// echoFiles copies the attachments of a sent message for its echo.
func echoFiles(atts []legacy.Attachment) []legacy.Attachment {
	if len(atts) == 0 {
		return nil
	}
	out := make([]legacy.Attachment, len(atts))
	for i, a := range atts {
		out[i] = legacy.Attachment{Name: a.Name, Type: a.Type, Data: append([]byte(nil), a.Data...)}
	}
	return out
}
