package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins"
)

// reqKind is what a pipelined request is. Group sends and cursor acks
// will be new kinds.
type reqKind uint8

// Kinds of pipelined request.
const (
	reqSend      reqKind = iota + 1 // a direct message
	reqAck                          // an ack of delivered messages
	reqGroupSend                    // a group message (group.go)
	reqGroupAck                     // a group read cursor moved forward
)

// writeReq is one pipelined request.
type writeReq struct {
	kind reqKind
	sess *session
	id   json.RawMessage
	// start is when the request was read (for qqd_send_duration_seconds).
	start time.Time
	// send (msg.From, CID and Body serve group sends too)
	msg plugins.NewMessage
	// group send and group ack
	group    int64
	mentions []string
	ackSeq   int64
	// sentBody is the body as the client sent it; msg.Body may be
	// rewritten by filters.
	sentBody string
	// cidFlags: msg.CID was made up by the server, or the client says
	// it is new (see sendFields).
	cidFlags cidFlags
	// ack
	ack []string

	// Set by the filter stage: the answer when the request does not
	// reach storage as a new message.
	dup    *plugins.AppendResult // a cid retry of a stored message
	refuse *protocol.Error       // rejected, or failed closed
	// admitted is set by the store stage when the message counts against
	// its recipient's max_pending_per_user (see limit.Pending).
	admitted bool
	// result is set once the batch's Write is known (attachResults): the
	// storage's answer for a live send, nil when the Write failed.
	result *plugins.AppendResult
}

// live reports that r still goes to storage: no stage before answered it
// (as a cid retry, or refused).
func (r *writeReq) live() bool { return r.dup == nil && r.refuse == nil }

// liveSend reports that r is a direct send that still goes to storage.
func (r *writeReq) liveSend() bool { return r.kind == reqSend && r.live() }

// liveGroupSend reports that r is a group send that still goes to
// storage.
func (r *writeReq) liveGroupSend() bool { return r.kind == reqGroupSend && r.live() }

// sends reports that r is a send of either kind (both carry a message
// and a cid).
func (r *writeReq) sends() bool { return r.kind == reqSend || r.kind == reqGroupSend }

// pipeline turns pipelined sends and acks into batched plugin calls, in
// stages that run concurrently, each on its own goroutine, connected by
// channels:
//
//  1. collect: takes every request queued while the previous batch was
//     being collected (up to storage.batch_max) and answers cid retries
//     from storage (LookupCIDs);
//  2. filter: the batch's remaining sends go through the filter chain, one
//     call per filter;
//  3. store: refuses the sends whose recipient has max_pending_per_user
//     undelivered messages (see pendingCap), then writes the batch's new
//     messages and acks in one
//     Storage.Write (the group commit). A storage that orders overlapping
//     writes (plugins.WriteOverlapper: a storage plugin process) gets the
//     next batch before the previous one is answered;
//  4. answer: waits for the write, then answers every request of the
//     batch in order and pushes the new messages.
//
// While the store stage commits one batch, the filters work on the next
// one and the answer stage on the previous one, so plugin calls and
// answering overlap instead of adding up. (A stage per filter was tried:
// the extra hops split the load into more, smaller batches, and at a
// fixed number of requests in flight throughput fell.) Batches form by
// themselves under load; an idle server handles each request at once.
// Every stage keeps batch order, so replies leave each connection in order
// and messages from one sender are stored in the order they were sent.
// A batch holds the plugin set it started with until it is answered.
type pipeline struct {
	srv    *Server
	in     chan *writeReq
	done   chan struct{}
	writes writeSlots
	// flushQ lists the sessions the batch being answered queued output
	// for; only the answer stage uses it (see deliver).
	flushQ []*session
	// okBuf is where the answer stage encodes its ok replies (startOK):
	// reply copies a frame into the session's output, so one buffer
	// serves every reply.
	okBuf []byte
}

// batch is a group of requests on their way through the pipeline.
type batch struct {
	reqs []*writeReq
	ps   *plugSet
	// acksUnknown: the Write's outcome was resolved for its messages only.
	acksUnknown bool
	// ackOnly is the batch's acks as a Write of their own, set when the
	// batch also has messages; deadline is the end of the Write's
	// storage.timeout. acksStored: the Write stored nothing, and ackOnly
	// then succeeded (retryAcks).
	ackOnly    *plugins.WriteBatch
	deadline   time.Time
	acksStored bool
	// Set by the store stage: wait returns the Write's outcome.
	wait    func() ([]plugins.AppendResult, error)
	nWrites int // messages and acks in the Write
	results []plugins.AppendResult
	err     error
	epoch   uint64
}

func newPipeline(srv *Server) *pipeline {
	p := &pipeline{
		srv:  srv,
		in:   make(chan *writeReq, 4*srv.cfg.Storage.BatchMax),
		done: make(chan struct{}),
	}
	p.writes.cond.L = &p.writes.mu
	collected := make(chan *batch)
	filtered := make(chan *batch)
	stored := make(chan *batch, maxWriteOverlap)
	go p.collectStage(collected)
	go p.filterStage(collected, filtered)
	go p.storeStage(filtered, stored)
	go p.answerStage(stored)
	return p
}

// submit queues r. The caller holds an inflight slot of r.sess, which the
// pipeline releases after queuing the reply.
func (p *pipeline) submit(r *writeReq) { p.in <- r }

// stop drains the pipeline and waits for it. No submit may follow.
func (p *pipeline) stop() {
	close(p.in)
	<-p.done
}

func (p *pipeline) collectStage(out chan<- *batch) {
	defer close(out)
	max := p.srv.cfg.Storage.BatchMax
	for {
		r, ok := <-p.in
		if !ok {
			return
		}
		reqs := make([]*writeReq, 1, min(max, 1+len(p.in)))
		reqs[0] = r
	fill:
		for len(reqs) < max {
			select {
			case r, ok := <-p.in:
				if !ok {
					break fill
				}
				reqs = append(reqs, r)
			default:
				break fill
			}
		}
		b := &batch{reqs: reqs, ps: p.srv.acquirePlugs()}
		p.lookupRetries(b.ps, reqs)
		if b.ps.social == nil {
			// direct_messages: friends, and a storage that cannot check
			// friendships (plugin protocol 1): refuse rather than deliver
			// what the operator said must not be.
			for _, r := range reqs {
				if r.liveSend() && r.msg.FriendsOnly {
					r.refuse = errNoFriendsCheck
				}
			}
		}
		out <- b
	}
}

// filterStage runs each batch through its filter chain, in order.
func (p *pipeline) filterStage(in <-chan *batch, out chan<- *batch) {
	defer close(out)
	for b := range in {
		for _, f := range b.ps.filters {
			p.runFilter(f, b.reqs)
		}
		out <- b
	}
}

// maxWriteOverlap bounds the Writes in flight to one storage.
const maxWriteOverlap = 4

func (p *pipeline) storeStage(in <-chan *batch, out chan<- *batch) {
	defer close(out)
	for b := range in {
		depth := 1
		if o, ok := b.ps.storage.(plugins.WriteOverlapper); ok {
			depth = min(max(o.WriteOverlap(), 1), maxWriteOverlap)
		}
		p.admit(b.ps, b.reqs)
		p.writes.acquire(depth)
		p.startWrite(b)
		out <- b
	}
}

// writeSlots counts the Writes in flight.
type writeSlots struct {
	mu   sync.Mutex
	cond sync.Cond
	n    int
}

// acquire waits until fewer than depth Writes are in flight and counts one
// more.
func (w *writeSlots) acquire(depth int) {
	w.mu.Lock()
	for w.n >= depth {
		w.cond.Wait()
	}
	w.n++
	w.mu.Unlock()
}

func (w *writeSlots) release() {
	w.mu.Lock()
	w.n--
	w.cond.Signal()
	w.mu.Unlock()
}

func (p *pipeline) answerStage(in <-chan *batch) {
	defer close(p.done)
	for b := range in {
		p.finishWrite(b)
		p.settle(b)
		p.writes.release()
		p.answer(b)
		b.ps.release()
	}
}

var (
	errSendBlocked    = protocol.Errorf(protocol.CodeBlocked, "this user does not accept your messages; nothing was stored")
	errNoFriendsCheck = protocol.Errorf(protocol.CodeUnavailable,
		"this server delivers direct messages between friends only, and its storage cannot check friendships; nothing was stored")
	errSendNotFriends = protocol.Errorf(protocol.CodeNotFriends, "this server delivers direct messages between friends only; nothing was stored")
	errStorageDown    = protocol.Errorf(protocol.CodeUnavailable, "storage unavailable; nothing was stored")
	errFilterDown     = protocol.Errorf(protocol.CodeUnavailable, "message filter unavailable; nothing was stored")
	errCIDReused      = protocol.Errorf(protocol.CodeBadRequest, "this cid names another message (direct or in another group)")
)

// lookupRetries answers sends whose cid names a stored message with that
// message, before the filters see them. Sends whose cid the server made
// up, or that the client marked first, are not looked up: a repeated cid
// among them is still answered with the first message, by the storage's
// Write (after the filters saw it again).
func (p *pipeline) lookupRetries(ps *plugSet, batch []*writeReq) {
	var keys []plugins.CIDKey
	var reqs []*writeReq
	for _, r := range batch {
		if r.sends() && r.msg.CID != "" && r.cidFlags.lookup() {
			keys = append(keys, plugins.CIDKey{From: r.msg.From, CID: r.msg.CID})
			reqs = append(reqs, r)
		}
	}
	if len(keys) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.srv.cfg.Storage.Timeout)
	res, err := ps.storage.LookupCIDs(ctx, keys)
	cancel()
	if err == nil && len(res) != len(keys) {
		err = errors.New("storage returned a wrong number of results")
	}
	if err != nil {
		p.srv.log.Error("storage cid lookup failed", "keys", len(keys), "err", err)
		for _, r := range reqs {
			r.refuse = errStorageDown
		}
		return
	}
	for i, r := range reqs {
		// A cid names a direct or a group message: a retry of one as the
		// other is a new message with a reused cid, refused.
		switch {
		case !res[i].Duplicate:
		case (res[i].Group != nil) != (r.kind == reqGroupSend) || r.kind == reqGroupSend && res[i].Group.Group != r.group:
			r.refuse = errCIDReused
		default:
			r.dup = &res[i]
		}
	}
}

// runFilter runs the sends of batch that are still new through f.
func (p *pipeline) runFilter(f plugins.FilterLink, batch []*writeReq) {
	var live []*writeReq
	for _, r := range batch {
		if r.liveSend() || r.liveGroupSend() {
			live = append(live, r)
		}
	}
	if len(live) > 0 {
		p.applyFilter(f, live)
	}
}

func (p *pipeline) applyFilter(f plugins.FilterLink, live []*writeReq) {
	now := time.Now().UnixMilli()
	msgs := make([]plugins.FilterMessage, len(live))
	for i, r := range live {
		msgs[i] = plugins.FilterMessage{From: r.msg.From, To: r.msg.To, Body: r.msg.Body, TS: now, Group: r.group}
	}
	timeout := f.Timeout
	if timeout <= 0 {
		timeout = p.srv.cfg.Storage.Timeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	verdicts, err := f.Filter.Filter(ctx, msgs)
	cancel()
	if err == nil && len(verdicts) != len(live) {
		err = errors.New("filter returned a wrong number of verdicts")
	}
	if err != nil {
		p.srv.log.Warn("filter failed", "filter", f.Name, "messages", len(live), "err", err,
			"on_failure", f.OnFailure.String())
		if f.OnFailure == plugins.FailClosed {
			for _, r := range live {
				r.refuse = errFilterDown
			}
		}
		return
	}
	maxBody := p.srv.cfg.Limits.MaxBodyBytes
	for i, r := range live {
		v := verdicts[i]
		switch v.Action {
		case plugins.Allow:
		case plugins.Reject:
			r.refuse = protocol.Errorf(protocol.CodeRejected, rejectReason(f.Name, v.Reason))
		case plugins.Rewrite:
			if v.Body == "" || len(v.Body) > maxBody || !utf8.ValidString(v.Body) {
				p.srv.log.Warn("filter rewrote a body into an invalid one", "filter", f.Name, "bytes", len(v.Body))
				if f.OnFailure == plugins.FailClosed {
					r.refuse = errFilterDown
				}
				continue
			}
			r.msg.Body = v.Body
		default:
			p.srv.log.Warn("filter returned an unknown action", "filter", f.Name, "action", v.Action)
			if f.OnFailure == plugins.FailClosed {
				r.refuse = errFilterDown
			}
		}
	}
}

// rejectReason makes a filter's reason fit for the sender: one line of
// valid UTF-8, at most 200 bytes.
func rejectReason(filter, reason string) string {
	reason = strings.ToValidUTF8(reason, "?")
	if i := strings.IndexAny(reason, "\r\n"); i >= 0 {
		reason = reason[:i]
	}
	reason = strings.TrimSpace(reason)
	if len(reason) > 200 {
		cut := 200
		for cut > 0 && !utf8.RuneStart(reason[cut]) {
			cut--
		}
		reason = reason[:cut]
	}
	if reason == "" {
		return "rejected by filter " + filter
	}
	return reason
}

// startWrite starts the Write of b's new messages and acks.
func (p *pipeline) startWrite(b *batch) {
	srv := p.srv
	wb := plugins.WriteBatch{}
	for _, r := range b.reqs {
		switch {
		case !r.live():
		case r.kind == reqSend:
			r.msg.Status = protocol.StatusQueued
			if srv.router.Online(r.msg.To) {
				r.msg.Status = protocol.StatusSent
			}
			wb.Messages = append(wb.Messages, r.msg)
		case r.kind == reqAck && len(r.ack) > 0:
			wb.Acks = append(wb.Acks, plugins.Ack{User: r.sess.user, MsgIDs: r.ack})
		case r.kind == reqGroupAck:
			wb.GroupAcks = append(wb.GroupAcks, plugins.GroupAck{User: r.sess.user, Group: r.group, Seq: r.ackSeq})
		}
	}
	// Group messages follow the direct ones, and so do their results.
	for _, r := range b.reqs {
		if r.liveGroupSend() {
			wb.GroupMessages = append(wb.GroupMessages, plugins.NewGroupMessage{Group: r.group, From: r.msg.From,
				Body: r.msg.Body, CID: r.msg.CID, Mentions: r.mentions, TS: time.Now().UnixMilli()})
		}
	}
	if len(wb.GroupMessages) > 0 {
		wb.GroupLimits = srv.groupLimits()
	}
	b.nWrites = len(wb.Messages) + len(wb.Acks) + len(wb.GroupMessages) + len(wb.GroupAcks)
	if b.nWrites == 0 {
		b.wait = func() ([]plugins.AppendResult, error) { return nil, nil }
		return
	}
	srv.m.storageBatch.Observe(float64(b.nWrites))
	if len(wb.Messages)+len(wb.GroupMessages) > 0 && len(wb.Acks)+len(wb.GroupAcks) > 0 {
		b.ackOnly = &plugins.WriteBatch{Acks: wb.Acks, GroupAcks: wb.GroupAcks}
	}
	b.deadline = time.Now().Add(srv.cfg.Storage.Timeout)
	ctx, cancel := context.WithDeadline(context.Background(), b.deadline)
	var wait func() ([]plugins.AppendResult, error)
	if o, ok := b.ps.storage.(plugins.WriteOverlapper); ok {
		wait = o.StartWrite(ctx, &wb)
	} else {
		res, err := b.ps.storage.Write(ctx, &wb)
		wait = func() ([]plugins.AppendResult, error) { return res, err }
	}
	n := len(wb.Messages) + len(wb.GroupMessages)
	b.wait = func() ([]plugins.AppendResult, error) {
		defer cancel()
		res, err := wait()
		if err == nil && len(res) != n {
			err = errors.New("storage returned a wrong number of results")
		}
		if err != nil {
			srv.log.Error("storage write failed", "messages", n, "acks", len(wb.Acks), "err", err)
		}
		return res, err
	}
}

// finishWrite waits for b's Write and attaches its results to the
// requests. It advances the router's epoch after the commit and before
// anything of b is answered: see package route.
func (p *pipeline) finishWrite(b *batch) {
	b.results, b.err = b.wait()
	var we *plugins.WriteError
	if errors.As(b.err, &we) && we.MaybeWritten {
		p.resolve(b)
	}
	if errors.As(b.err, &we) && !we.MaybeWritten {
		p.retryAcks(b)
	}
	if b.err == nil {
		i := 0
		for _, r := range b.reqs {
			if r.liveSend() {
				r.result = &b.results[i]
				i++
			}
		}
		for _, r := range b.reqs {
			if r.liveGroupSend() {
				r.result = &b.results[i]
				i++
			}
		}
	}
	b.epoch = p.srv.router.Advance()
}

// errNotStored marks a message that a resolved Write (see resolve) did not
// store.
var errNotStored = errors.New("not stored")

// resolve settles a Write whose outcome is unknown (the storage died or
// timed out during the commit). Every message carries a cid (the
// client's, or one the server made up, see sendMsg), so once the storage
// answers again the pipeline asks it which of them it has: those are
// answered ok and pushed, the others unavailable — then they are truly not
// stored, as the contract says of unavailable. The batch's acks are
// answered unavailable (a retry is harmless). The answer stage waits for
// the storage up to storage.timeout plus the plugins' restart_backoff_max
// and start_timeout (a storage that is down answers nobody meanwhile
// anyway). Only if it does not come back by then does every request of
// the batch get unavailable although some may have been stored; a retry
// with the same cid finds those.
func (p *pipeline) resolve(b *batch) {
	// In the order of the Write's results: direct messages, then group
	// messages.
	var keys []plugins.CIDKey
	for _, r := range b.reqs {
		if r.liveSend() {
			keys = append(keys, plugins.CIDKey{From: r.msg.From, CID: r.msg.CID})
		}
	}
	for _, r := range b.reqs {
		if r.liveGroupSend() {
			keys = append(keys, plugins.CIDKey{From: r.msg.From, CID: r.msg.CID})
		}
	}
	if len(keys) == 0 {
		return
	}
	// Wait as long as a crashed storage plugin may take to come back: its
	// restart backoff and start, plus one storage timeout.
	pc := p.srv.cfg.Plugins
	deadline := time.Now().Add(p.srv.cfg.Storage.Timeout + pc.RestartBackoffMax + pc.StartTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), p.srv.cfg.Storage.Timeout)
		found, err := b.ps.storage.LookupCIDs(ctx, keys)
		cancel()
		if err == nil && len(found) == len(keys) {
			results := make([]plugins.AppendResult, len(keys))
			stored := 0
			for i, f := range found {
				if f.Duplicate {
					results[i] = f
					results[i].Duplicate = false // this batch stored it: answer and push it as new
					stored++
				} else {
					results[i].Err = errNotStored
				}
			}
			p.srv.log.Warn("unknown write outcome resolved", "messages", len(keys), "stored", stored)
			b.results, b.err, b.acksUnknown = results, nil, true
			return
		}
		if time.Now().Add(100 * time.Millisecond).After(deadline) {
			p.srv.log.Error("unknown write outcome not resolved: storage did not answer", "messages", len(keys), "err", err)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// retryAcks writes the acks of b on their own, within what is left of
// the Write's storage.timeout, when b's Write stored nothing and b also
// has messages. A storage may refuse messages and still take acks (the
// SQLite plugin keeps a reserve of disk space for them when the disk
// fills up), and an ack that fails makes the next offline page repeat
// what its user already has.
func (p *pipeline) retryAcks(b *batch) {
	if b.ackOnly == nil || time.Until(b.deadline) <= 0 {
		return
	}
	ctx, cancel := context.WithDeadline(context.Background(), b.deadline)
	defer cancel()
	if _, err := b.ps.storage.Write(ctx, b.ackOnly); err != nil {
		p.srv.log.Warn("storage write of acks alone failed", "acks", len(b.ackOnly.Acks)+len(b.ackOnly.GroupAcks), "err", err)
		return
	}
	b.acksStored = true
}

// answer answers every request of b in order and pushes its new messages.
func (p *pipeline) answer(b *batch) {
	var pushBuf []byte
	for _, r := range b.reqs {
		switch {
		case r.refuse != nil:
			p.srv.m.sendAnswered(r, refuseResult(r.refuse))
			p.reply(r.sess, protocol.AppendError(nil, r.id, r.refuse))
		case r.kind == reqGroupSend && r.dup != nil:
			p.answerGroupSend(r, r.dup, b.epoch, b.ps.groups)
		case r.dup != nil:
			p.answerSend(r, r.dup, b.epoch, &pushBuf)
		case (r.kind == reqAck || r.kind == reqGroupAck) && b.acksStored:
			p.replyOK(r.sess, p.startOK(r.id))
		case b.err != nil:
			p.srv.m.sendAnswered(r, msgFailed)
			p.reply(r.sess, protocol.AppendError(nil, r.id, errStorageDown))
		case r.kind == reqGroupSend:
			p.answerGroupSend(r, r.result, b.epoch, b.ps.groups)
		case (r.kind == reqAck || r.kind == reqGroupAck) && b.acksUnknown:
			p.reply(r.sess, protocol.AppendError(nil, r.id, errStorageDown))
		case r.kind == reqAck, r.kind == reqGroupAck:
			p.replyOK(r.sess, p.startOK(r.id))
		default:
			p.answerSend(r, r.result, b.epoch, &pushBuf)
		}
		r.sess.releaseInflight()
	}
	p.flush()
}

// startOK starts an ok reply to the request id in the answer stage's
// buffer; replyOK queues it.
func (p *pipeline) startOK(id json.RawMessage) protocol.Frame {
	return protocol.StartFrame(p.okBuf[:0], protocol.TypeOK).ID(id)
}

// replyOK queues f, started with startOK, on s, and keeps its buffer for
// the next one.
func (p *pipeline) replyOK(s *session, f protocol.Frame) {
	p.okBuf = f.End()
	p.reply(s, p.okBuf)
}

// reply queues frame on s from the answer stage; see deliver. A session
// that takes no more output is closing and has left the router.
func (p *pipeline) reply(s *session, frame []byte) { p.deliver(s, frame) }

// deliver queues frame on s from the answer stage, without starting a
// writer: everything a batch queues for a session is written at the end
// of the batch (flush) in one write. It reports false when the session
// takes no more output (see session.enqueue).
func (p *pipeline) deliver(s *session, frame []byte) bool {
	ok, first := s.enqueueDeferred(frame)
	if first {
		p.flushQ = append(p.flushQ, s)
	}
	return ok
}

// flushChunk is the fewest sessions a flush goroutine of its own gets.
const flushChunk = 64

// flush writes what the batch queued, session by session. Large batches
// are split among up to GOMAXPROCS goroutines, so that on a machine with
// cores to spare the writes (a syscall each) do not queue behind each
// other; with one core, or few sessions, it is all done here.
func (p *pipeline) flush() {
	q := p.flushQ
	var wg sync.WaitGroup
	if workers := min(runtime.GOMAXPROCS(0), len(q)/flushChunk); workers > 1 {
		per := (len(q) + workers - 1) / workers
		for part := range slices.Chunk(q[per:], per) {
			wg.Go(func() {
				for _, s := range part {
					s.flush()
				}
			})
		}
		q = q[:per]
	}
	for _, s := range q {
		s.flush()
	}
	wg.Wait()
	clear(p.flushQ)
	p.flushQ = p.flushQ[:0]
}

// answerSend answers a send that reached storage, and pushes a new message.
func (p *pipeline) answerSend(r *writeReq, res *plugins.AppendResult, epoch uint64, pushBuf *[]byte) {
	if errors.Is(res.Err, errNotStored) {
		p.srv.m.sendAnswered(r, msgFailed)
		p.reply(r.sess, protocol.AppendError(nil, r.id, errStorageDown))
		return
	}
	if res.Group != nil { // the cid names a group message
		p.srv.m.sendAnswered(r, msgInvalid)
		p.reply(r.sess, protocol.AppendError(nil, r.id, errCIDReused))
		return
	}
	if errors.Is(res.Err, plugins.ErrUnknownUser) {
		p.srv.m.sendAnswered(r, msgUnknownUser)
		p.reply(r.sess, protocol.AppendError(nil, r.id, protocol.Errorf(protocol.CodeUnknownUser, "no such user")))
		return
	}
	if errors.Is(res.Err, plugins.ErrBlocked) {
		p.srv.m.sendAnswered(r, msgBlocked)
		p.reply(r.sess, protocol.AppendError(nil, r.id, errSendBlocked))
		return
	}
	if errors.Is(res.Err, plugins.ErrNotFriends) {
		p.srv.m.sendAnswered(r, msgNotFriends)
		p.reply(r.sess, protocol.AppendError(nil, r.id, errSendNotFriends))
		return
	}
	if res.Err != nil {
		p.srv.log.Error("storage refused a message", "err", res.Err)
		p.srv.m.sendAnswered(r, msgFailed)
		p.reply(r.sess, protocol.AppendError(nil, r.id, protocol.Errorf(protocol.CodeInternal, "message not stored")))
		return
	}
	m := &res.Message
	f := p.startOK(r.id).Str("msg_id", m.ID).Int("ts", m.TS).Str("status", string(res.Status))
	if m.Body != r.sentBody {
		f = f.Str("body", m.Body)
	}
	// Counters first: whoever sees the reply sees them counted.
	p.srv.m.sendAnswered(r, okResult(res))
	r.sess.msgsIn.Add(1)
	if !res.Duplicate {
		p.srv.msgsAccepted.Add(1)
	}
	p.replyOK(r.sess, f)
	if !res.Duplicate {
		*pushBuf = protocol.AppendPush((*pushBuf)[:0], m)
		p.push(m.To, epoch, m.Seq, *pushBuf)
	}
}

// push queues the message frame on every session of user that joined
// before epoch; seq is the message's (see route.Router.PushSeq).
func (p *pipeline) push(user string, epoch uint64, seq int64, frame []byte) {
	p.srv.router.PushSeq(user, epoch, seq, frame, p)
}

// Deliver queues a pushed message on s (route.Deliverer): the pipeline is
// its own Deliverer, so a push allocates nothing.
func (p *pipeline) Deliver(s *session, frame []byte) {
	if p.deliver(s, frame) {
		s.msgsOut.Add(1)
		p.srv.msgsPushed.Add(1)
	}
}
