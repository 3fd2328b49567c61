-- Prosody for deploy/compose.yaml: users on "localhost", the echo bridge on
-- "echo.localhost". A DEMO configuration: no certificates, plaintext logins
-- allowed, the client port published on the host's loopback only. For a
-- real server start from configs/prosody.cfg.lua and docs/admin-prosody.md.

daemonize = false
log = { { levels = { min = "info" }, to = "console" } }
data_path = "/var/lib/prosody"

admins = { "admin@localhost" }

modules_enabled = {
  "roster"; "saslauth"; "disco"; "carbons"; "pep"; "private"; "vcard4";
  "vcard_legacy"; "version"; "uptime"; "time"; "ping"; "register";
  "mam"; "csi_simple"; "smacks"; "blocklist"; "bookmarks";
}
modules_disabled = { "s2s" }

-- Demo only: no TLS certificate in this container.
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
allow_registration = false
authentication = "internal_hashed"
storage = "internal"

-- The component listener (global section). On the compose network only:
-- the port is not published on the host.
component_ports = { 5347 }
component_interfaces = { "*" }

VirtualHost "localhost"

Component "echo.localhost"
  -- The same secret as bridges[0].secret in jabbergate.yaml, from the
  -- JG_ECHO_SECRET environment variable.
  component_secret = ENV_JG_ECHO_SECRET
  name = "Echo gateway"
