package plugins

// Call streams (protocol version 3): the calls on the hot path of every
// message batch (Filter, Write, LookupCIDs) travel over one long-lived
// bidirectional gRPC stream per plugin, as CallRequest and CallResponse
// messages matched by id, rather than as one unary call (one HTTP/2
// stream with its headers, and a new goroutine in the plugin) each.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/qqchat/qq/plugins/pluginpb"
)

// callsProtocolVersion is the first protocol version with call streams.
const callsProtocolVersion = 3

type (
	callsClient = grpc.BidiStreamingClient[pluginpb.CallRequest, pluginpb.CallResponse]
	callsServer = grpc.BidiStreamingServer[pluginpb.CallRequest, pluginpb.CallResponse]
)

// stuckSendGrace is how long a send may stay blocked after its caller's
// deadline before the stream is taken for stuck and broken (failing the
// calls in flight on it). A send blocks only when the plugin has stopped
// reading its stream for a whole flow-control window: it is hung. (A
// caller waiting for its turn to send gives up at its deadline.)
const stuckSendGrace = 250 * time.Millisecond

// errStreamEnded is the error of the calls in flight when the plugin ends
// the stream without an error (it should never do so).
var errStreamEnded = errors.New("plugin ended the call stream")

// callStream is the host side of a plugin's Calls stream: it opens the
// stream on first use, and again after it broke. Safe for concurrent use.
type callStream struct {
	open func(ctx context.Context) (callsClient, error)
	mu   sync.Mutex // serialises opening
	cur  atomic.Pointer[streamConn]
}

func newCallStream(open func(ctx context.Context) (callsClient, error)) *callStream {
	return &callStream{open: open}
}

// conn returns the open stream, opening one if there is none or the
// last one broke.
func (cs *callStream) conn() (*streamConn, error) {
	if c := cs.cur.Load(); c != nil && !c.broken() {
		return c, nil
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if c := cs.cur.Load(); c != nil && !c.broken() {
		return c, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := cs.open(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	c := &streamConn{
		stream: s, cancel: cancel, sendSem: make(chan struct{}, 1),
		pending: make(map[uint64]chan *pluginpb.CallResponse), dead: make(chan struct{}),
	}
	go c.receive()
	cs.cur.Store(c)
	return c, nil
}

// notSentError is the failure of a call that was not sent: the plugin
// did not see it (a Write stored nothing).
type notSentError struct{ err error }

func (e *notSentError) Error() string { return e.err.Error() }
func (e *notSentError) Unwrap() error { return e.err }

// start sends req, once before has run (under the lock that orders the
// sends: a Write takes its seq there). It fails with a *notSentError when
// req was not sent: ctx was done, or the stream broke and could not be
// opened again.
func (cs *callStream) start(ctx context.Context, req *pluginpb.CallRequest, before func()) (*pendingCall, error) {
	for attempt := 0; ; attempt++ {
		c, err := cs.conn()
		if err != nil {
			return nil, &notSentError{err}
		}
		call, err := c.send(ctx, req, before)
		if err == nil {
			return call, nil
		}
		if !errors.Is(err, errBrokenBeforeSend) || attempt > 0 {
			return nil, &notSentError{err}
		}
		// It broke between conn and send: once more on a new stream.
	}
}

// call sends req and waits for its response (see start and wait).
func (cs *callStream) call(ctx context.Context, req *pluginpb.CallRequest) (*pluginpb.CallResponse, error) {
	call, err := cs.start(ctx, req, nil)
	if err != nil {
		return nil, err
	}
	return call.wait(ctx)
}

// errBrokenBeforeSend is the failure of a send on a stream that had
// already broken.
var errBrokenBeforeSend = errors.New("call stream broken")

// streamConn is one open Calls stream.
type streamConn struct {
	stream callsClient
	cancel context.CancelFunc // ends the stream

	// sendSem serialises sends, in call order: held (a token in it)
	// while one is under way. A channel rather than a mutex, so that a
	// caller waiting for its turn still gives up at its deadline.
	sendSem chan struct{}
	nextID  uint64 // under sendSem
	// sending is the id of the call whose send is under way, 0 when none.
	sending atomic.Uint64

	mu      sync.Mutex // guards pending
	pending map[uint64]chan *pluginpb.CallResponse

	dead     chan struct{} // closed when the stream broke; err says why
	err      error
	failOnce sync.Once
}

func (c *streamConn) broken() bool {
	select {
	case <-c.dead:
		return true
	default:
		return false
	}
}

// fail breaks the stream with err (the first reason sticks) and ends it.
func (c *streamConn) fail(err error) {
	c.failOnce.Do(func() {
		c.err = err
		close(c.dead)
		c.cancel()
	})
}

// pendingCall is a call sent on a stream, waiting for its response.
type pendingCall struct {
	c  *streamConn
	id uint64
	ch chan *pluginpb.CallResponse
}

// send numbers req and sends it.
func (c *streamConn) send(ctx context.Context, req *pluginpb.CallRequest, before func()) (*pendingCall, error) {
	select {
	case c.sendSem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.dead:
		return nil, fmt.Errorf("%w: %w", errBrokenBeforeSend, c.err)
	}
	defer func() { <-c.sendSem }()
	if c.broken() {
		return nil, fmt.Errorf("%w: %w", errBrokenBeforeSend, c.err)
	}
	// As a unary call does, fail at once (and send nothing) when ctx is
	// done.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.nextID++
	call := &pendingCall{c: c, id: c.nextID, ch: make(chan *pluginpb.CallResponse, 1)}
	req.Id, req.TimeoutNs = call.id, 0
	if dl, ok := ctx.Deadline(); ok {
		req.TimeoutNs = max(int64(time.Until(dl)), 1)
	}
	c.mu.Lock()
	c.pending[call.id] = call.ch
	c.mu.Unlock()
	if before != nil {
		before()
	}
	c.sending.Store(call.id)
	var stop func() bool
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, func() { c.watchSend(call.id) })
	}
	err := c.stream.Send(req)
	c.sending.Store(0)
	if stop != nil {
		stop()
	}
	if err != nil {
		// io.EOF: the stream has ended, and receive learns why. The
		// call may have gone out (outcome unknown): wait says so.
		if !errors.Is(err, io.EOF) {
			c.fail(err)
		}
	}
	return call, nil
}

// watchSend runs when the context of call id ends: if its send is still
// blocked stuckSendGrace later, the plugin has stopped reading, and the
// stream is broken so that the send (and every call on the stream) ends.
func (c *streamConn) watchSend(id uint64) {
	if c.sending.Load() == id {
		time.AfterFunc(stuckSendGrace, func() { c.failIfStuck(id) })
	}
}

// failIfStuck breaks the stream if the send of call id is still under way.
func (c *streamConn) failIfStuck(id uint64) {
	if c.sending.Load() == id {
		c.fail(fmt.Errorf("plugin stopped reading its call stream: a send was blocked %v past its deadline", stuckSendGrace))
	}
}

// wait returns the call's response, its error as a unary call would
// fail with, or ctx's error (sending the plugin a cancel for the call).
func (p *pendingCall) wait(ctx context.Context) (*pluginpb.CallResponse, error) {
	select {
	case r := <-p.ch:
		return decodeCall(r)
	case <-p.c.dead:
		select {
		case r := <-p.ch:
			return decodeCall(r)
		default:
		}
		if err := ctx.Err(); err != nil {
			// It broke because this call's send was stuck past the
			// deadline (or at the same moment): the deadline is what a
			// unary call would report.
			return nil, status.FromContextError(err).Err()
		}
		return nil, p.c.err
	case <-ctx.Done():
		p.c.mu.Lock()
		_, waiting := p.c.pending[p.id]
		delete(p.c.pending, p.id)
		p.c.mu.Unlock()
		if waiting {
			go p.c.sendCancel(p.id)
		}
		// What a unary call returns when its context ends.
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

// sendCancel tells the plugin that the host gave up on call id. Its send
// is watched as a call's is (the call's deadline has passed already).
func (c *streamConn) sendCancel(id uint64) {
	select {
	case c.sendSem <- struct{}{}:
	case <-c.dead:
		return
	}
	defer func() { <-c.sendSem }()
	if c.broken() {
		return
	}
	c.sending.Store(id)
	watch := time.AfterFunc(stuckSendGrace, func() { c.failIfStuck(id) })
	err := c.stream.Send(&pluginpb.CallRequest{Id: id, Call: &pluginpb.CallRequest_Cancel{Cancel: &pluginpb.CancelCall{}}})
	c.sending.Store(0)
	watch.Stop()
	if err != nil && !errors.Is(err, io.EOF) {
		c.fail(err)
	}
}

// receive hands every response to its caller until the stream ends; then
// it fails the calls still in flight.
func (c *streamConn) receive() {
	for {
		r, err := c.stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errStreamEnded
			}
			c.fail(err)
			return
		}
		c.mu.Lock()
		ch, ok := c.pending[r.GetId()]
		delete(c.pending, r.GetId())
		c.mu.Unlock()
		if ok {
			ch <- r
		}
	}
}

// decodeCall turns a response carrying an error into that error, decoded
// as fromStatus decodes a unary call's.
func decodeCall(r *pluginpb.CallResponse) (*pluginpb.CallResponse, error) {
	if e := r.GetError(); e != nil {
		return nil, decodeError(codes.Code(e.GetCode()), e.GetMessage(), e.GetKind())
	}
	return r, nil
}

// unexpectedResult is the error of a response of the wrong kind.
func unexpectedResult(r *pluginpb.CallResponse) error {
	return fmt.Errorf("plugin answered with an unexpected %T", r.GetResult())
}

// ---- the plugin side ----------------------------------------------------

// serveCalls serves a Calls stream: every call runs in its own goroutine
// through handle, with the deadline the host sent, until the host cancels
// it or the stream ends. It returns when the host ends the stream.
func serveCalls(stream callsServer, handle func(ctx context.Context, req *pluginpb.CallRequest) *pluginpb.CallResponse) error {
	ctx := stream.Context()
	var (
		callsMu sync.Mutex
		calls   = make(map[uint64]context.CancelFunc)
		sendMu  sync.Mutex // serialises Send; ended is under it
		ended   bool
	)
	defer func() {
		sendMu.Lock()
		ended = true
		sendMu.Unlock()
	}()
	for {
		req, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		id := req.GetId()
		if req.GetCancel() != nil {
			callsMu.Lock()
			if cancel := calls[id]; cancel != nil {
				cancel()
			}
			callsMu.Unlock()
			continue
		}
		var cctx context.Context
		var cancel context.CancelFunc
		if t := req.GetTimeoutNs(); t > 0 {
			cctx, cancel = context.WithTimeout(ctx, time.Duration(t))
		} else {
			cctx, cancel = context.WithCancel(ctx)
		}
		callsMu.Lock()
		calls[id] = cancel
		callsMu.Unlock()
		go func() {
			resp := handle(cctx, req)
			resp.Id = id
			callsMu.Lock()
			delete(calls, id)
			callsMu.Unlock()
			cancel()
			sendMu.Lock()
			defer sendMu.Unlock()
			if !ended {
				_ = stream.Send(resp) // fails only when the stream has ended
			}
		}()
	}
}

// callError is the CallResponse of a call that failed with err (a status
// error, as the unary methods return).
func callError(err error) *pluginpb.CallResponse {
	st := status.Convert(err)
	e := &pluginpb.CallError{Code: int32(st.Code()), Message: st.Message()}
	for _, d := range st.Details() {
		if ed, ok := d.(*pluginpb.ErrorDetail); ok {
			e.Kind = ed.GetKind()
			break
		}
	}
	return &pluginpb.CallResponse{Result: &pluginpb.CallResponse_Error{Error: e}}
}

// unsupportedCall is the response to a call the service does not serve.
func unsupportedCall(req *pluginpb.CallRequest) *pluginpb.CallResponse {
	return callError(status.Errorf(codes.Unimplemented, "call %T not served by this plugin", req.GetCall()))
}

// Calls serves the storage's Write and LookupCIDs calls on a stream.
func (s *storageServer) Calls(stream pluginpb.Storage_CallsServer) error {
	return serveCalls(stream, func(ctx context.Context, req *pluginpb.CallRequest) *pluginpb.CallResponse {
		switch c := req.GetCall().(type) {
		case *pluginpb.CallRequest_Write:
			r, err := s.Write(ctx, c.Write)
			if err != nil {
				return callError(err)
			}
			return &pluginpb.CallResponse{Result: &pluginpb.CallResponse_Write{Write: r}}
		case *pluginpb.CallRequest_LookupCids:
			r, err := s.LookupCIDs(ctx, c.LookupCids)
			if err != nil {
				return callError(err)
			}
			return &pluginpb.CallResponse{Result: &pluginpb.CallResponse_LookupCids{LookupCids: r}}
		}
		return unsupportedCall(req)
	})
}

// Calls serves the filter's Filter calls on a stream.
func (s *filterServer) Calls(stream pluginpb.Filter_CallsServer) error {
	return serveCalls(stream, func(ctx context.Context, req *pluginpb.CallRequest) *pluginpb.CallResponse {
		if c, ok := req.GetCall().(*pluginpb.CallRequest_Filter); ok {
			r, err := s.Filter(ctx, c.Filter)
			if err != nil {
				return callError(err)
			}
			return &pluginpb.CallResponse{Result: &pluginpb.CallResponse_Filter{Filter: r}}
		}
		return unsupportedCall(req)
	})
}
