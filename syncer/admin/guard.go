package admin

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// maxBody bounds a request body: a resync request is a few dozen bytes.
const maxBody = 64 << 10

// allowedHosts is the set of host names (lower case, no port) accepted in
// a /v1/ request's Host besides IP addresses: "localhost", the host of the
// listen address if it is a name, and the configured ones.
func allowedHosts(listen string, extra []string) map[string]bool {
	hosts := map[string]bool{"localhost": true}
	if h, _, err := net.SplitHostPort(listen); err == nil && h != "" {
		hosts[normHost(h)] = true
	}
	for _, h := range extra {
		hosts[normHost(h)] = true
	}
	return hosts
}

// normHost lower-cases a host name and drops brackets and a final dot.
func normHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(strings.Trim(h, "[]")), ".")
}

// hostAllowed reports whether a Host header names this server in a way a
// DNS-rebinding page cannot: such a page sends its own name, which it can
// point at 127.0.0.1, but it cannot make a browser send an IP literal, or
// "localhost", for a page it serves.
func (s *Server) hostAllowed(hostport string) bool {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	h = normHost(h)
	if h == "" {
		return false
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	return s.hosts[h]
}

// browserChecked refuses what only a browser tricked by another site
// sends: a Host that is not one of this server's names (DNS rebinding), an
// Origin other than the server's own, and unsafe methods that the browser
// marks cross-origin (http.CrossOriginProtection reads Sec-Fetch-Site and
// Origin). Clients that are not browsers send neither header.
func (s *Server) browserChecked(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.hostAllowed(r.Host) {
			writeError(w, http.StatusForbidden, ErrorResponse{Error: fmt.Sprintf(
				"Host %q is not a name of this admin API: use an IP address or localhost, or add the name to the admin API's allowed hosts", r.Host)})
			return
		}
		if o := r.Header.Get("Origin"); o != "" && !sameOrigin(o, r.Host) {
			writeError(w, http.StatusForbidden, ErrorResponse{Error: fmt.Sprintf("refused a cross-origin request from %q: the admin API serves its own origin and non-browser clients only", o)})
			return
		}
		if err := s.cop.Check(r); err != nil {
			writeError(w, http.StatusForbidden, ErrorResponse{Error: fmt.Sprintf("refused a cross-origin request (%v): the admin API serves its own origin and non-browser clients only", err)})
			return
		}
		next(w, r)
	}
}

// sameOrigin reports whether an Origin header names host (a Host header).
func sameOrigin(origin, host string) bool {
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, host)
}

// authorized guards an endpoint with the admin token (see the package doc).
func (s *Server) authorized(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.opts.Token == "" {
			if !s.loopback.Load() {
				writeError(w, http.StatusForbidden, ErrorResponse{Error: "no admin token is configured and the admin listener is not loopback-only: configure admin.token_file to use this endpoint"})
				return
			}
			next(w, r)
			return
		}
		header := r.Header.Get("Authorization")
		got, ok := bearer(header)
		sum := sha256.Sum256([]byte(got))
		// Compare fixed-size digests: constant time, and no length leak.
		if !ok || subtle.ConstantTimeCompare(sum[:], s.token[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="gwsync"`)
			msg := "invalid admin token"
			switch {
			case header == "":
				msg = "missing admin token: send Authorization: Bearer <token>"
			case !ok:
				msg = "the Authorization header must be Bearer <token>"
			}
			writeError(w, http.StatusUnauthorized, ErrorResponse{Error: msg})
			return
		}
		next(w, r)
	}
}

// bearer returns the token of an "Authorization: Bearer <token>" header;
// the scheme is case-insensitive (RFC 9110, section 11.1).
func bearer(header string) (string, bool) {
	scheme, token, found := strings.Cut(strings.TrimSpace(header), " ")
	token = strings.TrimSpace(token)
	if !found || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	return token, true
}

// readJSON decodes a request's body, exactly one JSON value sent as
// application/json, into v (unknown fields are errors). want shows the
// expected shape in error messages.
func readJSON(w http.ResponseWriter, r *http.Request, v any, want string) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return &apiError{code: http.StatusUnsupportedMediaType, msg: fmt.Sprintf(
			"send the request as a JSON body with Content-Type: application/json (got Content-Type %q)", r.Header.Get("Content-Type"))}
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		var ne net.Error
		switch {
		case errors.As(err, &tooLarge):
			return &apiError{code: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("request body is larger than %d bytes", tooLarge.Limit)}
		case errors.As(err, &ne) && ne.Timeout():
			return &apiError{code: http.StatusRequestTimeout, msg: "request body not received in time"}
		}
		return &apiError{code: http.StatusBadRequest, msg: fmt.Sprintf("read body: %v", err)}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return &apiError{code: http.StatusBadRequest, msg: "empty body: send a JSON object, " + want}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &apiError{code: http.StatusBadRequest, msg: fmt.Sprintf("invalid JSON body (want %s): %v", want, err)}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return &apiError{code: http.StatusBadRequest, msg: fmt.Sprintf("unexpected data after the JSON body at byte %d", dec.InputOffset())}
	}
	return nil
}

// apiError is an error answer: its status code and message.
type apiError struct {
	code  int
	msg   string
	known []string
	owner *Owner
}

func (e *apiError) Error() string { return e.msg }

// writeFailure answers err: an *apiError with its own status, anything
// else with 500.
func writeFailure(w http.ResponseWriter, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		writeError(w, http.StatusInternalServerError, ErrorResponse{Error: err.Error()})
		return
	}
	writeError(w, ae.code, ErrorResponse{Error: ae.msg, KnownGateways: ae.known, Owner: ae.owner})
}
