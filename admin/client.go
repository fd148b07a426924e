package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client calls the admin API of a running qqd. It is safe for concurrent
// use; Close releases its idle connection.
type Client struct {
	path string
	tr   *http.Transport
	hc   *http.Client
}

// dialTimeout bounds connecting to the socket.
const dialTimeout = 5 * time.Second

// Dial returns a Client for the admin socket at path, after checking
// that it can connect. Its error wraps the system's: it matches
// fs.ErrNotExist when there is no socket at path, syscall.ECONNREFUSED
// when nothing listens on it, and fs.ErrPermission when the caller may
// not connect to it.
func Dial(path string) (*Client, error) {
	c, err := net.DialTimeout("unix", path, dialTimeout)
	if err != nil {
		return nil, err
	}
	c.Close()
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			d := net.Dialer{Timeout: dialTimeout}
			return d.DialContext(ctx, "unix", path)
		},
		MaxIdleConns:       1,
		IdleConnTimeout:    30 * time.Second,
		DisableCompression: true,
	}
	return &Client{path: path, tr: tr, hc: &http.Client{Transport: tr}}, nil
}

// Path returns the socket's path.
func (c *Client) Path() string { return c.path }

// Close closes the Client's idle connections.
func (c *Client) Close() error {
	c.tr.CloseIdleConnections()
	return nil
}

// Users returns the online users and their sessions.
func (c *Client) Users(ctx context.Context) ([]User, error) {
	var reply UsersReply
	err := c.do(ctx, http.MethodGet, "/v1/users", nil, &reply)
	return reply.Users, err
}

// Stats returns the server's counters.
func (c *Client) Stats(ctx context.Context) (*Stats, error) {
	var reply Stats
	if err := c.do(ctx, http.MethodGet, "/v1/stats", nil, &reply); err != nil {
		return nil, err
	}
	return &reply, nil
}

// Plugins returns the plugin processes' status.
func (c *Client) Plugins(ctx context.Context) ([]Plugin, error) {
	var reply PluginsReply
	err := c.do(ctx, http.MethodGet, "/v1/plugins", nil, &reply)
	return reply.Plugins, err
}

// Kick disconnects every session of user and returns how many there
// were. A user who is not online is an *APIError with CodeNotOnline.
func (c *Client) Kick(ctx context.Context, user, reason string) (int, error) {
	var reply KickReply
	err := c.do(ctx, http.MethodPost, "/v1/kick", KickRequest{User: user, Reason: reason}, &reply)
	return reply.Kicked, err
}

// KickRevoke revokes every resume token of user, then disconnects every
// session of user, and returns how many sessions and tokens there were. A
// user who is not online is no error (kicked is 0). If the revocation
// fails no one is kicked; errors match ErrTokensOff and ErrInvalid.
func (c *Client) KickRevoke(ctx context.Context, user, reason string) (kicked int, revoked int64, err error) {
	var reply KickReply
	err = c.do(ctx, http.MethodPost, "/v1/kick", KickRequest{User: user, Reason: reason, Revoke: true}, &reply)
	return reply.Kicked, reply.Revoked, err
}

// Tokens returns user's resume tokens, most recently used first (an
// unknown user has none). Errors match ErrTokensOff and ErrInvalid.
func (c *Client) Tokens(ctx context.Context, user string) ([]Token, error) {
	var reply TokensReply
	err := c.do(ctx, http.MethodGet, "/v1/tokens?"+url.Values{"user": {user}}.Encode(), nil, &reply)
	return reply.Tokens, err
}

// RevokeTokens revokes user's resume tokens with the ids given, or every
// one of them when none is given, and returns how many it revoked; ids
// that are not user's tokens are ignored. Sessions that logged in with
// them stay logged in (KickRevoke ends them too). Errors match
// ErrTokensOff and ErrInvalid (an id that is not 16 lowercase hex digits).
func (c *Client) RevokeTokens(ctx context.Context, user string, ids ...string) (int64, error) {
	var reply RevokeReply
	err := c.do(ctx, http.MethodPost, "/v1/tokens/revoke", RevokeRequest{User: user, IDs: ids}, &reply)
	return reply.Revoked, err
}

// Broadcast sends a notice to every logged-in session and returns how
// many it reached.
func (c *Client) Broadcast(ctx context.Context, text string) (int, error) {
	var reply BroadcastReply
	err := c.do(ctx, http.MethodPost, "/v1/broadcast", BroadcastRequest{Text: text}, &reply)
	return reply.Sessions, err
}

// Reload reloads qqd's configuration and returns the changed settings
// that apply only after a restart. A refusal is an *APIError with
// CodeReloadRefused whose message says why.
func (c *Client) Reload(ctx context.Context) (needsRestart []string, err error) {
	var reply ReloadReply
	err = c.do(ctx, http.MethodPost, "/v1/reload", struct{}{}, &reply)
	return reply.NeedsRestart, err
}

// CheckReload says what Reload would do now without changing anything in
// service (see ReloadCheckReply); it starts and stops the plugins a reload
// would start. A configuration a reload would refuse is an *APIError with
// CodeReloadRefused whose message says why.
func (c *Client) CheckReload(ctx context.Context) (*ReloadCheckReply, error) {
	var reply ReloadCheckReply
	if err := c.do(ctx, http.MethodPost, "/v1/reload/check", struct{}{}, &reply); err != nil {
		return nil, err
	}
	return &reply, nil
}

// Backup has qqd's storage plugin write a consistent copy of the store
// into dir, an absolute path on qqd's machine that must not exist, while
// qqd keeps serving. It waits for the copy (qqd gives it at most 10
// minutes), so ctx should allow that long. Errors match ErrInvalid (dir
// not absolute), ErrBackupExists, ErrBackupBusy, ErrBackupUnsupported and
// ErrBackupFailed.
func (c *Client) Backup(ctx context.Context, dir string) (*BackupReply, error) {
	var reply BackupReply
	if err := c.do(ctx, http.MethodPost, "/v1/backup", BackupRequest{Dir: dir}, &reply); err != nil {
		return nil, err
	}
	return &reply, nil
}

// AddAccount creates an account. Errors match ErrUserExists and
// ErrInvalid.
func (c *Client) AddAccount(ctx context.Context, user, password string) error {
	return c.do(ctx, http.MethodPost, "/v1/accounts", AccountRequest{User: user, Password: password}, nil)
}

// RemoveAccount deletes an account and returns how many of its pending
// messages were dropped. Errors match ErrUnknownUser and ErrInvalid.
func (c *Client) RemoveAccount(ctx context.Context, user string) (int64, error) {
	p, err := accountPath(user)
	if err != nil {
		return 0, err
	}
	var reply RemoveAccountReply
	err = c.do(ctx, http.MethodDelete, p, nil, &reply)
	return reply.DroppedPending, err
}

// SetPassword replaces an account's password. Errors match ErrUnknownUser
// and ErrInvalid.
func (c *Client) SetPassword(ctx context.Context, user, password string) error {
	p, err := accountPath(user)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodPut, p+"/password", PasswordRequest{Password: password}, nil)
}

// UserGroups returns the live groups user belongs to, with user's role
// in each. Errors match ErrGroupsOff and ErrInvalid.
func (c *Client) UserGroups(ctx context.Context, user string) ([]Group, error) {
	var reply GroupsReply
	err := c.do(ctx, http.MethodGet, "/v1/groups?"+url.Values{"user": {user}}.Encode(), nil, &reply)
	return reply.Groups, err
}

// Group describes the group with id group (decimal digits), a dissolved
// one too. Errors match ErrNoGroup, ErrGroupsOff and ErrInvalid.
func (c *Client) Group(ctx context.Context, group string) (*Group, error) {
	p, err := groupPath(group)
	if err != nil {
		return nil, err
	}
	var reply Group
	if err := c.do(ctx, http.MethodGet, p, nil, &reply); err != nil {
		return nil, err
	}
	return &reply, nil
}

// GroupMembers returns a page of group's members by name, those after
// after ("" for the first page), and whether more follow. limit <= 0
// means DefaultMembersPage. Errors match ErrNoGroup, ErrGroupsOff and
// ErrInvalid.
func (c *Client) GroupMembers(ctx context.Context, group, after string, limit int) ([]GroupMember, bool, error) {
	p, err := groupPath(group)
	if err != nil {
		return nil, false, err
	}
	q := url.Values{}
	if after != "" {
		q.Set("after", after)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	p += "/members"
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	var reply GroupMembersReply
	err = c.do(ctx, http.MethodGet, p, nil, &reply)
	return reply.Members, reply.More, err
}

// DissolveGroup dissolves group, in the name of its owner (see
// GroupChangeReply). Errors match ErrNoGroup, ErrGroupsOff and
// ErrInvalid.
func (c *Client) DissolveGroup(ctx context.Context, group string) (*GroupChangeReply, error) {
	p, err := groupPath(group)
	if err != nil {
		return nil, err
	}
	var reply GroupChangeReply
	if err := c.do(ctx, http.MethodDelete, p, nil, &reply); err != nil {
		return nil, err
	}
	return &reply, nil
}

// RemoveGroupMember removes user from group, in the name of its owner
// (see GroupChangeReply). Errors match ErrNoGroup, ErrNotMember,
// ErrUnknownUser, ErrNotAllowed (user owns the group), ErrGroupsOff and
// ErrInvalid.
func (c *Client) RemoveGroupMember(ctx context.Context, group, user string) (*GroupChangeReply, error) {
	p, err := groupPath(group)
	if err != nil {
		return nil, err
	}
	u, err := userSegment(user)
	if err != nil {
		return nil, err
	}
	var reply GroupChangeReply
	if err := c.do(ctx, http.MethodDelete, p+"/members/"+u, nil, &reply); err != nil {
		return nil, err
	}
	return &reply, nil
}

// groupPath is the path of group, which must be a group id's digits.
func groupPath(group string) (string, error) {
	ok := group != "" && len(group) <= 19
	for i := 0; ok && i < len(group); i++ {
		ok = group[i] >= '0' && group[i] <= '9'
	}
	if !ok {
		return "", &APIError{Status: http.StatusBadRequest, Code: CodeInvalid, Message: fmt.Sprintf("invalid group id %q: want its digits", group)}
	}
	return "/v1/groups/" + group, nil
}

func accountPath(user string) (string, error) {
	u, err := userSegment(user)
	if err != nil {
		return "", err
	}
	return "/v1/accounts/" + u, nil
}

// userSegment is user as a segment of a path.
func userSegment(user string) (string, error) {
	if user == "" || user == "." || user == ".." || strings.Contains(user, "/") {
		return "", &APIError{Status: http.StatusBadRequest, Code: CodeInvalid, Message: fmt.Sprintf("invalid user name %q", user)}
	}
	return url.PathEscape(user), nil
}

// do sends one request and decodes its reply into out (if not nil). A
// reply with an error status is returned as an *APIError.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://qqd"+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("reading the reply: %w", err)
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error *APIError `json:"error"`
		}
		if json.Unmarshal(data, &e) != nil || e.Error == nil {
			return &APIError{Status: resp.StatusCode, Code: fmt.Sprintf("http_%d", resp.StatusCode),
				Message: fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(data)))}
		}
		e.Error.Status = resp.StatusCode
		return e.Error
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decoding the reply to %s %s: %w", method, path, err)
	}
	return nil
}
