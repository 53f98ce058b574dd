package watch

import (
	"fmt"
	"html/template"
	"io"
	"strings"
)

// MaxHTMLSteps is how many segments an HTML page holds; later ones are
// counted and left out, so that a long capture cannot make a page no
// browser opens.
const MaxHTMLSteps = 20000

// The ladder's geometry in the page, in SVG units.
const (
	svgTop    = 44  // the first arrow's label
	svgRow    = 34  // from one arrow to the next
	svgClient = 110 // the client's bar
	svgServer = 600 // the server's bar
	svgNote   = 616 // where the notes start
	svgChar   = 7   // a note character's width, roughly, for the page's width
)

// htmlPage collects steps for WriteHTML.
type htmlPage struct {
	port    uint16
	conns   []*htmlConn
	byID    map[int]*htmlConn
	dropped int
	total   int
}

type htmlConn struct {
	ID             int
	Client, Server string
	Steps          []htmlStep
}

// htmlStep is one arrow, with what its details panel shows.
type htmlStep struct {
	ID         string // "c1s3": connection 1, segment 3; the element's id and the URL fragment that selects it
	FromClient bool
	Class      string // syn, fin, rst or data: the arrow's colour
	Label      string
	Time       string
	Notes      string
	Title      string            // the hover text
	Details    map[string]string // the click panel's fields
	Y          int
}

func (p *htmlPage) add(st Step) {
	if p.total >= MaxHTMLSteps {
		p.dropped++
		return
	}
	p.total++
	if p.byID == nil {
		p.byID = map[int]*htmlConn{}
	}
	c := p.byID[st.Conn]
	if c == nil {
		c = &htmlConn{ID: st.Conn, Client: st.Client.String(), Server: st.Server.String()}
		p.byID[st.Conn] = c
		p.conns = append(p.conns, c)
	}
	n := len(c.Steps) + 1
	class := "data"
	switch f := st.Seg.Flags; {
	case f&RST != 0:
		class = "rst"
	case f&SYN != 0:
		class = "syn"
	case f&FIN != 0:
		class = "fin"
	case st.Seg.Len == 0:
		class = "ack"
	}
	src, dst := st.Seg.Src.String(), st.Seg.Dst.String()
	dir := "client → server"
	if !st.FromClient {
		dir = "server → client"
	}
	notes := strings.Join(st.Notes, "; ")
	s := htmlStep{
		ID:         fmt.Sprintf("c%ds%d", st.Conn, n),
		FromClient: st.FromClient,
		Class:      class,
		Label:      Label(st),
		Time:       fmt.Sprintf("%.6f", st.Elapsed.Seconds()),
		Notes:      notes,
		Y:          svgTop + (n-1)*svgRow,
		Details: map[string]string{
			"segment":   fmt.Sprintf("#%d of connection %d", n, st.Conn),
			"time":      fmt.Sprintf("%.6f s after the connection's first segment", st.Elapsed.Seconds()),
			"direction": fmt.Sprintf("%s (%s → %s)", dir, src, dst),
			"flags":     st.Seg.Flags.String(),
			"seq":       fmt.Sprintf("%d (raw %d)", st.Seq, st.Seg.Seq),
			"ack":       fmt.Sprintf("%d (raw %d)", st.Ack, st.Seg.Ack),
			"window":    fmt.Sprintf("%d (as sent, unscaled)", st.Seg.Window),
			"payload":   fmt.Sprintf("%d bytes", st.Seg.Len),
			"preview":   Preview(st.Seg.Payload, st.Seg.Len),
			"meaning":   notes,
		},
	}
	if st.Seg.Flags&ACK == 0 {
		s.Details["ack"] = "none (no ACK flag)"
	}
	s.Title = fmt.Sprintf("%s %s\n%s\n%s s", dir, s.Label, notes, s.Time)
	c.Steps = append(c.Steps, s)
}

// write writes the page.
func (p *htmlPage) write(w io.Writer) error {
	details := map[string]map[string]string{}
	for _, c := range p.conns {
		for _, s := range c.Steps {
			details[s.ID] = s.Details
		}
	}
	return pageTemplate.Execute(w, map[string]any{
		"Port":    p.port,
		"Conns":   p.conns,
		"Total":   p.total,
		"Dropped": p.dropped,
		"Details": details,
		"G":       map[string]int{"Client": svgClient, "Server": svgServer, "Mid": (svgClient + svgServer) / 2, "Note": svgNote},
	})
}

var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{
	"height": func(c *htmlConn) int { return svgTop + len(c.Steps)*svgRow + 10 },
	"width": func(c *htmlConn) int {
		w := 0
		for _, s := range c.Steps {
			w = max(w, len(s.Notes))
		}
		return svgNote + w*svgChar + 20
	},
	"x1": func(s htmlStep) int {
		if s.FromClient {
			return svgClient
		}
		return svgServer
	},
	"x2": func(s htmlStep) int {
		if s.FromClient {
			return svgServer - 2
		}
		return svgClient + 2
	},
	"add": func(a, b int) int { return a + b },
}).Parse(pageHTML))

const pageHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>tcpkit watch{{if .Port}}: port {{.Port}}{{end}}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h2 { font-size: 1.05em; margin: 1.6em 0 0.3em; }
svg { display: block; overflow: visible; }
svg text { font: 12px ui-monospace, monospace; }
.bar { stroke: #444; stroke-width: 2; }
.side { font-weight: bold; }
.seg line { stroke-width: 2; }
.seg { cursor: pointer; }
.seg:hover line, .seg.selected line { stroke-width: 4; }
.seg:hover text.label, .seg.selected text.label { font-weight: bold; }
.syn line { stroke: #1a7f37; } .syn .label { fill: #1a7f37; }
.fin line { stroke: #b35900; } .fin .label { fill: #b35900; }
.rst line { stroke: #cf222e; } .rst .label { fill: #cf222e; }
.data line { stroke: #0550ae; } .data .label { fill: #0550ae; }
.ack line { stroke: #666; } .ack .label { fill: #555; }
.time { fill: #777; }
.note { fill: #222; }
#details { position: sticky; top: 0; background: #f6f8fa; border: 1px solid #d0d7de; padding: 0.5em 1em; min-height: 2em; }
#details dl { display: grid; grid-template-columns: max-content auto; gap: 0.1em 1em; margin: 0; }
#details dt { font-weight: bold; }
#details dd { margin: 0; font-family: ui-monospace, monospace; white-space: pre-wrap; }
</style>
</head>
<body>
<h1>tcpkit watch{{if .Port}}: TCP port {{.Port}}{{end}}</h1>
<p id="summary">{{len .Conns}} connection(s), {{.Total}} segment(s){{if .Dropped}}; {{.Dropped}} later segment(s) left out of this page{{end}}.
The client is on the left, the server on the right; each arrow is one segment with its flags, its sequence and acknowledgement numbers
counted from the start of the connection (the SYN is 0), and its payload. Point at an arrow for a summary, click it for every field.</p>
<div id="details">Click an arrow to see its segment here.</div>
{{range .Conns}}{{$c := .}}
<section class="conn" id="conn{{.ID}}">
<h2>Connection {{.ID}}: client {{.Client}}, server {{.Server}}</h2>
<svg xmlns="http://www.w3.org/2000/svg" width="{{width .}}" height="{{height .}}" role="img" aria-label="connection {{.ID}}">
<defs><marker id="head{{.ID}}" viewBox="0 0 10 10" refX="10" refY="5" markerUnits="userSpaceOnUse" markerWidth="12" markerHeight="12" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="context-stroke"/></marker></defs>
<text class="side" x="{{$.G.Client}}" y="16" text-anchor="middle">client</text>
<text class="side" x="{{$.G.Server}}" y="16" text-anchor="middle">server</text>
<text class="addr" x="{{$.G.Client}}" y="30" text-anchor="middle">{{.Client}}</text>
<text class="addr" x="{{$.G.Server}}" y="30" text-anchor="middle">{{.Server}}</text>
<line class="bar" x1="{{$.G.Client}}" y1="36" x2="{{$.G.Client}}" y2="{{height .}}"/>
<line class="bar" x1="{{$.G.Server}}" y1="36" x2="{{$.G.Server}}" y2="{{height .}}"/>
{{range .Steps}}<g class="seg {{.Class}}" id="{{.ID}}" tabindex="0" data-from="{{if .FromClient}}client{{else}}server{{end}}">
<title>{{.Title}}</title>
<text class="time" x="4" y="{{add .Y 14}}">{{.Time}}</text>
<text class="label" x="{{$.G.Mid}}" y="{{add .Y 4}}" text-anchor="middle">{{.Label}}</text>
<line class="arrow" x1="{{x1 .}}" y1="{{add .Y 8}}" x2="{{x2 .}}" y2="{{add .Y 22}}" marker-end="url(#head{{$c.ID}})"/>
<text class="note" x="{{$.G.Note}}" y="{{add .Y 14}}">{{.Notes}}</text>
</g>
{{end}}</svg>
</section>
{{end}}
<script>
"use strict";
const segs = {{.Details}};
const order = ["segment", "time", "direction", "flags", "seq", "ack", "window", "payload", "preview", "meaning"];
function show(id) {
  const d = segs[id];
  if (!d) return;
  document.querySelectorAll(".seg.selected").forEach(e => e.classList.remove("selected"));
  const g = document.getElementById(id);
  g.classList.add("selected");
  const dl = document.createElement("dl");
  for (const k of order) {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = d[k];
    dl.append(dt, dd);
  }
  const box = document.getElementById("details");
  box.replaceChildren(dl);
  box.dataset.seg = id;
}
document.querySelectorAll(".seg").forEach(g => {
  g.addEventListener("click", () => { history.replaceState(null, "", "#" + g.id); show(g.id); });
  g.addEventListener("keydown", e => { if (e.key === "Enter") g.dispatchEvent(new Event("click")); });
});
// A fragment (run.html#c1s4) clicks its arrow, as a reader would.
function fromHash() {
  const g = document.getElementById(location.hash.slice(1));
  if (g && g.classList.contains("seg")) g.dispatchEvent(new MouseEvent("click", {bubbles: true}));
}
window.addEventListener("hashchange", fromHash);
fromHash();
</script>
</body>
</html>
`
