package bridges

// XML namespaces of the XEPs the engine speaks.
const (
	nsDiscoInfo  = "http://jabber.org/protocol/disco#info"
	nsDiscoItems = "http://jabber.org/protocol/disco#items"
	nsRegister   = "jabber:iq:register"
	nsGateway    = "jabber:iq:gateway"
	nsVersion    = "jabber:iq:version"
	nsPing       = "urn:xmpp:ping"
	nsData       = "jabber:x:data"
	nsReceipts   = "urn:xmpp:receipts"
	nsSID        = "urn:xmpp:sid:0"
	nsDelay      = "urn:xmpp:delay"
	nsNick       = "http://jabber.org/protocol/nick"
	nsChatStates = "http://jabber.org/protocol/chatstates"
	nsXHTMLIM    = "http://jabber.org/protocol/xhtml-im"
	nsOMEMO      = "eu.siacs.conversations.axolotl"
	nsOMEMO2     = "urn:xmpp:omemo:2"
	nsOpenPGP    = "urn:xmpp:openpgp:0"
	nsPGPLegacy  = "jabber:x:encrypted"
	nsJabbergate = "urn:jabbergate:error:0"

	featureJIDEscaping = `jid\20escaping`
)
