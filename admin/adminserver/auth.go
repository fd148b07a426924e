package adminserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// perm is what a caller may do.
type perm int

const (
	permNone  perm = iota
	permRead       // the read endpoints
	permWrite      // everything
)

func (p perm) String() string {
	return [...]string{"none", "read", "write"}[p]
}

// Peer is the process at the other end of an admin connection, as the
// kernel reported it when it connected (SO_PEERCRED).
type Peer struct {
	UID, GID uint32
	PID      int32
	perm     perm
}

type peerKey struct{}

// PeerFrom returns the caller of a request served by the admin Server.
func PeerFrom(ctx context.Context) (Peer, bool) {
	p, ok := ctx.Value(peerKey{}).(Peer)
	return p, ok
}

// connContext identifies the peer of each new connection once, for all
// of its requests.
func (s *Server) connContext(ctx context.Context, c net.Conn) context.Context {
	p, err := peerCred(c)
	if err != nil {
		s.log.Warn("admin connection without credentials; refusing its requests", "err", err)
		return context.WithValue(ctx, peerKey{}, Peer{perm: permNone})
	}
	p.perm = s.permission(p)
	return context.WithValue(ctx, peerKey{}, p)
}

// peerCred reads the credentials of the process that connected c.
func peerCred(c net.Conn) (Peer, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return Peer{}, fmt.Errorf("not a unix connection: %T", c)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return Peer{}, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return Peer{}, err
	}
	if cerr != nil {
		return Peer{}, fmt.Errorf("SO_PEERCRED: %w", cerr)
	}
	return Peer{UID: cred.Uid, GID: cred.Gid, PID: cred.Pid}, nil
}

// permission decides what p may do: everything for root, qqd's own user
// and members of Group; reads for members of ReadOnlyGroup; nothing for
// the rest. Group membership counts the peer's gid and its supplementary
// groups.
func (s *Server) permission(p Peer) perm {
	if p.UID == 0 || p.UID == s.uid {
		return permWrite
	}
	if s.gid < 0 && s.roGid < 0 {
		return permNone
	}
	groups := []int{int(p.GID)}
	if int(p.GID) != s.gid {
		groups = append(groups, peerGroups(p)...)
	}
	switch {
	case s.gid >= 0 && slices.Contains(groups, s.gid):
		return permWrite
	case s.roGid >= 0 && slices.Contains(groups, s.roGid):
		return permRead
	}
	return permNone
}

// peerGroups returns p's supplementary groups: those of its process, read
// from /proc (the groups the kernel checked when it connected), or, if
// the process cannot be seen (it exited, or lives in another pid
// namespace), those the user database gives its uid.
func peerGroups(p Peer) []int {
	if p.PID > 0 {
		if f, err := os.Open("/proc/" + strconv.Itoa(int(p.PID)) + "/status"); err == nil {
			defer f.Close()
			if gs, err := parseStatusGroups(f); err == nil {
				return gs
			}
		}
	}
	u, err := user.LookupId(strconv.Itoa(int(p.UID)))
	if err != nil {
		return nil
	}
	ids, err := u.GroupIds()
	if err != nil {
		return nil
	}
	var gs []int
	for _, id := range ids {
		if n, err := strconv.Atoi(id); err == nil {
			gs = append(gs, n)
		}
	}
	return gs
}

// parseStatusGroups reads the "Groups:" line of a /proc/<pid>/status file.
func parseStatusGroups(f io.Reader) ([]int, error) {
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "Groups:")
		if !ok {
			continue
		}
		var gs []int
		for _, field := range strings.Fields(rest) {
			n, err := strconv.Atoi(field)
			if err != nil {
				return nil, fmt.Errorf("groups %q: %w", rest, err)
			}
			gs = append(gs, n)
		}
		return gs, nil
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return nil, errors.New("no Groups line")
}

// deniedMessage says who may call, for a refused caller.
func (s *Server) deniedMessage(p Peer) string {
	who := "root or the qqd user"
	if s.group != "" {
		who = "root, the qqd user or in group " + s.group
	}
	if p.perm == permRead {
		return "permission denied: your group may use read-only calls only; to change anything you must be " + who
	}
	return "permission denied: you must be " + who
}
