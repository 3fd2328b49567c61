// Package component implements the gateway's link to an XMPP server over the
// Jabber Component Protocol (XEP-0114, jabber:component:accept): it opens the
// stream, authenticates with the shared-secret handshake, reads and writes
// stanzas as [stanza.Element] trees, keeps the link alive with XEP-0199
// pings and reconnects with exponential backoff when the link fails.
//
// # Why not mellium's component session
//
// mellium.im/xmpp has a working XEP-0114 client (research/go-deps.md §1),
// yet the link is our own small implementation:
//
//   - It is faster: decoding a typical message costs about 1.5 µs and 4
//     allocations with our stream decoder ([stanza.StreamDecoder], which
//     replaced encoding/xml's Token(): 8 µs and 69 allocations) and
//     re-encoding it about 0.5 µs, against about 18 µs through mellium's
//     mux and handler path.
//   - It is fully under our control: the stanza size limit is enforced
//     inside the XML decoder on every byte read, and so is an element-depth limit
//     (Config.MaxDepth, 32 by default); a stanza past either is skipped to
//     its end without being kept and refused to its sender with
//     policy-violation, and the link stays up (only start tags alone past
//     the size limit close it with policy-violation); a
//     DTD closes it with restricted-xml and no entity is ever expanded; text
//     and attributes are written as well-formed XML 1.0 whatever a legacy
//     network sends (invalid UTF-8 and control characters become U+FFFD);
//     `from` is validated before anything is written
//     (one foreign `from` kills the link on Prosody and ejabberd), writes are
//     batched, stream errors are explained, and reconnect, keepalive and
//     barrier semantics are ours to define and test.
//   - mellium's Serve ends the session and closes the stream when a handler
//     returns an error; here a failing or even panicking handler costs one
//     stanza, never the link.
//
// The stream is the only thing shared with the server: one [Link] keeps at
// most one live [Conn] at a time, and every stanza a Conn reads is handed to
// the [Handler] in order. A Conn only exists after the server has accepted
// the handshake, so nothing but the stream header and the handshake is ever
// written before authentication.
//
// The package uses only the standard library and the stanza package; the
// test server in component/componenttest speaks the server side.
package component
