package daemon

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins"
)

// writeReq is one pipelined request: a send (msg set) or an ack.
type writeReq struct {
	sess *session
	id   json.RawMessage
	// send
	msg    plugins.NewMessage
	isSend bool
	// ack
	ack []string
}

// pipeline is the group commit: a single goroutine takes every request
// queued while the previous storage write ran, up to storage.batch_max,
// writes them in one Storage.Write, then answers them in order and pushes
// the new messages to their recipients' sessions. Batches form by
// themselves under load; an idle server writes each request at once.
type pipeline struct {
	srv  *Server
	in   chan *writeReq
	done chan struct{}
}

func newPipeline(srv *Server) *pipeline {
	p := &pipeline{
		srv:  srv,
		in:   make(chan *writeReq, 4*srv.cfg.Storage.BatchMax),
		done: make(chan struct{}),
	}
	go p.run()
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

func (p *pipeline) run() {
	defer close(p.done)
	max := p.srv.cfg.Storage.BatchMax
	batch := make([]*writeReq, 0, max)
	for {
		r, ok := <-p.in
		if !ok {
			return
		}
		batch = append(batch[:0], r)
	fill:
		for len(batch) < max {
			select {
			case r, ok := <-p.in:
				if !ok {
					break fill
				}
				batch = append(batch, r)
			default:
				break fill
			}
		}
		p.write(batch)
		clear(batch)
	}
}

func (p *pipeline) write(batch []*writeReq) {
	srv := p.srv
	wb := plugins.WriteBatch{}
	for _, r := range batch {
		if r.isSend {
			r.msg.Status = protocol.StatusQueued
			if srv.router.online(r.msg.To) {
				r.msg.Status = protocol.StatusSent
			}
			wb.Messages = append(wb.Messages, r.msg)
		} else if len(r.ack) > 0 {
			wb.Acks = append(wb.Acks, plugins.Ack{User: r.sess.user, MsgIDs: r.ack})
		}
	}
	var results []plugins.AppendResult
	var err error
	if len(wb.Messages) > 0 || len(wb.Acks) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), srv.cfg.Storage.Timeout)
		results, err = srv.store.Write(ctx, &wb)
		cancel()
		if err == nil && len(results) != len(wb.Messages) {
			err = errors.New("storage returned a wrong number of results")
		}
	}
	if err != nil {
		srv.log.Error("storage write failed", "messages", len(wb.Messages), "acks", len(wb.Acks), "err", err)
	}
	// Before anything of this batch is answered: see router.
	epoch := srv.router.advance()
	unavailable := protocol.Errorf(protocol.CodeUnavailable, "storage unavailable; nothing was stored")
	i := 0
	var pushBuf []byte
	for _, r := range batch {
		switch {
		case err != nil:
			r.sess.send(protocol.AppendError(nil, r.id, unavailable))
			if r.isSend {
				i++
			}
		case !r.isSend:
			r.sess.send(protocol.StartFrame(nil, protocol.TypeOK).ID(r.id).End())
		default:
			res := &results[i]
			i++
			if errors.Is(res.Err, plugins.ErrUnknownUser) {
				r.sess.send(protocol.AppendError(nil, r.id, protocol.Errorf(protocol.CodeUnknownUser, "no such user")))
				break
			}
			if res.Err != nil {
				r.sess.send(protocol.AppendError(nil, r.id, protocol.Errorf(protocol.CodeInternal, "message not stored")))
				break
			}
			m := &res.Message
			f := protocol.StartFrame(nil, protocol.TypeOK).ID(r.id).Str("msg_id", m.ID).Int("ts", m.TS).Str("status", string(res.Status))
			if m.Body != r.msg.Body {
				f = f.Str("body", m.Body)
			}
			r.sess.send(f.End())
			r.sess.msgsIn.Add(1)
			if !res.Duplicate {
				pushBuf = protocol.AppendPush(pushBuf[:0], m)
				p.push(m.To, epoch, pushBuf)
			}
		}
		r.sess.releaseInflight()
	}
}

// push queues frame on every session of user that joined before epoch.
func (p *pipeline) push(user string, epoch uint64, frame []byte) {
	var dropped []*session
	p.srv.router.each(user, epoch, func(s *session) {
		if s.enqueue(frame) {
			s.msgsOut.Add(1)
		} else {
			dropped = append(dropped, s)
		}
	})
	for _, s := range dropped {
		p.srv.router.remove(s)
	}
}
