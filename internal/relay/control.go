package relay

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
)

// ControlHandler serves the control API over the toxics, as toxiproxy's
// does, in JSON:
//
//	GET    /toxics        the toxics, in the order added
//	POST   /toxics        add the toxic in the body; 201 and the toxic, its defaults filled in
//	GET    /toxics/NAME   one toxic
//	DELETE /toxics/NAME   remove it; 204
//
// A toxic added acts at once on the pairs open and on those to come;
// one removed lets go of what it held. Errors are {"error": "..."}, one
// line that says what to do, with 400 (a bad toxic), 404 (no such
// toxic or path), 405 (a method the path has not) or 409 (the name is
// taken).
func ControlHandler(ts *Toxics) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /toxics", func(w http.ResponseWriter, r *http.Request) {
		list := ts.List()
		if list == nil {
			list = []Toxic{}
		}
		reply(w, http.StatusOK, list)
	})
	mux.HandleFunc("POST /toxics", func(w http.ResponseWriter, r *http.Request) {
		var t Toxic
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&t); err != nil {
			fail(w, http.StatusBadRequest, "the body is not a toxic: "+strings.TrimPrefix(err.Error(), "json: ")+`; send JSON such as {"type": "latency", "direction": "down", "latency": "50ms"}`)
			return
		}
		t, err := ts.Add(t)
		switch {
		case errors.Is(err, ErrExists):
			fail(w, http.StatusConflict, err.Error())
		case err != nil:
			fail(w, http.StatusBadRequest, err.Error())
		default:
			reply(w, http.StatusCreated, t)
		}
	})
	mux.HandleFunc("GET /toxics/{name}", func(w http.ResponseWriter, r *http.Request) {
		for _, t := range ts.List() {
			if t.Name == r.PathValue("name") {
				reply(w, http.StatusOK, t)
				return
			}
		}
		fail(w, http.StatusNotFound, r.PathValue("name")+": "+ErrNoToxic.Error())
	})
	mux.HandleFunc("DELETE /toxics/{name}", func(w http.ResponseWriter, r *http.Request) {
		if err := ts.Remove(r.PathValue("name")); err != nil {
			fail(w, http.StatusNotFound, err.Error())
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, pattern := mux.Handler(r)
		if pattern == "" {
			if r.URL.Path == "/toxics" || strings.HasPrefix(r.URL.Path, "/toxics/") {
				fail(w, http.StatusMethodNotAllowed, r.Method+" "+r.URL.Path+": use GET or POST on /toxics, GET or DELETE on /toxics/NAME")
				return
			}
			fail(w, http.StatusNotFound, r.URL.Path+": no such path; the toxics are at /toxics")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	b, _ := json.MarshalIndent(v, "", "  ")
	w.Write(append(b, '\n'))
}

func fail(w http.ResponseWriter, code int, msg string) {
	reply(w, code, map[string]string{"error": msg})
}
