package adminserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/qqchat/qq/admin"
)

// handlerFunc serves one endpoint: it returns the reply to encode as JSON
// with status 200, or an error that writeError renders.
type handlerFunc func(s *Server, r *http.Request) (any, error)

// route is an entry of the handler table.
type route struct {
	pattern string
	need    perm
	fn      handlerFunc
	// writeTimeout, when set, replaces the server's for the reply (an
	// endpoint that may run longer).
	writeTimeout time.Duration
}

// register is the handler table: every endpoint, with the permission it
// needs. Patterns are net/http.ServeMux patterns.
func (s *Server) register() {
	s.handle("GET /v1/users", permRead, (*Server).users)
	s.handle("GET /v1/stats", permRead, (*Server).stats)
	s.handle("GET /v1/plugins", permRead, (*Server).plugins)
	s.handle("POST /v1/kick", permWrite, (*Server).kick)
	s.handle("POST /v1/broadcast", permWrite, (*Server).broadcast)
	s.handle("POST /v1/reload", permWrite, (*Server).reload)
	s.handle("POST /v1/reload/check", permWrite, (*Server).checkReload)
	s.handle("POST /v1/accounts", permWrite, (*Server).addAccount)
	s.handle("DELETE /v1/accounts/{user}", permWrite, (*Server).removeAccount)
	s.handle("PUT /v1/accounts/{user}/password", permWrite, (*Server).setPassword)
	s.handle("GET /v1/groups", permRead, (*Server).userGroups)
	s.handle("GET /v1/groups/{id}", permRead, (*Server).groupInfo)
	s.handle("GET /v1/groups/{id}/members", permRead, (*Server).groupMembers)
	s.handle("DELETE /v1/groups/{id}", permWrite, (*Server).dissolveGroup)
	s.handle("DELETE /v1/groups/{id}/members/{user}", permWrite, (*Server).removeGroupMember)
	s.handle("GET /v1/tokens", permRead, (*Server).userTokens)
	s.handle("POST /v1/tokens/revoke", permWrite, (*Server).revokeTokens)
	s.handleLong("POST /v1/backup", permWrite, backupWriteTimeout, (*Server).backup)
}

// handle adds a route. A pattern registered twice is a programming error
// and panics.
func (s *Server) handle(pattern string, need perm, fn handlerFunc) {
	s.handleLong(pattern, need, 0, fn)
}

// handleLong adds a route whose reply may be written up to writeTimeout
// after the request came (0: the server's write timeout).
func (s *Server) handleLong(pattern string, need perm, writeTimeout time.Duration, fn handlerFunc) {
	if _, dup := s.routes[pattern]; dup {
		panic("admin: route registered twice: " + pattern)
	}
	rt := route{pattern: pattern, need: need, fn: fn, writeTimeout: writeTimeout}
	s.routes[pattern] = rt
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if rt.writeTimeout > 0 {
			if err := http.NewResponseController(w).SetWriteDeadline(time.Now().Add(rt.writeTimeout)); err != nil {
				s.log.Warn("admin: cannot extend the write deadline", "path", r.URL.Path, "err", err)
			}
		}
		reply, err := rt.fn(s, r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, reply)
	})
}

// endpointOther is the metric label of requests that match no route.
const endpointOther = "other"

// ServeHTTP checks the caller's permission for the route, serves it, logs
// mutating calls and counts every request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sw := &statusWriter{ResponseWriter: w}
	peer, _ := PeerFrom(r.Context())
	_, pattern := s.mux.Handler(r)
	rt, matched := s.routes[pattern]
	endpoint := pattern
	if !matched {
		endpoint = endpointOther
	}
	var notes []any
	r = r.WithContext(withNotes(r.Context(), &notes))

	switch {
	case peer.perm == permNone:
		s.writeError(sw, r, apiErrorf(http.StatusForbidden, admin.CodeForbidden, "%s", s.deniedMessage(peer)))
	case !matched:
		s.unmatched(sw, r)
	case peer.perm < rt.need:
		s.writeError(sw, r, apiErrorf(http.StatusForbidden, admin.CodeForbidden, "%s", s.deniedMessage(peer)))
	default:
		s.mux.ServeHTTP(sw, r)
	}
	s.metrics.requests.WithLabelValues(endpoint, strconv.Itoa(sw.code())).Inc()

	attrs := append([]any{"method", r.Method, "path", r.URL.Path, "status", sw.code(),
		"uid", peer.UID, "gid", peer.GID, "pid", peer.PID}, notes...)
	switch {
	case sw.code() == http.StatusForbidden:
		s.log.Warn("admin call refused", attrs...)
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		s.log.Info("admin call", attrs...)
	default:
		s.log.Debug("admin call", attrs...)
	}
}

// unmatched answers a request no route matches: 404, or 405 when the
// path exists with other methods (with the Allow header the mux sets).
func (s *Server) unmatched(w http.ResponseWriter, r *http.Request) {
	h, _ := s.mux.Handler(r)
	rec := &statusWriter{ResponseWriter: discardWriter{header: w.Header()}}
	h.ServeHTTP(rec, r)
	w.Header().Del("Content-Type")
	w.Header().Del("X-Content-Type-Options")
	if rec.code() == http.StatusMethodNotAllowed {
		s.writeError(w, r, apiErrorf(http.StatusMethodNotAllowed, admin.CodeMethodNotAllowed, "method %s not allowed on %s", r.Method, r.URL.Path))
		return
	}
	s.writeError(w, r, apiErrorf(http.StatusNotFound, admin.CodeNotFound, "no endpoint %s %s", r.Method, r.URL.Path))
}

// writeError renders err as {"error":{"code","message"}} with its status.
// It is the only place errors become replies: an *admin.APIError as it
// is, the Backend's account errors (admin.ErrUserExists and the others)
// with their codes, anything else as an internal error whose text is
// logged, not sent.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *admin.APIError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &mbe):
		ae = apiErrorf(http.StatusRequestEntityTooLarge, admin.CodeTooLarge, "request body over %d bytes", mbe.Limit)
	case errors.Is(err, admin.ErrUserExists):
		ae = apiErrorf(http.StatusConflict, admin.CodeUserExists, "user exists")
	case errors.Is(err, admin.ErrUnknownUser):
		ae = apiErrorf(http.StatusNotFound, admin.CodeUnknownUser, "unknown user")
	case errors.Is(err, admin.ErrInvalid):
		ae = apiErrorf(http.StatusBadRequest, admin.CodeInvalid, "%s", sentinelMessage(err, admin.ErrInvalid))
	case errors.Is(err, admin.ErrNoGroup):
		ae = apiErrorf(http.StatusNotFound, admin.CodeNoGroup, "no such group")
	case errors.Is(err, admin.ErrNotMember):
		ae = apiErrorf(http.StatusNotFound, admin.CodeNotMember, "not a member of the group")
	case errors.Is(err, admin.ErrNotAllowed):
		ae = apiErrorf(http.StatusConflict, admin.CodeNotAllowed, "%s", sentinelMessage(err, admin.ErrNotAllowed))
	case errors.Is(err, admin.ErrGroupsOff):
		ae = apiErrorf(http.StatusNotImplemented, admin.CodeGroupsOff, "this server keeps no groups: its storage has none")
	case errors.Is(err, admin.ErrTokensOff):
		ae = apiErrorf(http.StatusNotImplemented, admin.CodeTokensOff, "this server keeps no resume tokens: they are turned off (tokens.enabled), or its storage has none")
	case errors.Is(err, admin.ErrBackupExists):
		ae = apiErrorf(http.StatusConflict, admin.CodeBackupExists, "the backup directory exists: name a new one")
	case errors.Is(err, admin.ErrBackupBusy):
		ae = apiErrorf(http.StatusConflict, admin.CodeBackupBusy, "a backup is already running; try again when it is done")
	case errors.Is(err, admin.ErrBackupUnsupported):
		ae = apiErrorf(http.StatusNotImplemented, admin.CodeBackupUnsupported, "backup not supported by this storage plugin")
	case errors.Is(err, admin.ErrBackupFailed):
		ae = apiErrorf(http.StatusInternalServerError, admin.CodeBackupFailed, "backup failed; see qqd's log")
	default:
		s.log.Error("admin call failed", "method", r.Method, "path", r.URL.Path, "err", err)
		ae = apiErrorf(http.StatusInternalServerError, admin.CodeInternal, "internal error; see qqd's log")
	}
	writeJSON(w, ae.Status, map[string]*admin.APIError{"error": ae})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"internal","message":"cannot encode the reply"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// decode reads r's body, at most admin.MaxBodyBytes, into v: one JSON value, no
// unknown fields.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, admin.MaxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		if errors.Is(err, io.EOF) {
			return apiErrorf(http.StatusBadRequest, admin.CodeBadRequest, "request body: want a JSON object")
		}
		return apiErrorf(http.StatusBadRequest, admin.CodeBadRequest, "request body: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return apiErrorf(http.StatusBadRequest, admin.CodeBadRequest, "request body: data after the JSON object")
	}
	return nil
}

func (s *Server) users(r *http.Request) (any, error) {
	reply := admin.UsersReply{Users: []admin.User{}}
	for _, us := range s.b.Sessions() {
		if n := len(reply.Users); n == 0 || reply.Users[n-1].User != us.User {
			reply.Users = append(reply.Users, admin.User{User: us.User})
		}
		u := &reply.Users[len(reply.Users)-1]
		u.Sessions = append(u.Sessions, us.Session)
	}
	return reply, nil
}

func (s *Server) stats(r *http.Request) (any, error) {
	st := s.b.Stats()
	st.UptimeSeconds = int64(time.Since(st.Started) / time.Second)
	return st, nil
}

func (s *Server) plugins(r *http.Request) (any, error) {
	reply := admin.PluginsReply{Plugins: s.b.Plugins()}
	if reply.Plugins == nil {
		reply.Plugins = []admin.Plugin{}
	}
	return reply, nil
}

func (s *Server) kick(r *http.Request) (any, error) {
	var req admin.KickRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if err := checkUser(req.User); err != nil {
		return nil, err
	}
	if err := checkText("reason", req.Reason, 0, admin.MaxReasonBytes); err != nil {
		return nil, err
	}
	note(r, "user", req.User)
	var reply admin.KickReply
	if req.Revoke {
		// Revoke first: a session kicked before its token is gone could
		// resume at once. If the revocation fails, no one is kicked.
		note(r, "revoke", true)
		n, err := s.b.RevokeTokens(r.Context(), req.User, nil)
		if err != nil {
			return nil, err
		}
		note(r, "revoked", n)
		reply.Revoked = n
	}
	reply.Kicked = s.b.Kick(req.User, req.Reason)
	note(r, "sessions", reply.Kicked)
	if reply.Kicked == 0 && !req.Revoke {
		return nil, apiErrorf(http.StatusNotFound, admin.CodeNotOnline, "%s is not online", req.User)
	}
	return reply, nil
}

func (s *Server) broadcast(r *http.Request) (any, error) {
	var req admin.BroadcastRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if err := checkText("text", req.Text, 1, admin.MaxNoticeBytes); err != nil {
		return nil, err
	}
	n := s.b.Broadcast(req.Text)
	note(r, "sessions", n)
	return admin.BroadcastReply{Sessions: n}, nil
}

func (s *Server) reload(r *http.Request) (any, error) {
	// A reload, once started, finishes even if its caller goes away: a
	// swap of plugins cut short helps no one.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), reloadTimeout)
	defer cancel()
	keys, err := s.b.Reload(ctx)
	if err != nil {
		return nil, apiErrorf(http.StatusConflict, admin.CodeReloadRefused, "%s", err.Error())
	}
	if keys == nil {
		keys = []string{}
	}
	note(r, "needs_restart", keys)
	return admin.ReloadReply{NeedsRestart: keys}, nil
}

// checkReload needs write permission: it starts plugin processes.
func (s *Server) checkReload(r *http.Request) (any, error) {
	ctx, cancel := context.WithTimeout(r.Context(), reloadTimeout)
	defer cancel()
	reply, err := s.b.CheckReload(ctx)
	if err != nil {
		return nil, apiErrorf(http.StatusConflict, admin.CodeReloadRefused, "%s", err.Error())
	}
	for _, l := range []*[]string{&reply.NeedsRestart, &reply.FiltersStarted, &reply.FiltersKept, &reply.FiltersStopped} {
		if *l == nil {
			*l = []string{}
		}
	}
	return reply, nil
}

func (s *Server) addAccount(r *http.Request) (any, error) {
	var req admin.AccountRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if err := checkUser(req.User); err != nil {
		return nil, err
	}
	if req.Password == "" {
		return nil, invalidf("password is required")
	}
	note(r, "user", req.User)
	if err := s.b.AddAccount(r.Context(), req.User, req.Password); err != nil {
		return nil, err
	}
	return admin.AccountReply{User: req.User}, nil
}

func (s *Server) removeAccount(r *http.Request) (any, error) {
	user := r.PathValue("user")
	if err := checkUser(user); err != nil {
		return nil, err
	}
	n, err := s.b.RemoveAccount(r.Context(), user)
	if err != nil {
		return nil, err
	}
	note(r, "dropped_pending", n)
	return admin.RemoveAccountReply{User: user, DroppedPending: n}, nil
}

func (s *Server) setPassword(r *http.Request) (any, error) {
	user := r.PathValue("user")
	if err := checkUser(user); err != nil {
		return nil, err
	}
	var req admin.PasswordRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if req.Password == "" {
		return nil, invalidf("password is required")
	}
	if err := s.b.SetPassword(r.Context(), user, req.Password); err != nil {
		return nil, err
	}
	return admin.AccountReply{User: user}, nil
}

func (s *Server) userGroups(r *http.Request) (any, error) {
	q := r.URL.Query()
	if q.Has("user") {
		user := q.Get("user")
		if err := checkUser(user); err != nil {
			return nil, err
		}
		gs, err := s.b.UserGroups(r.Context(), user)
		if err != nil {
			return nil, err
		}
		if gs == nil {
			gs = []admin.Group{}
		}
		return admin.GroupsReply{User: user, Groups: gs}, nil
	}
	return nil, invalidf("user is required (GET /v1/groups?user=NAME lists the groups of a user; " +
		"the storage lists no groups but by member: GET /v1/groups/{id} describes one)")
}

func (s *Server) groupInfo(r *http.Request) (any, error) {
	id, err := groupID(r)
	if err != nil {
		return nil, err
	}
	return s.b.Group(r.Context(), id)
}

func (s *Server) groupMembers(r *http.Request) (any, error) {
	id, err := groupID(r)
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	after, limit := q.Get("after"), admin.DefaultMembersPage
	if after != "" {
		if err := checkUser(after); err != nil {
			return nil, err
		}
	}
	if q.Has("limit") {
		n, err := strconv.Atoi(q.Get("limit"))
		if err != nil || n < 1 || n > admin.MaxMembersPage {
			return nil, invalidf("limit must be 1 to %d", admin.MaxMembersPage)
		}
		limit = n
	}
	ms, more, err := s.b.GroupMembers(r.Context(), id, after, limit)
	if err != nil {
		return nil, err
	}
	if ms == nil {
		ms = []admin.GroupMember{}
	}
	return admin.GroupMembersReply{Group: r.PathValue("id"), Members: ms, More: more}, nil
}

func (s *Server) dissolveGroup(r *http.Request) (any, error) {
	id, err := groupID(r)
	if err != nil {
		return nil, err
	}
	note(r, "group", id)
	reply, err := s.b.DissolveGroup(r.Context(), id)
	if err != nil {
		return nil, err
	}
	note(r, "seq", reply.Seq)
	note(r, "actor", reply.Actor)
	return reply, nil
}

func (s *Server) removeGroupMember(r *http.Request) (any, error) {
	id, err := groupID(r)
	if err != nil {
		return nil, err
	}
	user := r.PathValue("user")
	if err := checkUser(user); err != nil {
		return nil, err
	}
	note(r, "group", id)
	note(r, "user", user)
	reply, err := s.b.RemoveGroupMember(r.Context(), id, user)
	if err != nil {
		return nil, err
	}
	note(r, "seq", reply.Seq)
	note(r, "actor", reply.Actor)
	return reply, nil
}

func (s *Server) userTokens(r *http.Request) (any, error) {
	user := r.URL.Query().Get("user")
	if err := checkUser(user); err != nil {
		return nil, err
	}
	ts, err := s.b.UserTokens(r.Context(), user)
	if err != nil {
		return nil, err
	}
	if ts == nil {
		ts = []admin.Token{}
	}
	return admin.TokensReply{User: user, Tokens: ts}, nil
}

func (s *Server) revokeTokens(r *http.Request) (any, error) {
	var req admin.RevokeRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if err := checkUser(req.User); err != nil {
		return nil, err
	}
	if len(req.IDs) > admin.MaxRevokeIDs {
		return nil, invalidf("over %d ids", admin.MaxRevokeIDs)
	}
	for _, id := range req.IDs {
		if !validTokenID(id) {
			return nil, invalidf("invalid token id %q: want 16 lowercase hex digits", id)
		}
	}
	note(r, "user", req.User)
	if len(req.IDs) == 0 {
		note(r, "ids", "all")
	} else {
		note(r, "ids", req.IDs)
	}
	n, err := s.b.RevokeTokens(r.Context(), req.User, req.IDs)
	if err != nil {
		return nil, err
	}
	note(r, "revoked", n)
	return admin.RevokeReply{User: req.User, Revoked: n}, nil
}

// backup needs write permission: it writes files as qqd's user. It runs
// to its end even if the caller goes away, for at most backupTimeout (the
// Backend has its own deadline too); a second one meanwhile is refused
// (admin.ErrBackupBusy).
func (s *Server) backup(r *http.Request) (any, error) {
	var req admin.BackupRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	switch {
	case req.Dir == "":
		return nil, invalidf("dir is required")
	case len(req.Dir) > 4096 || !utf8.ValidString(req.Dir) || strings.ContainsFunc(req.Dir, func(r rune) bool { return r < ' ' || r == 0x7f }):
		return nil, invalidf("invalid dir %q", req.Dir)
	case !filepath.IsAbs(req.Dir):
		return nil, invalidf("dir %q is not an absolute path: qqd's storage plugin writes it, in its own working directory", req.Dir)
	}
	note(r, "dir", req.Dir)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), backupTimeout)
	defer cancel()
	reply, err := s.b.Backup(ctx, req.Dir)
	if err != nil {
		if !errors.Is(err, admin.ErrInvalid) && !errors.Is(err, admin.ErrBackupExists) &&
			!errors.Is(err, admin.ErrBackupBusy) && !errors.Is(err, admin.ErrBackupUnsupported) {
			err = fmt.Errorf("%w: %w", admin.ErrBackupFailed, err)
		}
		return nil, err
	}
	note(r, "bytes", reply.Bytes)
	note(r, "duration_ms", reply.DurationMS)
	return reply, nil
}

// validTokenID reports whether id has the form of a resume token's id: 16
// lowercase hex digits. It is daemon/token.ValidID again: the admin
// packages may not import the daemon's (style_test.go), and five lines
// are cheaper than a shared package for them.
func validTokenID(id string) bool {
	if len(id) != 16 {
		return false
	}
	for i := range len(id) {
		if c := id[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// groupID reads the path's group id: decimal digits, as the chat protocol
// writes it.
func groupID(r *http.Request) (int64, error) {
	v := r.PathValue("id")
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id <= 0 || strconv.FormatInt(id, 10) != v {
		return 0, invalidf("invalid group id %q: want the digits of a group id", v)
	}
	return id, nil
}

// checkUser refuses what cannot be a user name at all; the Backend judges
// the rest.
func checkUser(u string) error {
	if u == "" {
		return invalidf("user is required")
	}
	if len(u) > 256 || !utf8.ValidString(u) || strings.ContainsFunc(u, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return invalidf("invalid user name %q", u)
	}
	return nil
}

func checkText(name, text string, minLen, maxLen int) error {
	switch {
	case len(text) < minLen:
		return invalidf("%s is required", name)
	case len(text) > maxLen:
		return invalidf("%s is over %d bytes", name, maxLen)
	case !utf8.ValidString(text):
		return invalidf("%s is not UTF-8", name)
	}
	return nil
}

func apiErrorf(status int, code, format string, args ...any) *admin.APIError {
	return &admin.APIError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func invalidf(format string, args ...any) *admin.APIError {
	return apiErrorf(http.StatusBadRequest, admin.CodeInvalid, format, args...)
}

// sentinelMessage is the text of an error that matches sentinel
// (admin.ErrInvalid, admin.ErrNotAllowed) for the operator, without the
// sentinel's own text in front.
func sentinelMessage(err, sentinel error) string {
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, sentinel.Error()+": "); ok && rest != "" {
		return rest
	}
	return msg
}

// notes are log attributes a handler adds to the log line of its call.
type notesKey struct{}

func withNotes(ctx context.Context, notes *[]any) context.Context {
	return context.WithValue(ctx, notesKey{}, notes)
}

func note(r *http.Request, key string, value any) {
	if p, ok := r.Context().Value(notesKey{}).(*[]any); ok {
		*p = append(*p, slog.Any(key, value))
	}
}

// statusWriter remembers the status written.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// discardWriter is a ResponseWriter that keeps headers and drops the rest.
type discardWriter struct{ header http.Header }

func (w discardWriter) Header() http.Header         { return w.header }
func (w discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w discardWriter) WriteHeader(int)             {}
