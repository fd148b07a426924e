package adminserver

import (
	"net/http"
	"slices"
	"strings"
	"testing"
)

func TestDuplicateRoutePanics(t *testing.T) {
	s := &Server{mux: http.NewServeMux(), routes: map[string]route{}}
	s.register()
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "GET /v1/users") {
			t.Errorf("recover() = %v, want a panic naming the route", r)
		}
	}()
	s.handle("GET /v1/users", permRead, (*Server).users)
}

func TestRouteTable(t *testing.T) {
	s := &Server{mux: http.NewServeMux(), routes: map[string]route{}}
	s.register()
	for pattern, rt := range s.routes {
		write := !strings.HasPrefix(pattern, "GET ")
		if want := map[bool]perm{false: permRead, true: permWrite}[write]; rt.need != want {
			t.Errorf("route %s needs %v, want %v", pattern, rt.need, want)
		}
		if !strings.Contains(pattern, " /v1/") {
			t.Errorf("route %s is not under /v1/", pattern)
		}
	}
	if len(s.routes) != 18 {
		t.Errorf("%d routes, want 18", len(s.routes))
	}
}

func TestParseStatusGroups(t *testing.T) {
	status := "Name:\tbash\nUid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\nFDSize:\t256\nGroups:\t4 24 27 1000 \nNStgid:\t1\n"
	gs, err := parseStatusGroups(strings.NewReader(status))
	if err != nil || !slices.Equal(gs, []int{4, 24, 27, 1000}) {
		t.Errorf("parseStatusGroups = %v, %v; want [4 24 27 1000]", gs, err)
	}
	gs, err = parseStatusGroups(strings.NewReader("Name:\tx\nGroups:\t\n"))
	if err != nil || len(gs) != 0 {
		t.Errorf("parseStatusGroups(empty) = %v, %v", gs, err)
	}
	if _, err := parseStatusGroups(strings.NewReader("Name:\tx\n")); err == nil {
		t.Error("parseStatusGroups without a Groups line: no error")
	}
}

// TestPermission checks the rules without processes: pid 0 makes the
// group lookup fall back to the user database (uid 65534 "nobody" is in
// no supplementary group on a stock system).
func TestPermission(t *testing.T) {
	s := &Server{uid: 1234, gid: 50, roGid: 100}
	none := &Server{uid: 1234, gid: -1, roGid: -1}
	tests := []struct {
		s    *Server
		p    Peer
		want perm
	}{
		{s, Peer{UID: 0, GID: 0}, permWrite},
		{s, Peer{UID: 1234, GID: 1234}, permWrite},
		{none, Peer{UID: 1234, GID: 9}, permWrite},
		{s, Peer{UID: 65534, GID: 50}, permWrite},
		{s, Peer{UID: 65534, GID: 100}, permRead},
		{s, Peer{UID: 65534, GID: 65534}, permNone},
		{none, Peer{UID: 65534, GID: 50}, permNone},
	}
	for _, tt := range tests {
		if got := tt.s.permission(tt.p); got != tt.want {
			t.Errorf("permission(%+v) with group %d, read-only %d = %v, want %v", tt.p, tt.s.gid, tt.s.roGid, got, tt.want)
		}
	}
}
