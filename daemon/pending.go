package daemon

import (
	"context"

	"github.com/qqchat/qq/daemon/limit"
	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins"
)

// errRecipientFull answers a send to a user who has
// limits.max_pending_per_user undelivered messages.
var errRecipientFull = protocol.Errorf(protocol.CodeRejected,
	"the recipient has too many undelivered messages; try again later")

// admit decides, for the sends of batch that are still live, whether their
// recipient can take one more message (limit.Pending), in batch order,
// and refuses the others with errRecipientFull. A recipient whose pending
// messages the storage cannot count is counted at most once per batch;
// their messages are admitted (the limit is not checked). It runs in the
// store stage only.
func (p *pipeline) admit(ps *plugSet, batch []*writeReq) {
	c := p.srv.pendingCap
	var failed map[string]bool // recipients whose count failed in this batch
	count := func(user string) (int64, error) {
		if failed[user] {
			return 0, errCountFailed
		}
		ctx, cancel := context.WithTimeout(context.Background(), p.srv.cfg.Storage.Timeout)
		defer cancel()
		n, err := ps.storage.PendingCount(ctx, user)
		if err != nil {
			p.srv.log.Warn("storage pending count failed; max_pending_per_user not checked", "err", err)
			if failed == nil {
				failed = make(map[string]bool)
			}
			failed[user] = true
		}
		return n, err
	}
	for _, r := range batch {
		if !r.liveSend() {
			continue
		}
		r.admitted, _ = c.Admit(r.msg.To, count)
		if !r.admitted {
			r.refuse = errRecipientFull
			p.srv.m.limited[limitPending].Inc()
		}
	}
	c.Prune()
}

// errCountFailed stands for a count that already failed in this batch.
var errCountFailed = errorString("pending count failed earlier in this batch")

type errorString string

func (e errorString) Error() string { return string(e) }

// settle accounts for b's Write once its outcome is known, before any of
// b is answered: admitted messages leave the in-flight count, stored ones
// join their recipient's bound, and acks mark the acking user's bound
// stale.
func (p *pipeline) settle(b *batch) {
	c := p.srv.pendingCap
	for _, r := range b.reqs {
		switch {
		case r.kind == reqSend && r.admitted:
			c.Settle(r.msg.To, sendOutcome(b.err, r.result))
		case r.kind == reqAck && r.live() && len(r.ack) > 0:
			c.Acked(r.sess.user)
		}
	}
}

// sendOutcome is what a Write did with an admitted send.
func sendOutcome(writeErr error, res *plugins.AppendResult) limit.Outcome {
	switch {
	case writeErr != nil:
		return limit.MaybeStored // maybe stored: count it, and read the count again when it matters
	case res.Err == nil && !res.Duplicate:
		return limit.Stored
	}
	return limit.NotStored
}
