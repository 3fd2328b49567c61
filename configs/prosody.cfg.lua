-- Prosody configuration for Jabbergate (XEP-0114 external component).
--
-- Merge these pieces into your prosody.cfg.lua. They match
-- configs/jabbergate.example.yaml: users on "localhost", one echo bridge
-- on "echo.localhost"; add one Component block per bridge.
--
-- Jabbergate side:
--   xmpp.server:        127.0.0.1:5347
--   bridges[].domain:   echo.localhost
--   bridges[].secret:   the same value as component_secret below
--
-- Check with `prosodyctl check config`, then restart Prosody: 0.12 does
-- not start a Component block added to a running server on reload.

---------------------------------------------------------------------------
-- Global section: BEFORE the first VirtualHost or Component line.
-- component_ports/component_interfaces set inside a host block are ignored
-- (with a warning).
---------------------------------------------------------------------------

-- The component listener. Default port 5347, on loopback only: the
-- XEP-0114 link is not encrypted, so keep it on loopback or a private
-- network.
component_ports = { 5347 }
component_interfaces = { "127.0.0.1", "::1" }

-- Prosody accepts one connection per component. A second Jabbergate
-- instance is refused with <conflict/> ("kick_new", the default), so run
-- instances active/standby. Recent Prosody can replace the old link instead:
-- component_conflict_resolve = "kick_old"

---------------------------------------------------------------------------
-- The users' virtual host.
---------------------------------------------------------------------------

VirtualHost "localhost"

  -- Optional: XEP-0356 privileged entity, so Jabbergate can add legacy
  -- contacts to the user's roster itself and reflect messages the user sent
  -- from the official app of the legacy network. Without it Jabbergate falls
  -- back to roster item exchange and subscription requests.
  -- mod_privilege comes from prosody-modules; on Prosody 0.12+:
  --   prosodyctl install --server=https://modules.prosody.im/rocks/ mod_privilege
  --
  -- modules_enabled = { "privilege" }
  -- privileged_entities = {
  --   ["echo.localhost"] = {
  --     roster = "both";
  --     message = "outgoing";
  --   };
  -- }
  --
  -- Roster and message only: Jabbergate sends no privileged IQs, and an
  -- iq permission (e.g. on pubsub) would let it read and change every
  -- user's PEP, OMEMO keys included, for nothing.

---------------------------------------------------------------------------
-- One Component block per bridge.
---------------------------------------------------------------------------

Component "echo.localhost"
  -- Shared secret: the bridge's secret (or secret_file) in Jabbergate.
  -- Use a long random value, e.g. `openssl rand -hex 32`.
  component_secret = "change-me-long-random-secret"

  -- Name in the parent domain's service discovery; Prosody also answers a
  -- minimal disco#info with it while Jabbergate is offline.
  name = "Echo gateway"

  -- Hide the gateway from localhost's disco#items:
  -- disco_hidden = true

  -- Optional, with mod_privilege above:
  -- modules_enabled = { "privilege" }

-- HTTP upload (XEP-0363) for the users' clients: they upload files and send
-- the link, which Jabbergate downloads. The gateway never requests upload
-- slots itself, so it needs no access here. Leave http_file_share_access
-- unset: empty, every local host may upload; a non-empty list admits only
-- what it names, and { "echo.localhost" } alone locks the users out
-- (forbidden). To restrict it, list the users' domains: { "localhost" }.
-- Component "upload.localhost" "http_file_share"

-- Notes
-- * Every stanza from Jabbergate must come from its component domain;
--   validate_from_addresses (default true) closes the link otherwise.
-- * While Jabbergate is offline, stanzas to it bounce with
--   remote-server-timeout.
-- * Recent Prosody caps component stanzas at the s2s limit (512 KiB by
--   default, component_stanza_size_limit); keep xmpp.max_stanza_size in
--   Jabbergate at or below it.
