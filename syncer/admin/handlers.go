package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	if !s.opts.Controller.Ready() {
		http.Error(w, "not ready: not every gateway this replica writes has completed a full sync", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ready")
}

func (s *Server) status(w http.ResponseWriter, _ *http.Request) {
	st := s.opts.Controller.Status()
	out := StatusResponse{Ready: s.opts.Controller.Ready(), Gateways: []GatewayStatus{}, Datacenters: []DCHealth{}}
	for _, g := range st.Gateways {
		out.Gateways = append(out.Gateways, fromGatewayStatus(g))
	}
	for _, d := range st.Datacenters {
		out.Datacenters = append(out.Datacenters, fromDCHealth(d))
	}
	if s.events != nil {
		out.Datacenters = withEvents(out.Datacenters, s.events.EventStatus())
	}
	s.withOwners(&out)
	out.Role = roleOf(out.Gateways)
	writeJSON(w, http.StatusOK, out)
}

// resync accepts a forced resync and answers 202 with its record; the
// resync runs in the background (GET /v1/resync/<id> follows it).
//
// A resync of one gateway another replica writes is refused (checkOwner);
// a resync of every gateway runs those this replica writes, and lists the
// others as skipped with their owners.
//
// A service that is neither mirrored nor in the public catalog is
// accepted: the resync then finds nothing to write (or, for a service gone
// from the source, removes what is left of it), and its outcome says so.
func (s *Server) resync(w http.ResponseWriter, r *http.Request) {
	sc, err := s.readScope(w, r, false)
	if err != nil {
		writeFailure(w, err)
		return
	}
	var parts []part
	if sc.Gateway != "" {
		if err := s.checkOwner(sc.Gateway); err != nil {
			writeFailure(w, err)
			return
		}
		parts = []part{{gateway: sc.Gateway}}
	} else {
		for _, g := range s.opts.Controller.Gateways() {
			o, self := s.ownerOf(g)
			parts = append(parts, part{gateway: g, skip: !self, owner: o})
		}
	}
	rec, err := s.jobs.start(s.base, sc, parts)
	if err != nil {
		writeError(w, http.StatusTooManyRequests, ErrorResponse{Error: fmt.Sprintf("%v (at most %d at a time): wait for one to finish", err, s.jobs.maxRunning)})
		return
	}
	w.Header().Set("Location", "/v1/resync/"+rec.ID)
	writeJSON(w, http.StatusAccepted, rec)
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
	sc, err := s.readScope(w, r, true)
	if err == nil {
		err = s.checkOwner(sc.Gateway)
	}
	if err != nil {
		writeFailure(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.DiffTimeout)
	defer cancel()
	res, err := s.opts.Controller.Sync(ctx, toRequest(sc, true))
	if err != nil {
		code := http.StatusBadGateway
		if errors.Is(err, context.DeadlineExceeded) {
			code = http.StatusGatewayTimeout
		}
		writeError(w, code, ErrorResponse{Error: "dry run: " + err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, fromResult(res, sc.Service))
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away: nothing left to tell it
}

func writeError(w http.ResponseWriter, code int, e ErrorResponse) { writeJSON(w, code, e) }
