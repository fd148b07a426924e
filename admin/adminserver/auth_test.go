package adminserver_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/qqchat/qq/admin/adminserver"
	"github.com/qqchat/qq/admin/internal/admintest"
)

const nobody = 65534

// Groups of a stock Debian /etc/group used by the tests.
const (
	gidStaff   = 50  // "staff": the full-access group below
	gidUsers   = 100 // "users": the read-only group below
	gidNogroup = 65534
)

// TestPermissionMatrix runs clients as other users, in child processes,
// against a server run by root.
func TestPermissionMatrix(t *testing.T) {
	b := richBackend()
	s, _ := start(t, adminserver.Options{Group: "staff", ReadOnlyGroup: "users"}, b)
	const denied = `{"error":{"code":"forbidden","message":"permission denied: you must be root, the qqd user or in group staff"}}`
	const readOnly = `{"error":{"code":"forbidden","message":"permission denied: your group may use read-only calls only; to change anything you must be root, the qqd user or in group staff"}}`
	tests := []struct {
		name       string
		gids       []uint32
		read       int // status of GET /v1/users
		write      int // status of POST /v1/broadcast
		writeReply string
	}{
		{"stranger", []uint32{gidNogroup}, 403, 403, denied},
		{"full group as primary", []uint32{gidStaff}, 200, 200, `{"sessions":3}`},
		{"full group as supplementary", []uint32{gidNogroup, gidStaff}, 200, 200, `{"sessions":3}`},
		{"read-only group as primary", []uint32{gidUsers}, 200, 403, readOnly},
		{"read-only group as supplementary", []uint32{gidNogroup, gidUsers}, 200, 403, readOnly},
		{"both groups", []uint32{gidUsers, gidStaff}, 200, 200, `{"sessions":3}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := asUser(t, nobody, tt.gids, childRequest{Socket: s.Path(), Method: "GET", Path: "/v1/users"})
			if r.DialErr != "" || r.Status != tt.read {
				t.Errorf("GET /v1/users as gids %v = %d %s %s, want %d", tt.gids, r.Status, r.DialErr, r.Body, tt.read)
			}
			if tt.read == 403 && !jsonEqual(t, r.Body, denied) {
				t.Errorf("GET /v1/users reply = %s, want %s", r.Body, denied)
			}
			w := asUser(t, nobody, tt.gids, childRequest{Socket: s.Path(), Method: "POST", Path: "/v1/broadcast", Body: `{"text":"hi"}`})
			if w.DialErr != "" || w.Status != tt.write || !jsonEqual(t, w.Body, tt.writeReply) {
				t.Errorf("POST /v1/broadcast as gids %v = %d %s %s, want %d %s", tt.gids, w.Status, w.DialErr, w.Body, tt.write, tt.writeReply)
			}
		})
	}
	// Only the full-access callers' broadcasts reached the daemon.
	n := 0
	for _, c := range b.Calls() {
		if c == "Broadcast hi" {
			n++
		}
	}
	if n != 3 {
		t.Errorf("%d broadcasts reached the backend, want 3: %q", n, b.Calls())
	}
}

// TestGroupPermissions: the read-only group may list groups and members,
// and only the full-access group may dissolve a group or remove a member.
func TestGroupPermissions(t *testing.T) {
	b := richBackend()
	s, _ := start(t, adminserver.Options{Group: "staff", ReadOnlyGroup: "users"}, b)
	tests := []struct {
		gids         []uint32
		method, path string
		status       int
	}{
		{[]uint32{gidUsers}, "GET", "/v1/groups?user=alice", 200},
		{[]uint32{gidUsers}, "GET", "/v1/groups/12", 200},
		{[]uint32{gidUsers}, "GET", "/v1/groups/12/members", 200},
		{[]uint32{gidUsers}, "DELETE", "/v1/groups/12/members/bob", 403},
		{[]uint32{gidUsers}, "DELETE", "/v1/groups/12", 403},
		{[]uint32{gidNogroup}, "GET", "/v1/groups/12", 403},
		{[]uint32{gidStaff}, "DELETE", "/v1/groups/12/members/bob", 200},
		{[]uint32{gidStaff}, "DELETE", "/v1/groups/12", 200},
	}
	for _, tt := range tests {
		r := asUser(t, nobody, tt.gids, childRequest{Socket: s.Path(), Method: tt.method, Path: tt.path})
		if r.DialErr != "" || r.Status != tt.status {
			t.Errorf("%s %s as gids %v = %d %s %s, want %d", tt.method, tt.path, tt.gids, r.Status, r.DialErr, r.Body, tt.status)
		}
	}
	var changes []string
	for _, c := range b.Calls() {
		if strings.HasPrefix(c, "RemoveGroupMember") || strings.HasPrefix(c, "DissolveGroup") {
			changes = append(changes, c)
		}
	}
	if !slices.Equal(changes, []string{"RemoveGroupMember 12 bob", "DissolveGroup 12"}) {
		t.Errorf("changes that reached the backend: %q, want the full-access group's only", changes)
	}
}

// TestUnauthorisedCaller: with no groups configured, the socket is 0660
// and the kernel refuses a stranger's connect; made 0666 (as with a
// read-only group), the stranger connects and gets 403 from the
// credential check.
func TestUnauthorisedCaller(t *testing.T) {
	s, _ := start(t, adminserver.Options{}, fakeBackend())
	r := asUser(t, nobody, []uint32{gidNogroup}, childRequest{Socket: s.Path(), Method: "GET", Path: "/v1/users"})
	if r.DialErr != "EACCES" {
		t.Errorf("connect as nobody to a 0660 socket: %+v, want EACCES", r)
	}

	s2, _ := start(t, adminserver.Options{Path: filepath.Join(admintest.OpenTempDir(t), "open.sock"), ReadOnlyGroup: "users"}, fakeBackend())
	r = asUser(t, nobody, []uint32{gidNogroup}, childRequest{Socket: s2.Path(), Method: "GET", Path: "/v1/users"})
	want := `{"error":{"code":"forbidden","message":"permission denied: you must be root or the qqd user"}}`
	if r.Status != 403 || !jsonEqual(t, r.Body, want) {
		t.Errorf("GET /v1/users as nobody = %d %s %s, want 403 %s", r.Status, r.DialErr, r.Body, want)
	}
	r = asUser(t, nobody, []uint32{gidNogroup}, childRequest{Socket: s2.Path(), Method: "GET", Path: "/v1/nope"})
	if r.Status != 403 {
		t.Errorf("GET /v1/nope as nobody = %d, want 403 before routing", r.Status)
	}
}
