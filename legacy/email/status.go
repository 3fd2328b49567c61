package email

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/jabbergate/jabbergate/legacy"
)

// SMTP stages, as named in errors (and used by permanentStatus to read a
// basic reply code the way RFC 5321 defines it for that command).
const (
	stageMail = "MAIL FROM"
	stageRcpt = "RCPT TO"
	stageData = "DATA"
)

// permanentStatus maps a permanent failure to the contract's sentinel and
// a reason in plain words. status is the RFC 3463 enhanced status code
// (class.subject.detail), zero when the reply had none; reply is the RFC
// 5321 basic reply code, 0 for a DSN, which has only the enhanced status.
// The enhanced status wins when it says more than "other" (X.0.0); else
// the basic code decides, read for the command it answered.
//
// RFC 3463 subjects: X.1 addressing, X.2 mailbox, X.3 mail system, X.4
// network and routing, X.5 protocol, X.6 content, X.7 security or policy;
// X.6.7–X.6.9 are RFC 6531's (non-ASCII addresses), X.1.10 RFC 7505's
// (null MX), X.7.13 the registry's "user account disabled".
func permanentStatus(status [3]int, reply int, stage string) (error, string) {
	if status[0] == 5 && (status[1] != 0 || status[2] != 0) {
		switch s, d := status[1], status[2]; s {
		case 1:
			switch d {
			case 3:
				return legacy.ErrInvalidAddress, "the recipient's address is not valid"
			case 7, 8:
				return legacy.ErrRejected, "the server refused your sender address"
			case 2:
				return legacy.ErrNotFound, "the recipient's domain does not exist or accepts no mail"
			case 6:
				return legacy.ErrNotFound, "the recipient's mailbox has moved"
			case 10:
				return legacy.ErrNotFound, "the recipient's domain accepts no mail"
			}
			return legacy.ErrNotFound, "the recipient's mailbox does not exist"
		case 2:
			switch d {
			case 2:
				return legacy.ErrForbidden, "the recipient's mailbox is full"
			case 1:
				return legacy.ErrForbidden, "the recipient's mailbox is disabled"
			case 3:
				return legacy.ErrTooLarge, "the message is larger than the recipient accepts"
			}
			return legacy.ErrForbidden, "the recipient's mailbox does not accept mail"
		case 3:
			if d == 4 {
				return legacy.ErrTooLarge, "the message is larger than the mail system accepts"
			}
			return legacy.ErrRejected, "the recipient's mail system does not accept mail"
		case 4:
			if d == 7 {
				return legacy.ErrNotFound, "delivery to the recipient's mail server timed out"
			}
			return legacy.ErrNotFound, "the recipient's mail server cannot be reached"
		case 5:
			return legacy.ErrUnsupported, "the mail server refused a command of the gateway"
		case 6:
			if d >= 7 && d <= 9 {
				return legacy.ErrUnsupported, "the mail server does not accept non-ASCII (internationalised) addresses"
			}
			return legacy.ErrRejected, "the mail server refused the message's content or format"
		case 7:
			switch d {
			case 8:
				return legacy.ErrUnauthorized, "the mail server rejected the username or password"
			case 13:
				return legacy.ErrUnauthorized, "the mail account is disabled"
			}
			return legacy.ErrPolicy, "the mail server refused the message by its policy"
		}
	}
	switch reply {
	case 535:
		return legacy.ErrUnauthorized, "the mail server rejected the username or password"
	case 550:
		switch stage {
		case stageMail:
			return legacy.ErrRejected, "the server refused your sender address"
		case stageData:
			return legacy.ErrRejected, "the server refused the message"
		}
		return legacy.ErrNotFound, "the recipient's mailbox is unavailable"
	case 551:
		return legacy.ErrNotFound, "the recipient is not local to this server"
	case 552:
		if stage == stageRcpt {
			return legacy.ErrForbidden, "the recipient's mailbox is full"
		}
		return legacy.ErrTooLarge, "the message exceeds the server's storage allocation"
	case 553:
		if stage == stageMail {
			return legacy.ErrRejected, "the server refused your sender address"
		}
		return legacy.ErrInvalidAddress, "the recipient's mailbox name is not allowed"
	case 521, 556:
		return legacy.ErrNotFound, "the recipient's domain accepts no mail"
	case 530:
		return legacy.ErrPolicy, "the mail server requires authentication first"
	case 500, 501, 502, 503, 504, 555:
		return legacy.ErrUnsupported, "the mail server refused a command of the gateway"
	}
	return legacy.ErrRejected, "the mail server refused the message"
}

// permanentError is a permanent failure as the contract's errors: the
// server's code and text in a CodeError, under a ReasonError that says in
// plain words what failed (the core shows the reason, the code travels in
// the stanza error's legacy-error element).
func permanentError(status [3]int, reply int, stage, code, text string) error {
	sentinel, reason := permanentStatus(status, reply, stage)
	detail := strings.TrimSpace(code + " " + text)
	return &legacy.ReasonError{
		Reason: reason + " (server: " + detail + ")",
		Err:    &legacy.CodeError{Code: code, Text: text, Err: sentinel},
	}
}

// parseStatus reads an RFC 3463 status ("5.2.2"); zero when malformed.
func parseStatus(s string) [3]int {
	var st [3]int
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) != 3 {
		return [3]int{}
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 999 {
			return [3]int{}
		}
		st[i] = n
	}
	return st
}

// statusString is "5.2.2", or "" for a zero status.
func statusString(st [3]int) string {
	if st[0] <= 0 {
		return ""
	}
	return fmt.Sprintf("%d.%d.%d", st[0], st[1], st[2])
}
