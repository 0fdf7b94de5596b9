package agents

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"net/http"
)

//go:embed web/agent.html
var pageHTML []byte

// pageCSP allows the page's own inline script and style (by hash), its signalling on the same
// origin, and nothing else.
var pageCSP = "default-src 'none'; script-src " + inlineHash(pageHTML, "<script>", "</script>") +
	"; style-src " + inlineHash(pageHTML, "<style>", "</style>") +
	"; connect-src 'self'; media-src 'self' blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// inlineHash is the CSP source of the inline element between open and close in b.
func inlineHash(b []byte, open, close string) string {
	i := bytes.Index(b, []byte(open))
	j := bytes.Index(b, []byte(close))
	if i < 0 || j < i {
		return "'none'"
	}
	sum := sha256.Sum256(b[i+len(open) : j])
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// ServePage is the handler of GET /agent: the agent page, one self-contained HTML file.
func (h *Hub) ServePage(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Content-Security-Policy", pageCSP)
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Permissions-Policy", "microphone=(self), camera=()")
	w.Write(pageHTML)
}
