package tufrepo

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Handler serves the repository, publicly (TUF metadata is verified by its
// signatures, not by who serves it), following the TUF layout for
// consistent snapshots:
//
//	GET /tuf/metadata/{N}.root.json      every root version N
//	GET /tuf/metadata/root.json          the latest root (for bootstrapping)
//	GET /tuf/metadata/timestamp.json     the latest timestamp
//	GET /tuf/metadata/{N}.snapshot.json  snapshot version N
//	GET /tuf/metadata/{N}.targets.json   targets version N
//	GET /tuf/targets/[DIR/]{HASH}.{NAME} the target DIR/NAME of the latest
//	                                     targets, HASH being its sha256 or
//	                                     sha512 in hex; HTTP ranges work
//
// Anything else, and any version that does not exist, is a 404.
func (r *Repo) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /tuf/metadata/{file}", r.serveMetadata)
	mux.HandleFunc("GET /tuf/targets/{path...}", r.serveTarget)
	mux.HandleFunc("/tuf/", func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		http.NotFound(w, req)
	})
	return mux
}

// parseMetadataName splits "N.role.json" or "role.json"; version 0 means
// unversioned. Only canonical decimal versions are accepted.
func parseMetadataName(file string) (role string, version int64, ok bool) {
	base, found := strings.CutSuffix(file, ".json")
	if !found {
		return "", 0, false
	}
	num, role, versioned := strings.Cut(base, ".")
	if !versioned {
		switch base {
		case metadata.ROOT, metadata.TIMESTAMP:
			return base, 0, true
		}
		return "", 0, false
	}
	switch role {
	case metadata.ROOT, metadata.SNAPSHOT, metadata.TARGETS:
	default:
		return "", 0, false
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v < 1 || strconv.FormatInt(v, 10) != num {
		return "", 0, false
	}
	return role, v, true
}

func (r *Repo) serveMetadata(w http.ResponseWriter, req *http.Request) {
	role, version, ok := parseMetadataName(req.PathValue("file"))
	if !ok {
		http.NotFound(w, req)
		return
	}
	m, err := r.metadata(req.Context(), role, version)
	if errors.Is(err, ErrNotFound) {
		http.NotFound(w, req)
		return
	}
	if err != nil {
		r.internalError(w, req, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if version == 0 {
		h.Set("Cache-Control", "no-cache")
	} else {
		// A stored version never changes.
		h.Set("Cache-Control", "public, max-age=86400, immutable")
	}
	http.ServeContent(w, req, "", m.CreatedAt, bytes.NewReader(m.Body))
}

func (r *Repo) serveTarget(w http.ResponseWriter, req *http.Request) {
	p := req.PathValue("path")
	dir, base := "", p
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		dir, base = p[:i+1], p[i+1:]
	}
	prefix, name, ok := strings.Cut(base, ".")
	if !ok || r.cfg.Artifacts == nil {
		http.NotFound(w, req)
		return
	}
	name = dir + name
	_, targets, err := r.Targets(req.Context())
	if err != nil {
		r.internalError(w, req, err)
		return
	}
	tf := targets[name]
	if tf == nil || !hashMatches(tf.Hashes, prefix) {
		http.NotFound(w, req)
		return
	}
	f, err := r.cfg.Artifacts.Open(req.Context(), hex.EncodeToString(tf.Hashes["sha256"]))
	if isNotExist(err) {
		http.NotFound(w, req)
		return
	}
	if err != nil {
		r.internalError(w, req, err)
		return
	}
	defer f.Close()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Cache-Control", "public, max-age=86400, immutable")
	http.ServeContent(w, req, "", time.Time{}, f)
}

// hashMatches reports whether prefix is the hex form of one of hashes.
func hashMatches(hashes metadata.Hashes, prefix string) bool {
	for _, h := range hashes {
		if len(h) > 0 && hex.EncodeToString(h) == prefix {
			return true
		}
	}
	return false
}

func (r *Repo) internalError(w http.ResponseWriter, req *http.Request, err error) {
	r.cfg.Logger.Error("serving the update repository", "path", req.URL.Path, "err", err)
	http.Error(w, "internal error", http.StatusInternalServerError)
}
