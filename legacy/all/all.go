// Package all links every legacy network adapter into the binary: import it
// for its side effect of registering them.
package all

import (
	_ "github.com/jabbergate/jabbergate/legacy/echo"     // echo network
	_ "github.com/jabbergate/jabbergate/legacy/email"    // email network (IMAP in, SMTP out)
	_ "github.com/jabbergate/jabbergate/legacy/sms"      // SMS (Twilio, Kannel, SMPP)
	_ "github.com/jabbergate/jabbergate/legacy/telegram" // telegram network (Bot API)
)
