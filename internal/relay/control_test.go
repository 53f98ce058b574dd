package relay

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The control API lists, adds and removes toxics, and says what is wrong
// in one line of JSON with the status that fits.
func TestControlAPI(t *testing.T) {
	ts := new(Toxics)
	srv := httptest.NewServer(ControlHandler(ts))
	defer srv.Close()
	do := func(method, path, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.Join(strings.Fields(string(b)), " ")
	}
	steps := []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"GET", "/toxics", "", 200, `[]`},
		{"POST", "/toxics", `{"type":"latency","direction":"down","latency":"50ms"}`, 201,
			`{ "name": "latency_down", "type": "latency", "direction": "down", "latency": "50ms" }`},
		{"POST", "/toxics", `{"type":"latency","direction":"down","latency":"10ms"}`, 409,
			`{ "error": "latency_down: a toxic of that name exists: remove it first, or give another name" }`},
		{"POST", "/toxics", `{"name":"cap","type":"bandwidth","rate":1048576}`, 201,
			`{ "name": "cap", "type": "bandwidth", "direction": "both", "rate": 1048576 }`},
		{"GET", "/toxics", "", 200,
			`[ { "name": "latency_down", "type": "latency", "direction": "down", "latency": "50ms" }, { "name": "cap", "type": "bandwidth", "direction": "both", "rate": 1048576 } ]`},
		{"GET", "/toxics/cap", "", 200, `{ "name": "cap", "type": "bandwidth", "direction": "both", "rate": 1048576 }`},
		{"DELETE", "/toxics/cap", "", 204, ``},
		{"DELETE", "/toxics/cap", "", 404, `{ "error": "cap: no toxic of that name" }`},
		{"GET", "/toxics/cap", "", 404, `{ "error": "cap: no toxic of that name" }`},
		{"POST", "/toxics", `{"type":"latency","latency":"50ms","color":"red"}`, 400,
			`{ "error": "the body is not a toxic: unknown field \"color\"; send JSON such as {\"type\": \"latency\", \"direction\": \"down\", \"latency\": \"50ms\"}" }`},
		{"POST", "/toxics", `{"type":"slice"}`, 400, `{ "error": "slice_both: give the segment size in bytes, such as 64" }`},
		{"PUT", "/toxics", `{}`, 405, `{ "error": "PUT /toxics: use GET or POST on /toxics, GET or DELETE on /toxics/NAME" }`},
		{"GET", "/proxies", "", 404, `{ "error": "/proxies: no such path; the toxics are at /toxics" }`},
	}
	for _, s := range steps {
		code, body := do(s.method, s.path, s.body)
		if code != s.code || body != s.want {
			t.Errorf("%s %s %s:\n got %d %s\nwant %d %s", s.method, s.path, s.body, code, body, s.code, s.want)
		}
	}
	var list []Toxic
	_, body := do("GET", "/toxics", "")
	if err := json.Unmarshal([]byte(body), &list); err != nil || len(list) != 1 || list[0].Name != "latency_down" {
		t.Errorf("the list at the end: %s (%v)", body, err)
	}
}
