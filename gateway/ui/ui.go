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
var uiFS embed.FS

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
	return escapedPath == "/" || escapedPath == "/ui" || strings.HasPrefix(escapedPath, "/ui/")
}

// Routes registers the UI on r.
func (s *UI) Routes(r *httprouter.Router) {
	ui := newUITemplates()
	static, _ := fs.Sub(uiFS, "static")
	fileServer := http.StripPrefix("/ui/static/", http.FileServer(http.FS(static)))

	redirect := func(w http.ResponseWriter, req *http.Request, _ httprouter.Params) {
		http.Redirect(w, req, "/ui/projects", http.StatusFound)
	}
	r.GET("/", redirect)
	r.GET("/ui", redirect)
	r.GET("/ui/", redirect)
	r.GET("/ui/static/*file", func(w http.ResponseWriter, req *http.Request, _ httprouter.Params) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		fileServer.ServeHTTP(w, req)
	})
	r.GET("/ui/login", s.uiPublic(ui, s.uiLoginForm))
	r.POST("/ui/login", s.uiPublic(ui, s.uiLogin))
	r.POST("/ui/logout", s.uiPublic(ui, s.uiLogout))
	r.GET("/ui/projects", s.uiPage(ui, s.uiProjects))
	r.GET("/ui/projects/:project/models", s.uiPage(ui, s.uiModels))
	r.GET("/ui/projects/:project/models/:name", s.uiPage(ui, s.uiModel))
	r.GET("/ui/projects/:project/models/:name/compare", s.uiPage(ui, s.uiCompare))
	r.GET("/ui/projects/:project/models/:name/candidates/:iid", s.uiPage(ui, s.uiCandidate))
	r.POST("/ui/projects/:project/models/:name/candidates/:iid/promote", s.uiPage(ui, s.uiPromote))
	r.GET("/ui/projects/:project/models/:name/versions/:semver", s.uiPage(ui, s.uiVersion))
}

// uiTemplates holds one parsed template set per page, each with the shared layout.
type uiTemplates map[string]*template.Template

var uiFuncs = template.FuncMap{
	"pathEscape": url.PathEscape,
	"time":       uiTime,
	"ms":         func(ms int64) string { return uiTime(time.UnixMilli(ms)) },
	"bytes":      uiBytes,
	"num":        uiNum,
	"short":      func(s string) string { return s[:min(len(s), 12)] },
}

func newUITemplates() uiTemplates {
	pages, err := fs.Glob(uiFS, "templates/*.html")
	if err != nil {
		panic(err)
	}
	t := uiTemplates{}
	for _, p := range pages {
		name := strings.TrimSuffix(strings.TrimPrefix(p, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		// Parse errors are programming errors in embedded files: the UI tests catch them at once.
		t[name] = template.Must(template.New("layout.html").Funcs(uiFuncs).ParseFS(uiFS, "templates/layout.html", p))
	}
	return t
}

// uiView is what every page template receives: page-specific Data plus the chrome.
type uiView struct {
	Title     string
	Crumbs    []uiCrumb
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

type uiCrumb struct{ Name, Href string }

// uiHandler renders into v (v.page names the template) or returns an error page.
type uiHandler func(w http.ResponseWriter, r *http.Request, ps httprouter.Params, v *uiView) error

// uiPublic serves a page that needs no login (the login form itself).
func (s *UI) uiPublic(ui uiTemplates, h uiHandler) httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		s.uiServe(ui, w, r, ps, h, nil)
	}
}

// uiPage serves a page that, with auth on, needs a valid session cookie (or an API credential header,
// so that curl and scripts can read pages too). Without one the browser is sent to the login form.
// With a principal in the context, resolveProject applies the token's project scope as for the API.
func (s *UI) uiPage(ui uiTemplates, h uiHandler) httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		if !s.auth {
			s.uiServe(ui, w, r, ps, h, nil)
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
				s.uiError(ui, w, r, &uiView{AuthOn: true}, err)
				return
			}
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/ui/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusFound)
				return
			}
			s.uiError(ui, w, r, &uiView{AuthOn: true}, fmt.Errorf("%w: log in first", httpapi.ErrUnauthenticated))
			return
		}
		r = r.WithContext(httpapi.WithPrincipal(r.Context(), tok))
		s.uiServe(ui, w, r, ps, h, tok)
	}
}

func (s *UI) uiServe(ui uiTemplates, w http.ResponseWriter, r *http.Request, ps httprouter.Params, h uiHandler, tok *metadata.Token) {
	v := &uiView{User: tok, AuthOn: s.auth, CSRF: uiCSRFToken(w, r)}
	if r.Method == http.MethodPost {
		if err := uiCheckCSRF(r); err != nil {
			s.uiError(ui, w, r, v, err)
			return
		}
		if tok != nil && tok.Scope < metadata.ScopeWrite && r.URL.Path != "/ui/login" && r.URL.Path != "/ui/logout" {
			s.uiError(ui, w, r, v, fmt.Errorf("%w: token %s has scope %s, which allows only reads", httpapi.ErrPermissionDenied, tok.ID, tok.Scope))
			return
		}
	}
	if err := h(w, r, ps, v); err != nil {
		s.uiError(ui, w, r, v, err)
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
		s.uiRender(ui, w, r, v)
	}
}

// uiRender executes the page into a buffer first, so a template error becomes a clean 500 page instead
// of half a page.
func (s *UI) uiRender(ui uiTemplates, w http.ResponseWriter, r *http.Request, v *uiView) {
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

// uiError renders err as an error page with the status of the error table.
func (s *UI) uiError(ui uiTemplates, w http.ResponseWriter, r *http.Request, v *uiView, err error) {
	class, msg, send := httpapi.PrepareError(w, r, s.log, err)
	if !send {
		return
	}
	if class.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", auth.Realm)
	}
	v.page, v.status, v.Error, v.Title = "error", class.Status, msg, http.StatusText(class.Status)
	v.Data = nil
	s.uiRender(ui, w, r, v)
}

// CSRF: double-submit. The cookie is random, HttpOnly and SameSite=Strict; forms carry its value, which a
// page of another origin can neither read nor make the browser send. Origin, when sent, must match too.

func uiCSRFToken(w http.ResponseWriter, r *http.Request) string {
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

func uiCheckCSRF(r *http.Request) error {
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
		return fmt.Errorf("%w: %v", httpapi.ErrBadRequest, err)
	}
	if subtle.ConstantTimeCompare([]byte(r.PostForm.Get(CSRFField)), []byte(c.Value)) != 1 {
		return fmt.Errorf("%w: invalid CSRF token; reload the page and submit again", httpapi.ErrPermissionDenied)
	}
	return nil
}

// Login.

type uiLoginData struct{ Next string }

func uiSafeNext(next string) string {
	// Only local UI paths: an open redirect would turn the login form into a phishing relay.
	if !strings.HasPrefix(next, "/ui/") || strings.HasPrefix(next, "//") || strings.Contains(next, "\\") {
		return "/ui/projects"
	}
	return next
}

func (s *UI) uiLoginForm(w http.ResponseWriter, r *http.Request, _ httprouter.Params, v *uiView) error {
	v.page, v.Title = "login", "Log in"
	v.Data = uiLoginData{Next: uiSafeNext(r.URL.Query().Get("next"))}
	return nil
}

func (s *UI) uiLogin(w http.ResponseWriter, r *http.Request, _ httprouter.Params, v *uiView) error {
	next := uiSafeNext(r.PostForm.Get("next"))
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
		v.Data = uiLoginData{Next: next}
		return nil
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: secret, Path: "/ui", HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	v.redirect = next
	return nil
}

func (s *UI) uiLogout(w http.ResponseWriter, r *http.Request, _ httprouter.Params, v *uiView) error {
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/ui", HttpOnly: true, MaxAge: -1,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	v.redirect = "/ui/login"
	return nil
}

// Formatting helpers for templates.

func uiTime(t time.Time) string {
	if t.IsZero() || t.Unix() <= 0 {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04")
}

func uiBytes(n int64) string {
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

// uiNum prints a metric compactly: up to 6 significant digits, as MLflow's UI does.
func uiNum(f float64) string {
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

func uiDuration(c *metadata.Candidate) string {
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
