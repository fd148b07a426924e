package storagedump

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins"
)

// Summary is what `qqd storage inspect` prints: how many records of each
// kind a dump holds, and a few figures about them. It is an Importer that
// only counts, so Load and Copy fill it with every check of an import:
//
//	var sum storagedump.Summary
//	err := storagedump.Load(ctx, storagedump.NewDecoder(f), &sum)
type Summary struct {
	Source  string `json:"source"`  // Header.Source
	Created int64  `json:"created"` // Header.Created, unix ms

	Counts Trailer `json:"counts"` // the Trailer, checked

	DeletedUsers int64 `json:"deleted_users"`
	// Messages with a cid (not yet pruned), with status sent, and the
	// total size of their bodies in bytes.
	MessagesWithCID int64 `json:"messages_with_cid"`
	MessagesSent    int64 `json:"messages_sent"`
	BodyBytes       int64 `json:"body_bytes"`
	// FirstMessage and LastMessage are the timestamps (unix ms) of the
	// first and last messages in acceptance order; 0 with none.
	FirstMessage int64 `json:"first_message"`
	LastMessage  int64 `json:"last_message"`

	DissolvedGroups int64 `json:"dissolved_groups"`
	PastMembers     int64 `json:"past_members"` // GroupMembers with LeftSeq set
	GroupMessages   int64 `json:"group_messages"`
	// LastGroupEntry is the latest timestamp of a group entry (unix ms).
	LastGroupEntry int64 `json:"last_group_entry"`
	// MaxGroupID is the largest group id (dissolved groups included).
	MaxGroupID int64 `json:"max_group_id"`
}

// Import counts what next returns, up to the Trailer.
func (s *Summary) Import(ctx context.Context, next func() (*Record, error)) error {
	for {
		r, err := next()
		if err != nil {
			return err
		}
		s.Add(r)
		if r.Trailer != nil {
			return nil
		}
	}
}

// Add counts r. Import calls it for every record; a tool that passes
// records on to another Importer calls it itself.
func (s *Summary) Add(r *Record) {
	switch {
	case r.Header != nil:
		s.Source, s.Created = r.Header.Source, r.Header.Created
	case r.User != nil:
		if r.User.Deleted != 0 {
			s.DeletedUsers++
		}
	case r.Message != nil:
		m := r.Message
		if s.FirstMessage == 0 {
			s.FirstMessage = m.TS
		}
		s.LastMessage = m.TS
		if m.CID != "" {
			s.MessagesWithCID++
		}
		if m.Status == protocol.StatusSent {
			s.MessagesSent++
		}
		s.BodyBytes += int64(len(m.Body))
	case r.Group != nil:
		if r.Group.Dissolved {
			s.DissolvedGroups++
		}
		s.MaxGroupID = max(s.MaxGroupID, r.Group.ID)
	case r.GroupMember != nil:
		if r.GroupMember.LeftSeq != 0 {
			s.PastMembers++
		}
	case r.GroupEntry != nil:
		if r.GroupEntry.Kind == plugins.EntryMsg {
			s.GroupMessages++
		}
		s.LastGroupEntry = max(s.LastGroupEntry, r.GroupEntry.TS)
	case r.Trailer != nil:
		s.Counts = *r.Trailer
	}
}

// Inspect reads everything src keeps, checked as an import would be, and
// returns its Summary.
func Inspect(ctx context.Context, src Exporter) (*Summary, error) {
	var s Summary
	if err := Copy(ctx, src, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// InspectDump reads the dump dec reads, checked as Load checks it, and
// returns its Summary.
func InspectDump(ctx context.Context, dec *Decoder) (*Summary, error) {
	var s Summary
	if err := Load(ctx, dec, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// WriteText writes s for people, one figure a line.
func (s *Summary) WriteText(w io.Writer) error {
	c := &s.Counts
	lines := []struct {
		name string
		v    any
	}{
		{"source", s.Source},
		{"created", msTime(s.Created)},
		{"users", fmt.Sprintf("%d (%d live, %d deleted)", c.Users, c.Users-s.DeletedUsers, s.DeletedUsers)},
		{"messages", fmt.Sprintf("%d (%d with a cid, %d sent, %d body bytes)", c.Messages, s.MessagesWithCID, s.MessagesSent, s.BodyBytes)},
		{"pending", c.Pending},
		{"first message", msTime(s.FirstMessage)},
		{"last message", msTime(s.LastMessage)},
		{"friends", fmt.Sprintf("%d (one per side)", c.Friends)},
		{"friend requests", c.FriendRequests},
		{"blocks", c.Blocks},
		{"groups", fmt.Sprintf("%d (%d dissolved, largest id %d)", c.Groups, s.DissolvedGroups, s.MaxGroupID)},
		{"group members", fmt.Sprintf("%d (%d past)", c.GroupMembers, s.PastMembers)},
		{"group entries", fmt.Sprintf("%d (%d messages)", c.GroupEntries, s.GroupMessages)},
		{"last group entry", msTime(s.LastGroupEntry)},
		{"join requests", c.JoinRequests},
		{"group cursors", c.GroupCursors},
		{"tokens", c.Tokens},
	}
	for _, l := range lines {
		if _, err := fmt.Fprintf(w, "%-17s %v\n", l.name+":", l.v); err != nil {
			return err
		}
	}
	return nil
}

// msTime formats unix ms as UTC RFC 3339, "-" for 0.
func msTime(ms int64) string {
	if ms == 0 {
		return "-"
	}
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z")
}
