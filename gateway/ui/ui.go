// Package ui is the web UI: server-rendered pages under /ui/ (html/template, so every user-supplied
// string is escaped), embedded assets, and no page that needs JavaScript. Sorting, filtering, paging and
// column choice are query parameters, so every view is a link. JavaScript (static/ui.js) only adds copy
// buttons and client-side re-sorting. The candidate table asks the same query engine as MLflow's
// runs/search (gateway/runquery).
package ui

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"
	"github.com/mlgate/mlgate/gateway/auth"
	"github.com/mlgate/mlgate/gateway/httpapi"
	"github.com/mlgate/mlgate/gateway/runquery"
	"github.com/mlgate/mlgate/metadata"
)

//go:embed templates/*.html static/*
var assets embed.FS

const (
	// SessionCookie holds the token secret of a logged-in browser. HttpOnly keeps it from scripts;
	// SameSite=Strict keeps it off cross-site requests; Path=/ui keeps it off the API, which must never
	// accept ambient credentials (its clients do not send CSRF tokens).
	SessionCookie = "mlgate_session"
	// CSRFCookie is the double-submit CSRF secret: every non-GET form must echo it in the csrf field.
	CSRFCookie = "mlgate_csrf"
	CSRFField  = "csrf"
)

// Deps is what the UI needs.
type Deps struct {
	Store metadata.Store
	Log   *slog.Logger
	// Auth requires a login (a token, kept in a session cookie) on every page but the login form.
	Auth bool
}

// UI serves the web UI.
type UI struct {
	store  metadata.Store
	log    *slog.Logger
	auth   bool
	search *runquery.Engine
}

// New builds the UI.
func New(d Deps) *UI {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	return &UI{store: d.Store, log: d.Log, auth: d.Auth, search: &runquery.Engine{Store: d.Store}}
}

// IsUIPath reports whether path is served by the UI, which authenticates on its own (a cookie, with a
// login page) instead of through the API's credential headers.
func IsUIPath(escapedPath string) bool {
	return escapedPath == "/" || escapedPath == "/ui" || strings.HasPrefix(escapedPath, "/ui/") || isTrackingRoot(escapedPath)
}

// Routes registers the UI on r.
func (s *UI) Routes(r httpapi.Registrar) {
	ui := newUITemplates()
	static, _ := fs.Sub(assets, "static")
	fileServer := http.StripPrefix("/ui/static/", http.FileServer(http.FS(static)))

	redirect := func(w http.ResponseWriter, req *http.Request, _ httprouter.Params) {
		http.Redirect(w, req, "/ui/projects", http.StatusFound)
	}
	get, post := http.MethodGet, http.MethodPost
	public, session := httpapi.AccessPublic, httpapi.AccessSession
	r.Handle(get, "/", public, redirect)
	r.Handle(get, "/ui", public, redirect)
	r.Handle(get, "/ui/", public, redirect)
	r.Handle(get, "/ui/static/*file", public, func(w http.ResponseWriter, req *http.Request, _ httprouter.Params) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		fileServer.ServeHTTP(w, req)
	})
	r.Handle(get, "/ui/login", public, s.public(ui, s.loginForm))
	r.Handle(post, "/ui/login", public, s.public(ui, s.login))
	r.Handle(post, "/ui/logout", public, s.public(ui, s.logout))
	// The MLflow link page is public without ?fragment= (it shows only its own query) and resolves
	// links, behind the session like every page, with it.
	r.Handle(get, MLflowLinkPath, public, s.mlflowLink(ui))
	r.Handle(get, trackingRootPattern, public, trackingRoot)
	r.Handle(get, "/ui/projects", session, s.page(ui, s.projects))
	r.Handle(get, "/ui/projects/:project/models", session, s.page(ui, s.models))
	r.Handle(get, "/ui/projects/:project/models/:name", session, s.page(ui, s.model))
	r.Handle(get, "/ui/projects/:project/models/:name/compare", session, s.page(ui, s.compare))
	r.Handle(get, "/ui/projects/:project/models/:name/candidates/:iid", session, s.page(ui, s.candidate))
	r.Handle(post, "/ui/projects/:project/models/:name/candidates/:iid/promote", session, s.page(ui, s.promote))
	r.Handle(get, "/ui/projects/:project/models/:name/versions/:semver", session, s.page(ui, s.version))
	r.Handle(get, "/ui/projects/:project/models/:name/logged-models/:model_id", session, s.page(ui, s.loggedModelPage))
}

// templates holds one parsed template set per page, each with the shared layout.
type templates map[string]*template.Template

var templateFuncs = template.FuncMap{
	"pathEscape": url.PathEscape,
	"time":       formatTime,
	"ms":         func(ms int64) string { return formatTime(time.UnixMilli(ms)) },
	"bytes":      formatBytes,
	"num":        formatNum,
	"short":      func(s string) string { return s[:min(len(s), 12)] },
	// lmStatus drops the LOGGED_MODEL_ prefix that every logged-model status shares.
	"lmStatus": func(st metadata.LoggedModelStatus) string { return strings.TrimPrefix(st.String(), "LOGGED_MODEL_") },
}

func newUITemplates() templates {
	pages, err := fs.Glob(assets, "templates/*.html")
	if err != nil {
		panic(err)
	}
	t := templates{}
	for _, p := range pages {
		name := strings.TrimSuffix(strings.TrimPrefix(p, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		// Parse errors are programming errors in embedded files: the UI tests catch them at once.
		t[name] = template.Must(template.New("layout.html").Funcs(templateFuncs).ParseFS(assets, "templates/layout.html", p))
	}
	return t
}

// view is what every page template receives: page-specific Data plus the chrome.
type view struct {
	Title     string
	Crumbs    []crumb
	User      *metadata.Token // nil when auth is off
	AuthOn    bool
	CSRF      string
	Error     string
	Data      any
	status    int
	page      string
	redirect  string
	rawBody   []byte // a non-HTML answer (CSV)
	rawHeader http.Header
}

type crumb struct{ Name, Href string }

// pageHandler renders into v (v.page names the template) or returns an error page.
type pageHandler func(w http.ResponseWriter, r *http.Request, ps httprouter.Params, v *view) error

// public serves a page that needs no login (the login form itself).
func (s *UI) public(ui templates, h pageHandler) httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		s.serve(ui, w, r, ps, h, nil)
	}
}

// page serves a page that, with auth on, needs a valid session cookie (or an API credential header,
// so that curl and scripts can read pages too). Without one the browser is sent to the login form.
// With a principal in the context, resolveProject applies the token's project scope as for the API.
func (s *UI) page(ui templates, h pageHandler) httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		if !s.auth {
			s.serve(ui, w, r, ps, h, nil)
			return
		}
		secret, err := auth.Credentials(r)
		if err == nil && secret == "" {
			if c, cerr := r.Cookie(SessionCookie); cerr == nil {
				secret = c.Value
			}
		}
		var tok *metadata.Token
		if err == nil && secret != "" {
			tok, err = auth.Authenticate(r.Context(), s.store, secret)
		}
		if tok == nil {
			if err != nil && !errors.Is(err, httpapi.ErrUnauthenticated) {
				s.renderError(ui, w, r, &view{AuthOn: true}, err)
				return
			}
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/ui/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusFound)
				return
			}
			s.renderError(ui, w, r, &view{AuthOn: true}, fmt.Errorf("%w: log in first", httpapi.ErrUnauthenticated))
			return
		}
		r = r.WithContext(httpapi.WithPrincipal(r.Context(), tok))
		s.serve(ui, w, r, ps, h, tok)
	}
}

func (s *UI) serve(ui templates, w http.ResponseWriter, r *http.Request, ps httprouter.Params, h pageHandler, tok *metadata.Token) {
	v := &view{User: tok, AuthOn: s.auth, CSRF: csrfToken(w, r)}
	if r.Method == http.MethodPost {
		// The UI's forms are a token and a few fields; without a limit ParseForm would read 10 MB into
		// memory for each request.
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
		if err := checkCSRF(r); err != nil {
			s.renderError(ui, w, r, v, err)
			return
		}
		if tok != nil && tok.Scope < metadata.ScopeWrite && r.URL.Path != "/ui/login" && r.URL.Path != "/ui/logout" {
			s.renderError(ui, w, r, v, fmt.Errorf("%w: token %s has scope %s, which allows only reads", httpapi.ErrPermissionDenied, tok.ID, tok.Scope))
			return
		}
	}
	if err := h(w, r, ps, v); err != nil {
		s.renderError(ui, w, r, v, err)
		return
	}
	switch {
	case v.redirect != "":
		http.Redirect(w, r, v.redirect, http.StatusSeeOther)
	case v.rawBody != nil:
		for k, vals := range v.rawHeader {
			w.Header()[k] = vals
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(v.rawBody)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(v.rawBody)
	default:
		s.render(ui, w, r, v)
	}
}

// render executes the page into a buffer first, so a template error becomes a clean 500 page instead
// of half a page.
func (s *UI) render(ui templates, w http.ResponseWriter, r *http.Request, v *view) {
	t := ui[v.page]
	var buf bytes.Buffer
	if t == nil {
		s.log.Error("ui: unknown template", "page", v.page)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if err := t.ExecuteTemplate(&buf, "layout.html", v); err != nil {
		s.log.Error("ui: rendering", "page", v.page, "err", err, "request_id", httpapi.RequestID(r))
		http.Error(w, "internal error, request id "+httpapi.RequestID(r), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	// Everything is served by mlgate itself; inline styles are allowed for chart colours only.
	h.Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	status := v.status
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// renderError renders err as an error page with the status of the error table.
func (s *UI) renderError(ui templates, w http.ResponseWriter, r *http.Request, v *view, err error) {
	class, msg := httpapi.PrepareError(w, r, s.log, err)
	if class.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", auth.Realm)
	}
	v.page, v.status, v.Error, v.Title = "error", class.Status, msg, http.StatusText(class.Status)
	v.Data = nil
	s.render(ui, w, r, v)
}

// maxFormBody bounds a form the UI accepts (login, promote).
const maxFormBody = 64 << 10

// CSRF: double-submit. The cookie is random, HttpOnly and SameSite=Strict; forms carry its value, which a
// page of another origin can neither read nor make the browser send. Origin, when sent, must match too.

func csrfToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(CSRFCookie); err == nil && len(c.Value) >= 32 {
		return c.Value
	}
	var b [24]byte
	_, _ = rand.Read(b[:])
	tok := base64.RawURLEncoding.EncodeToString(b[:])
	http.SetCookie(w, &http.Cookie{Name: CSRFCookie, Value: tok, Path: "/ui", HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	return tok
}

func checkCSRF(r *http.Request) error {
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return fmt.Errorf("%w: cross-origin form submission refused", httpapi.ErrPermissionDenied)
		}
	}
	c, err := r.Cookie(CSRFCookie)
	if err != nil || c.Value == "" {
		return fmt.Errorf("%w: missing CSRF cookie; reload the page and submit again", httpapi.ErrPermissionDenied)
	}
	if err := r.ParseForm(); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return fmt.Errorf("%w: the form has more than %d bytes", httpapi.ErrTooLarge, maxFormBody)
		}
		return fmt.Errorf("%w: %v", httpapi.ErrBadRequest, err)
	}
	if subtle.ConstantTimeCompare([]byte(r.PostForm.Get(CSRFField)), []byte(c.Value)) != 1 {
		return fmt.Errorf("%w: invalid CSRF token; reload the page and submit again", httpapi.ErrPermissionDenied)
	}
	return nil
}

// Login.

type loginData struct{ Next string }

func safeNext(next string) string {
	// Only local UI paths: an open redirect would turn the login form into a phishing relay.
	if !strings.HasPrefix(next, "/ui/") || strings.HasPrefix(next, "//") || strings.Contains(next, "\\") {
		return "/ui/projects"
	}
	return next
}

func (s *UI) loginForm(w http.ResponseWriter, r *http.Request, _ httprouter.Params, v *view) error {
	v.page, v.Title = "login", "Log in"
	v.Data = loginData{Next: safeNext(r.URL.Query().Get("next"))}
	return nil
}

func (s *UI) login(w http.ResponseWriter, r *http.Request, _ httprouter.Params, v *view) error {
	next := safeNext(r.PostForm.Get("next"))
	secret := strings.TrimSpace(r.PostForm.Get("token"))
	if !s.auth {
		v.redirect = next
		return nil
	}
	if _, err := auth.Authenticate(r.Context(), s.store, secret); err != nil {
		if !errors.Is(err, httpapi.ErrUnauthenticated) {
			return err
		}
		v.page, v.Title, v.status, v.Error = "login", "Log in", http.StatusUnauthorized, err.Error()
		v.Data = loginData{Next: next}
		return nil
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: secret, Path: "/ui", HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	v.redirect = next
	return nil
}

func (s *UI) logout(w http.ResponseWriter, r *http.Request, _ httprouter.Params, v *view) error {
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/ui", HttpOnly: true, MaxAge: -1,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	v.redirect = "/ui/login"
	return nil
}

// Formatting helpers for templates.

func formatTime(t time.Time) string {
	if t.IsZero() || t.Unix() <= 0 {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04")
}

func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// formatNum prints a metric compactly: up to 6 significant digits, as MLflow's UI does.
func formatNum(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "∞"
	case math.IsInf(f, -1):
		return "-∞"
	}
	return strconv.FormatFloat(f, 'g', 6, 64)
}

func formatDuration(c *metadata.Candidate) string {
	if c.EndTime == 0 || c.EndTime < c.StartTime {
		return "—"
	}
	d := time.Duration(c.EndTime-c.StartTime) * time.Millisecond
	switch {
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	case d < time.Hour:
		return d.Round(time.Second).String()
	}
	return d.Round(time.Minute).String()
}
