package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/gwsync/gwsync/syncer"
)

// maxBody bounds a request body: a resync request is a few dozen bytes.
const maxBody = 64 << 10

// maxServiceName is Consul's own limit on a service name's length.
const maxServiceName = 256

func (s *Server) status(w http.ResponseWriter, _ *http.Request) {
	st := s.opts.Controller.Status()
	out := StatusResponse{Ready: s.opts.Controller.Ready(), Gateways: []GatewayStatus{}, Datacenters: []DCHealth{}}
	for _, g := range st.Gateways {
		out.Gateways = append(out.Gateways, fromGatewayStatus(g))
	}
	for _, d := range st.Datacenters {
		out.Datacenters = append(out.Datacenters, fromDCHealth(d))
	}
	out.Role = roleOf(out.Gateways)
	writeJSON(w, http.StatusOK, out)
}

// resync accepts a forced resync and answers 202 with its record; the
// resync runs in the background (GET /v1/resync/<id> follows it).
//
// The scope comes from a JSON body, or from the query when the body is
// empty. A service that is neither mirrored nor in the public catalog is
// accepted: the resync then finds nothing to write (or, for a service gone
// from the source, removes what is left of it), and its outcome says so.
func (s *Server) resync(w http.ResponseWriter, r *http.Request) {
	req, err := decodeResync(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, ErrorResponse{Error: err.Error()})
		return
	}
	gateways := s.opts.Controller.Gateways()
	if req.Gateway != "" {
		if !s.knownGateway(w, req.Gateway) {
			return
		}
		gateways = []string{req.Gateway}
	}
	rec, err := s.jobs.start(s.base, req, gateways)
	if err != nil {
		writeError(w, http.StatusTooManyRequests, ErrorResponse{Error: fmt.Sprintf("%v (at most %d at a time): wait for one to finish", err, s.jobs.maxRunning)})
		return
	}
	w.Header().Set("Location", "/v1/resync/"+rec.ID)
	writeJSON(w, http.StatusAccepted, rec)
}

func decodeResync(r *http.Request) (ResyncRequest, error) {
	var req ResyncRequest
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	if err != nil {
		return req, fmt.Errorf("read body: %w", err)
	}
	q := r.URL.Query()
	if len(strings.TrimSpace(string(body))) > 0 {
		if len(q) > 0 {
			return req, errors.New("give the resync scope either as a JSON body or as query parameters, not both")
		}
		dec := json.NewDecoder(strings.NewReader(string(body)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return req, fmt.Errorf("invalid JSON body (want {\"gateway\": \"…\", \"service\": \"…\", \"force\": false}): %w", err)
		}
	} else {
		for k := range q {
			if k != "gateway" && k != "service" && k != "force" {
				return req, fmt.Errorf("unknown query parameter %q (want gateway, service, force)", k)
			}
		}
		req.Gateway, req.Service = q.Get("gateway"), q.Get("service")
		if f := q.Get("force"); f != "" {
			if req.Force, err = strconv.ParseBool(f); err != nil {
				return req, fmt.Errorf("force=%q is not a boolean", f)
			}
		}
	}
	if req.Service != "" && req.Gateway == "" {
		return req, errors.New("service needs a gateway: a single-service resync is of one gateway's mirror")
	}
	return req, checkServiceName(req.Service)
}

func checkServiceName(name string) error {
	if len(name) > maxServiceName {
		return fmt.Errorf("service name is %d bytes long (at most %d)", len(name), maxServiceName)
	}
	if i := strings.IndexFunc(name, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) || r == '/' }); i >= 0 {
		return fmt.Errorf("service name %q has a space, slash or control character at byte %d", name, i)
	}
	return nil
}

// knownGateway answers 404 listing the known gateways if name is not one.
func (s *Server) knownGateway(w http.ResponseWriter, name string) bool {
	known := s.opts.Controller.Gateways()
	if slices.Contains(known, name) {
		return true
	}
	writeError(w, http.StatusNotFound, ErrorResponse{Error: (&syncer.UnknownGatewayError{Name: name, Known: known}).Error(), KnownGateways: known})
	return false
}

func (s *Server) resyncGet(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	rec, ok := s.jobs.get(id)
	if !ok {
		writeError(w, http.StatusNotFound, ErrorResponse{Error: fmt.Sprintf("no resync %q (the %d most recent finished resyncs are kept)", id, s.jobs.maxFinished)})
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

func (s *Server) resyncList(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.jobs.list())
}

// diff runs a dry-run reconcile: what a sync would add, update and delete
// now, with the reason for each. force=true shows what a forced resync
// would do (deletes past the guard included).
func (s *Server) diff(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for k := range q {
		if k != "gateway" && k != "service" && k != "force" {
			writeError(w, http.StatusBadRequest, ErrorResponse{Error: fmt.Sprintf("unknown query parameter %q (want gateway, service, force)", k)})
			return
		}
	}
	gw, svc := q.Get("gateway"), q.Get("service")
	if gw == "" {
		known := s.opts.Controller.Gateways()
		writeError(w, http.StatusBadRequest, ErrorResponse{Error: fmt.Sprintf("gateway is required (known: %v)", known), KnownGateways: known})
		return
	}
	if !s.knownGateway(w, gw) {
		return
	}
	if err := checkServiceName(svc); err != nil {
		writeError(w, http.StatusBadRequest, ErrorResponse{Error: err.Error()})
		return
	}
	force := false
	if f := q.Get("force"); f != "" {
		var err error
		if force, err = strconv.ParseBool(f); err != nil {
			writeError(w, http.StatusBadRequest, ErrorResponse{Error: fmt.Sprintf("force=%q is not a boolean", f)})
			return
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), or(s.opts.DiffTimeout, DefaultDiffTimeout))
	defer cancel()
	res, err := s.opts.Controller.Sync(ctx, toRequest(ResyncRequest{Gateway: gw, Service: svc, Force: force}, true))
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			writeError(w, http.StatusGatewayTimeout, ErrorResponse{Error: "dry run: " + err.Error()})
			return
		}
		writeError(w, http.StatusBadGateway, ErrorResponse{Error: "dry run: " + err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, fromResult(res, svc))
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away: nothing left to tell it
}

func writeError(w http.ResponseWriter, code int, e ErrorResponse) { writeJSON(w, code, e) }
