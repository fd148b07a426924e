// One WebSocket to qqd's gateway: each text message is one QQP/1 frame
// (docs/protocol.md). A Conn matches replies to requests by their string
// id, hands pushes to onpush, and ends once: when the socket closes, when
// the server kicks it, or when the session aborts it (a heartbeat that got
// no answer). An ended Conn is never reused.

/** A QQP/1 error reply, as an Error: code, message, retry_after_ms. */
export class ProtocolError extends Error {
  constructor(frame) {
    super(frame.message || frame.code);
    this.name = 'ProtocolError';
    this.code = frame.code;
    this.retryAfter = typeof frame.retry_after_ms === 'number' ? frame.retry_after_ms : 0;
  }
}

/** The connection ended before the reply came: the outcome is unknown. */
export class DisconnectedError extends Error {
  constructor(why) {
    super(why || 'not connected');
    this.name = 'DisconnectedError';
  }
}

export class Conn {
  /**
   * Opens a WebSocket to url and waits for the server's hello (at most
   * timeoutMs). Resolves with the Conn; rejects with a DisconnectedError,
   * or with a ProtocolError-like {kicked} when the server refused the
   * connection (a kicked push instead of the hello).
   */
  static open(url, timeoutMs) {
    return new Promise((resolve, reject) => {
      const c = new Conn(url);
      const timer = setTimeout(() => {
        c.abort('no hello from the server');
      }, timeoutMs);
      c.ended.then((why) => {
        clearTimeout(timer);
        reject(new DisconnectedError(why.message));
      });
      c.onhello = (hello) => {
        clearTimeout(timer);
        resolve(c);
      };
    });
  }

  constructor(url) {
    this.hello = null;
    this.onhello = null;
    this.onpush = null;
    this.kicked = null;
    this.lastFrameAt = 0;
    this._next = 1;
    this._pending = new Map();
    this._done = false;
    this.ended = new Promise((resolve) => {
      this._resolveEnded = resolve;
    });
    const ws = new WebSocket(url);
    this._ws = ws;
    ws.onmessage = (ev) => this._frame(ev.data);
    ws.onclose = (ev) => this._end(ev.code === 1000 || ev.code === 1005 ? 'the server closed the connection' : `connection closed (${ev.code}${ev.reason ? ': ' + ev.reason : ''})`);
    ws.onerror = () => this._end('cannot reach the server');
  }

  get open() {
    return !this._done;
  }

  _frame(data) {
    if (this._done || typeof data !== 'string') {
      return;
    }
    this.lastFrameAt = Date.now();
    let f;
    try {
      f = JSON.parse(data);
    } catch {
      return;
    }
    if (f === null || typeof f !== 'object' || typeof f.type !== 'string') {
      return;
    }
    if (!this.hello) {
      if (f.type === 'hello') {
        if (f.proto !== 1) {
          this.abort(`the server speaks protocol ${f.proto}, not 1`);
          return;
        }
        this.hello = f;
        if (this.onhello) {
          this.onhello(f);
        }
        return;
      }
      if (f.type === 'kicked') {
        this.kicked = f;
        this._end(f.message || f.reason);
        return;
      }
    }
    if ((f.type === 'ok' || f.type === 'error') && typeof f.id === 'string' && this._pending.has(f.id)) {
      const p = this._pending.get(f.id);
      this._pending.delete(f.id);
      clearTimeout(p.timer);
      if (f.type === 'ok') {
        p.resolve(f);
      } else {
        p.reject(new ProtocolError(f));
      }
      return;
    }
    if (f.type === 'kicked') {
      this.kicked = f;
      if (this.onpush) {
        this.onpush(f);
      }
      this._end(f.message || f.reason);
      return;
    }
    if (f.type !== 'ok' && f.type !== 'error' && this.onpush) {
      this.onpush(f);
    }
  }

  /**
   * Sends one request and resolves with its ok frame, or rejects with a
   * ProtocolError (an error reply) or a DisconnectedError (the connection
   * ended first). A request without a reply within timeoutMs aborts the
   * connection: a socket that stays silent that long is dead or wedged,
   * and every request on it is unanswered anyway.
   */
  request(type, fields, timeoutMs = 20000) {
    if (this._done) {
      return Promise.reject(new DisconnectedError());
    }
    const id = String(this._next++);
    const frame = Object.assign({ type, id }, fields);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.abort(`no answer to ${type} within ${Math.round(timeoutMs / 1000)} s`), timeoutMs);
      this._pending.set(id, { resolve, reject, timer });
      try {
        this._ws.send(JSON.stringify(frame));
      } catch (e) {
        this.abort('cannot write to the connection');
      }
    });
  }

  /** Ends the connection now, without waiting for the socket to close. */
  abort(why) {
    this._end(why || 'closed');
  }

  _end(why) {
    if (this._done) {
      return;
    }
    this._done = true;
    for (const p of this._pending.values()) {
      clearTimeout(p.timer);
      p.reject(new DisconnectedError(why));
    }
    this._pending.clear();
    const ws = this._ws;
    ws.onmessage = ws.onclose = ws.onerror = null;
    try {
      ws.close(1000);
    } catch {
      // already closing
    }
    this._resolveEnded({ message: why, kicked: this.kicked });
  }
}
