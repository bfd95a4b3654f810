// Package admin serves the controller's admin HTTP API: metrics, health,
// readiness, status, forced resync and dry-run diff. Client is the matching
// HTTP client the ops CLI uses. The package owns the API's JSON documents
// (api.go) and converts the controller's types to them.
//
// Authorisation: POST /v1/resync, GET /v1/resync[/<id>] and GET /v1/diff
// need "Authorization: Bearer <token>" (the scheme in any case) when a
// token is configured. Without a token they are served only when the
// listener is bound to a loopback address (any local user may then call
// them, as with Consul's own agent API in dev mode); on any other listener
// they answer 403 until a token is configured. /metrics, /healthz,
// /readyz and /v1/status never need a token.
//
// Browsers: a page the operator visits must not be able to use the API
// through the operator's browser, which can reach loopback.
//
//   - Cross-site requests: POST /v1/resync takes only a JSON body sent as
//     Content-Type: application/json, which a page can send cross-site
//     only after a CORS preflight the server never approves (415
//     otherwise); a request that a browser marks cross-origin (Sec-Fetch-Site,
//     or an Origin that is not the Host) is refused (403).
//   - DNS rebinding: a page that points its own name at 127.0.0.1 sends
//     that name as Host. /v1/ endpoints serve only a Host that is an IP
//     address, "localhost", the host of the configured listen address or
//     one of Options.AllowedHosts (403 otherwise). An IP literal cannot be
//     rebound, so probes and CLIs that use addresses need no setting.
//     /metrics, /healthz and /readyz answer any Host: infrastructure reads
//     them under whatever name it uses, and they hold nothing to protect.
//
// Limits: header read, whole-request read, idle and write timeouts, a
// header size limit (431 beyond it) and a body size limit (413).
//
// Replicas (HA): when the controller shares gateways with other replicas
// (it implements Ownership), status names each gateway's owner and this
// replica's role, and a resync or diff of a gateway another replica writes
// is refused with 409 and the owner's replica id and admin address.
package admin
