package storagedump

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// Load checks the dump dec reads and imports it into imp: the Header's
// format, the order of the package comment, each group's counts, and the
// Trailer's counts against the records before it, with nothing after the
// Trailer. imp sees the Trailer (and so commits) only if every check
// passed; a truncated or reordered dump fails Import with an error naming
// the line. The lines are read and decoded in a goroutine of their own,
// while imp stores the ones before.
func Load(ctx context.Context, dec *Decoder, imp Importer) error {
	return copyRecords(ctx, decoding{dec}, imp, true)
}

// decoding is an Exporter of what a Decoder reads.
type decoding struct{ dec *Decoder }

func (d decoding) Export(ctx context.Context, emit func(*Record) error) error {
	for {
		r, err := d.dec.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := emit(r); err != nil {
			return err
		}
	}
}

// copyBatch is how many records Copy hands from the exporter to the
// importer at once.
const copyBatch = 512

// Copy streams src into dst, checking the records as Load does. The
// export runs in its own goroutine; dst sees the Trailer only after
// src.Export returned without error, so a failed or short export is a
// failed import. emit keeps the records it is given (see Exporter).
func Copy(ctx context.Context, src Exporter, dst Importer) error {
	return copyRecords(ctx, src, dst, false)
}

// copyRecords is Copy, and Load when lines is set (src is a decoding:
// its errors name their lines, and so do the checks, a record being a
// line).
func copyRecords(ctx context.Context, src Exporter, dst Importer, lines bool) error {
	unit := "record"
	if lines {
		unit = "line"
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan []*Record, 4)
	exported := make(chan error, 1)
	go func() {
		batch := make([]*Record, 0, copyBatch)
		send := func() error {
			select {
			case batches <- batch:
				batch = make([]*Record, 0, copyBatch)
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		err := src.Export(ctx, func(r *Record) error {
			batch = append(batch, r)
			if len(batch) == copyBatch {
				return send()
			}
			return nil
		})
		if err == nil && len(batch) > 0 {
			err = send()
		}
		close(batches)
		exported <- err
	}()
	var exportErr error
	exportDone := false
	waitExport := func() error {
		if !exportDone {
			exportDone = true
			exportErr = <-exported
			if exportErr != nil && !lines {
				exportErr = fmt.Errorf("storagedump: export: %w", exportErr)
			}
		}
		return exportErr
	}
	var (
		ck  checker
		buf []*Record
		n   int64
	)
	recv := func() ([]*Record, bool, error) {
		select {
		case b, ok := <-batches:
			return b, ok, nil
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
	next := func() (*Record, error) {
		for len(buf) == 0 {
			b, ok, err := recv()
			if err != nil {
				return nil, err
			}
			if !ok {
				if err := waitExport(); err != nil {
					return nil, err
				}
				return nil, fmt.Errorf("storagedump: truncated: no trailer after %s %d", unit, n)
			}
			buf = b
		}
		r := buf[0]
		buf[0] = nil
		buf = buf[1:]
		n++
		if err := ck.add(r); err != nil {
			return nil, fmt.Errorf("storagedump: %s %d: %w", unit, n, err)
		}
		if r.Trailer != nil {
			if len(buf) > 0 {
				return nil, fmt.Errorf("storagedump: %s %d: a %s after the trailer", unit, n+1, buf[0].Kind())
			}
			b, ok, err := recv()
			if err != nil {
				return nil, err
			}
			if ok && len(b) > 0 {
				return nil, fmt.Errorf("storagedump: %s %d: a %s after the trailer", unit, n+1, b[0].Kind())
			}
			if err := waitExport(); err != nil {
				return nil, err
			}
		}
		return r, nil
	}
	err := dst.Import(ctx, next)
	cancel()
	if !exportDone {
		// Unblock and wait for the exporter: drain what it sends until it
		// sees the cancellation.
		go func() {
			for range batches {
			}
		}()
		_ = waitExport() // the import's error says what went wrong first
	}
	if err != nil {
		return err
	}
	if !ck.done {
		return errors.New("storagedump: the importer returned before the trailer")
	}
	return nil
}

// Sections of a dump, in order.
const (
	secHeader = iota
	secUsers
	secMessages
	secSocial
	secGroups
	secTokens
	secTrailer
)

// Parts of a group's records, in order.
const (
	partGroup = iota
	partMembers
	partEntries
	partJoinRequests
	partCursors
)

// checker checks the order of records and counts them.
type checker struct {
	section  int
	started  bool // the Header was seen
	done     bool // the Trailer was seen, and matched
	counts   Trailer
	lastUser string

	// The group whose records are being read.
	inGroup         bool
	group           Group
	part            int
	members         int64 // current ones (LeftSeq 0)
	lastSeq, lastTS int64
}

// add checks r against what came before it.
func (c *checker) add(r *Record) error {
	if n := r.kinds(); n != 1 {
		return fmt.Errorf("%d kinds set in one record, want exactly one", n)
	}
	if c.done {
		return fmt.Errorf("a %s after the trailer", r.Kind())
	}
	if !c.started {
		if r.Header == nil {
			return fmt.Errorf("a %s first, want the header", r.Kind())
		}
		if r.Header.Format != Format {
			return fmt.Errorf("format %q, want %q", r.Header.Format, Format)
		}
		c.started = true
		return nil
	}
	switch {
	case r.Header != nil:
		return errors.New("a second header")
	case r.User != nil:
		if err := c.enter(secUsers, "user"); err != nil {
			return err
		}
		if c.counts.Users > 0 && r.User.Name <= c.lastUser {
			return fmt.Errorf("user %q after %q: users must be sorted by name, each once", r.User.Name, c.lastUser)
		}
		c.lastUser = r.User.Name
		c.counts.Users++
	case r.Message != nil:
		if err := c.enter(secMessages, "msg"); err != nil {
			return err
		}
		c.counts.Messages++
		if r.Message.Pending {
			c.counts.Pending++
		}
	case r.Friend != nil, r.FriendRequest != nil, r.Block != nil:
		if err := c.enter(secSocial, r.Kind()); err != nil {
			return err
		}
		switch {
		case r.Friend != nil:
			c.counts.Friends++
		case r.FriendRequest != nil:
			c.counts.FriendRequests++
		default:
			c.counts.Blocks++
		}
	case r.Group != nil:
		if err := c.enter(secGroups, "group"); err != nil {
			return err
		}
		if err := c.endGroup(); err != nil {
			return err
		}
		if r.Group.ID <= 0 || (c.counts.Groups > 0 && r.Group.ID <= c.group.ID) {
			return fmt.Errorf("group %d after group %d: groups must be sorted by id, each once", r.Group.ID, c.group.ID)
		}
		c.inGroup, c.group, c.part = true, *r.Group, partGroup
		c.members, c.lastSeq, c.lastTS = 0, 0, 0
		c.counts.Groups++
	case r.GroupMember != nil:
		if err := c.inPart(partMembers, r.GroupMember.Group, "group_member"); err != nil {
			return err
		}
		if r.GroupMember.LeftSeq == 0 {
			c.members++
		}
		c.counts.GroupMembers++
	case r.GroupEntry != nil:
		if err := c.inPart(partEntries, r.GroupEntry.Group, "group_entry"); err != nil {
			return err
		}
		e := r.GroupEntry
		if e.Seq != c.lastSeq+1 {
			return fmt.Errorf("group %d: entry %d after entry %d: entries must be in seq order, from 1, without gaps", e.Group, e.Seq, c.lastSeq)
		}
		if e.TS < c.lastTS {
			return fmt.Errorf("group %d: entry %d at %d, before entry %d at %d", e.Group, e.Seq, e.TS, c.lastSeq, c.lastTS)
		}
		c.lastSeq, c.lastTS = e.Seq, e.TS
		c.counts.GroupEntries++
	case r.JoinRequest != nil:
		if err := c.inPart(partJoinRequests, r.JoinRequest.Group, "join_request"); err != nil {
			return err
		}
		c.counts.JoinRequests++
	case r.GroupCursor != nil:
		if err := c.inPart(partCursors, r.GroupCursor.Group, "group_cursor"); err != nil {
			return err
		}
		if rs := r.GroupCursor.ReadSeq; rs < 0 || rs > c.group.LastSeq {
			return fmt.Errorf("group %d: cursor of %q at %d, outside the log (1 to %d)", c.group.ID, r.GroupCursor.User, rs, c.group.LastSeq)
		}
		c.counts.GroupCursors++
	case r.Token != nil:
		if err := c.enter(secTokens, "token"); err != nil {
			return err
		}
		if err := c.endGroup(); err != nil {
			return err
		}
		c.counts.Tokens++
	case r.Trailer != nil:
		if err := c.enter(secTrailer, "trailer"); err != nil {
			return err
		}
		if err := c.endGroup(); err != nil {
			return err
		}
		if *r.Trailer != c.counts {
			return fmt.Errorf("the trailer's counts %+v differ from the records' %+v: the dump is damaged", *r.Trailer, c.counts)
		}
		c.done = true
	}
	return nil
}

// sectionName names section sec in errors.
func sectionName(sec int) string {
	return [...]string{"header", "users", "messages", "friends, requests and blocks", "groups", "tokens", "trailer"}[sec]
}

// enter moves to section sec for a record of kind, which must not go back.
func (c *checker) enter(sec int, kind string) error {
	if sec < c.section {
		return fmt.Errorf("a %s among the %s: records out of order", kind, sectionName(c.section))
	}
	c.section = sec
	return nil
}

// inPart checks a record of part of group id: it follows that group's
// Group record and the parts before it.
func (c *checker) inPart(part int, id int64, kind string) error {
	if err := c.enter(secGroups, kind); err != nil {
		return err
	}
	if !c.inGroup || id != c.group.ID {
		return fmt.Errorf("a %s of group %d not after its group's record", kind, id)
	}
	if part < c.part {
		return fmt.Errorf("group %d: a %s after its %s: records out of order", id, kind, partName(c.part))
	}
	c.part = part
	return nil
}

// partName names part p of a group in errors.
func partName(p int) string {
	return [...]string{"group", "members", "entries", "join requests", "cursors"}[p]
}

// endGroup checks the counts of the group just read, if any.
func (c *checker) endGroup() error {
	if !c.inGroup {
		return nil
	}
	c.inGroup = false
	g := &c.group
	switch {
	case c.lastSeq != g.LastSeq:
		return fmt.Errorf("group %d: last_seq %d, but its entries end at %d", g.ID, g.LastSeq, c.lastSeq)
	case c.lastSeq > 0 && c.lastTS != g.LastTS:
		return fmt.Errorf("group %d: last_ts %d, but its last entry is at %d", g.ID, g.LastTS, c.lastTS)
	case c.members != g.Members:
		return fmt.Errorf("group %d: %d members, but %d current member records", g.ID, g.Members, c.members)
	}
	return nil
}
