// Package webui serves the built browser checkout (web/dist, built by
// `npm run build -w web`) as a single-page app: files as they are, hashed
// assets under /assets/ cached for a year, and index.html for every other
// path that names no file, so that the app's own routes survive a reload.
//
// The files are read at run time from a directory (tokenrelayd's -web flag),
// not embedded into the binary: a fresh clone builds and tests its Go code
// without an npm build first, and the web can be rebuilt without relinking.
package webui

import (
	"errors"
	"io"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

// IndexFile is the page served for the app's routes.
const IndexFile = "index.html"

// ErrNoIndex reports a directory without IndexFile: the web is not built.
var ErrNoIndex = errors.New("webui: no " + IndexFile + " (run `npm run build -w web`)")

// Handler serves fsys, the web build's root, for GET and HEAD requests.
// It returns ErrNoIndex when fsys has no IndexFile.
func Handler(fsys fs.FS) (http.Handler, error) {
	if st, err := fs.Stat(fsys, IndexFile); err != nil || st.IsDir() {
		return nil, ErrNoIndex
	}
	return &handler{fsys: fsys, files: http.FileServerFS(fsys)}, nil
}

type handler struct {
	fsys  fs.FS
	files http.Handler
}

// contentSecurityPolicy allows the app's own scripts, styles and API calls
// and nothing else: no inline script, no framing.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	hdr := w.Header()
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
	if name == "" || name == IndexFile {
		h.index(w, r)
		return
	}
	if st, err := fs.Stat(h.fsys, name); err == nil && !st.IsDir() {
		if strings.HasPrefix(name, "assets/") {
			// Vite names every asset by its content hash.
			hdr.Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			hdr.Set("Cache-Control", "no-cache")
		}
		h.files.ServeHTTP(w, r)
		return
	}
	// A missing file (a name with an extension, or under /assets/) is a
	// 404, not the app: a stale page asking for an old asset must not get
	// HTML back as JavaScript.
	if strings.HasPrefix(name, "assets/") || path.Ext(name) != "" {
		http.NotFound(w, r)
		return
	}
	h.index(w, r)
}

func (h *handler) index(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("Content-Security-Policy", contentSecurityPolicy)
	hdr.Set("X-Frame-Options", "DENY")
	// Read on every request (it is small) so that a rebuild shows at once;
	// ServeContent, not the file server, which would redirect /index.html.
	f, err := h.fsys.Open(IndexFile)
	if err != nil {
		http.Error(w, "the web checkout is not built", http.StatusServiceUnavailable)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	rs, ok := f.(io.ReadSeeker)
	if err != nil || !ok {
		http.Error(w, "the web checkout is not readable", http.StatusInternalServerError)
		return
	}
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	http.ServeContent(w, r, IndexFile, st.ModTime(), rs)
}
