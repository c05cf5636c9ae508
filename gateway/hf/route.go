package hf

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/mlgate/mlgate/gateway/httpapi"
)

type routeKind int

const (
	routeInfo    routeKind = iota + 1 // GET /api/models/{repo}[/revision/{rev}]
	routeTree                         // GET /api/models/{repo}/tree/{rev}[/{path}]
	routeResolve                      // HEAD/GET /{repo}/resolve/{rev}/{path}
)

// target is one reading of a request path: which route, which repository, which revision and path.
// A path can have several readings (see parseRoute); the handler serves the first whose repository
// exists.
type target struct {
	kind routeKind
	// name is the project path and the repository id joined with "/": the repository is found by
	// splitting it into a project path and a model name (see API.repository).
	name string
	// repoID is the repository id as the client named it (what follows /api/models/), or "" on
	// resolve routes, whose URL does not show where the project path ends.
	repoID string
	rev    string // "" on an info route without /revision/: Main
	path   string // the file (resolve) or folder (tree; "" for the root) in the repository
}

// parseRoute reads what follows /hf in an escaped path. The project path, the repository id and file
// paths all hold slashes, so no router pattern can split them; the markers do:
//
//	/<project path>/api/models/<repo id>[/revision/<rev>]
//	/<project path>/api/models/<repo id>/tree/<rev>[/<path>]
//	/<project path>/<repo id>/resolve/<rev>/<path>
//
// Every segment is unescaped on its own, so an escaped "/" (the client sends a revision and a tree
// path that way) stays inside its segment. A marker may also occur inside a name or a path ("resolve"
// in a file path, "tree" as a model name's segment), so every placement of the markers that fits the
// grammar is returned, leftmost first; none is a path that is no Hugging Face route (nil, nil). A
// malformed escape is httpapi.ErrBadRequest.
func parseRoute(rest string) ([]target, error) {
	raw := strings.Split(strings.TrimPrefix(rest, "/"), "/")
	segs := make([]string, len(raw))
	for i, s := range raw {
		u, err := url.PathUnescape(s)
		if err != nil {
			return nil, fmt.Errorf("%w: malformed escape in %q", httpapi.ErrBadRequest, s)
		}
		segs[i] = u
	}
	// An empty segment (a doubled or trailing slash) belongs to no name; a tree path may end in "/"
	// (one listing of "sub/" is one of "sub"), which the tree route handles itself.
	nonEmpty := func(ss []string) bool {
		for _, s := range ss {
			if s == "" {
				return false
			}
		}
		return len(ss) > 0
	}
	var out []target
	for k := 1; k+2 < len(segs); k++ {
		if segs[k] != "api" || segs[k+1] != "models" || !nonEmpty(segs[:k]) {
			continue
		}
		project, repo := segs[:k], segs[k+2:]
		add := func(kind routeKind, id []string, rev, path string) {
			if nonEmpty(id) {
				out = append(out, target{kind: kind, name: strings.Join(append(project[:len(project):len(project)], id...), "/"),
					repoID: strings.Join(id, "/"), rev: rev, path: path})
			}
		}
		for j := 1; j < len(repo); j++ {
			switch {
			case repo[j] == "revision" && j+2 == len(repo) && repo[j+1] != "":
				add(routeInfo, repo[:j], repo[j+1], "")
			case repo[j] == "tree" && j+1 < len(repo) && repo[j+1] != "":
				add(routeTree, repo[:j], repo[j+1], strings.Join(repo[j+2:], "/"))
			}
		}
		add(routeInfo, repo, "", "")
	}
	for i := 2; i+2 < len(segs); i++ {
		if p := strings.Join(segs[i+2:], "/"); segs[i] == "resolve" && nonEmpty(segs[:i]) && segs[i+1] != "" && p != "" {
			out = append(out, target{kind: routeResolve, name: strings.Join(segs[:i], "/"), rev: segs[i+1], path: p})
		}
	}
	return out, nil
}

// guessName is the text before the first marker of an unparsed path, unescaped when it can be, for
// the check that a token of another project learns nothing from a request that is no route.
func guessName(rest string) string {
	rest = strings.TrimPrefix(rest, "/")
	for _, m := range []string{"/api/models/", "/resolve/"} {
		if i := strings.Index(rest, m); i > 0 {
			rest = rest[:i]
			break
		}
	}
	if u, err := url.PathUnescape(rest); err == nil {
		return u
	}
	return rest
}
