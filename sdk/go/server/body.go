package server

import (
	"io"
	"net/http"
	"sync"
	"time"
)

// boundBody wraps h so that each request's body must be read within d of
// the handler's start: it sets the request's read deadline and lifts it
// once the body has been read. See "Slow clients" in the package
// documentation for why it is per request and not http.Server.ReadTimeout.
func boundBody(h http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			h.ServeHTTP(w, r) // nothing to read, nothing to bound
			return
		}
		rc := http.NewResponseController(w)
		if err := rc.SetReadDeadline(time.Now().Add(d)); err != nil {
			// A ResponseWriter without deadlines (a test recorder, a
			// wrapper without Unwrap): serve it unbounded rather than refuse it.
			h.ServeHTTP(w, r)
			return
		}
		b := &boundedBody{ReadCloser: r.Body, rc: rc, left: r.ContentLength}
		defer b.handlerDone()
		// A shallow copy carries the bounded body: net/http inspects the
		// original request's Body after the handler (to close a connection
		// whose body was not read to its end), so it must stay its own.
		r2 := r.WithContext(r.Context())
		r2.Body = b
		h.ServeHTTP(w, r2)
	})
}

// boundedBody lifts the read deadline of its request once the body has
// been read to its end.
type boundedBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	left int64 // bytes of the body still to come when Content-Length is known (> 0)

	// mu orders lift and handlerDone: a ResponseController may not be used
	// after its handler returned (a reverse proxy's transport may still read
	// the body then), and over HTTP/1.1 the connection may by then carry
	// the next request, whose deadline is not this body's to lift.
	mu   sync.Mutex
	done bool // lifted, or the handler returned
}

func (b *boundedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if b.left > 0 {
		b.left -= int64(n)
	}
	if err == io.EOF || b.left == 0 && n > 0 {
		b.lift()
	}
	return n, err
}

func (b *boundedBody) lift() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.done {
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
}

func (b *boundedBody) handlerDone() {
	b.mu.Lock()
	b.done = true
	b.mu.Unlock()
}
