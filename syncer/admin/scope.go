package admin

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/gwsync/gwsync/mirror"
	"github.com/gwsync/gwsync/syncer"
)

// maxServiceName is Consul's own limit on a service name's length.
const maxServiceName = 256

// scopeShape is the scope's shape, for error messages.
const scopeShape = `{"gateway": "…", "service": "…", "force": false}`

// readScope reads a resync's or a diff's scope, the one parser for both:
// a POST (resync) takes it as a JSON body and nothing in the query; a GET
// (diff) takes it from the query (gateway, service, force). Then the
// rules common to both apply (checkScope). needGateway: a diff is of one
// gateway; a resync without one is of every gateway.
func (s *Server) readScope(w http.ResponseWriter, r *http.Request, needGateway bool) (ResyncRequest, error) {
	var sc ResyncRequest
	var err error
	if r.Method == http.MethodPost {
		err = s.scopeFromBody(w, r, &sc)
	} else {
		err = scopeFromQuery(r, &sc)
	}
	if err != nil {
		return sc, err
	}
	return sc, s.checkScope(sc, needGateway)
}

func (s *Server) scopeFromBody(w http.ResponseWriter, r *http.Request, sc *ResyncRequest) error {
	if err := readJSON(w, r, sc, scopeShape+" ({} for every gateway)"); err != nil {
		return err
	}
	if r.URL.RawQuery != "" {
		return &apiError{code: http.StatusBadRequest, msg: "give the scope in the JSON body only, not as query parameters"}
	}
	return nil
}

func scopeFromQuery(r *http.Request, sc *ResyncRequest) error {
	q := r.URL.Query()
	for k, v := range q {
		if k != "gateway" && k != "service" && k != "force" {
			return &apiError{code: http.StatusBadRequest, msg: fmt.Sprintf("unknown query parameter %q (want gateway, service, force)", k)}
		}
		if len(v) > 1 {
			return &apiError{code: http.StatusBadRequest, msg: fmt.Sprintf("query parameter %q given %d times", k, len(v))}
		}
	}
	sc.Gateway, sc.Service = q.Get("gateway"), q.Get("service")
	if f := q.Get("force"); f != "" {
		force, err := strconv.ParseBool(f)
		if err != nil {
			return &apiError{code: http.StatusBadRequest, msg: fmt.Sprintf("force=%q is not a boolean", f)}
		}
		sc.Force = force
	}
	return nil
}

// checkScope applies the rules every scope follows: a service needs a
// gateway, a service name Consul could hold, a configured gateway.
func (s *Server) checkScope(sc ResyncRequest, needGateway bool) error {
	known := s.opts.Controller.Gateways()
	switch {
	case sc.Gateway == "" && needGateway:
		return &apiError{code: http.StatusBadRequest, msg: fmt.Sprintf("gateway is required (known: %v)", known), known: known}
	case sc.Service != "" && sc.Gateway == "":
		return &apiError{code: http.StatusBadRequest, msg: "service needs a gateway: a single-service resync is of one gateway's mirror"}
	}
	if err := checkServiceName(sc.Service); err != nil {
		return &apiError{code: http.StatusBadRequest, msg: err.Error()}
	}
	if sc.Gateway != "" && !slices.Contains(known, sc.Gateway) {
		return &apiError{code: http.StatusNotFound, msg: (&syncer.UnknownGatewayError{Name: sc.Gateway, Known: known}).Error(), known: known}
	}
	return nil
}

func checkServiceName(name string) error {
	if len(name) > maxServiceName {
		return fmt.Errorf("service name is %d bytes long (at most %d)", len(name), maxServiceName)
	}
	if i := strings.IndexFunc(name, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }); i >= 0 {
		return fmt.Errorf("service name %q has a space or control character at byte %d", name, i)
	}
	if name != "" && !mirror.Addressable(name) {
		return fmt.Errorf("service name %q cannot be named in Consul's HTTP API (an empty, \".\" or \"..\" path segment)", name)
	}
	return nil
}
