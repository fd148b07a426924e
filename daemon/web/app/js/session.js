// A Session is a login that rides through lost connections, as the Go
// client's Session does (docs/client.md), with the same guarantees:
//
//  - reconnect after any disconnect, attempt n waiting a random time
//    between MIN_BACKOFF and min(MAX_BACKOFF, MIN_BACKOFF·2ⁿ) (after a
//    kicked shutdown: its retry_after_ms); right away on wake-up events;
//  - log in again by resume token (the password is kept in memory only
//    until the server issued a token, and never written anywhere);
//  - after each login: re-send unconfirmed acks, fetch the pending direct
//    messages with offline page by page (the next page only once the app
//    acked the previous one: acks are sent only for messages the app
//    rendered), catch up every group from the last seq seen with
//    group_sync, then the pushes held back meanwhile; each message once
//    (de-duplicated by msg_id), each group entry once (by group and seq);
//  - an outbox (store.js, IndexedDB) written before anything is sent,
//    sent one message at a time in order, each with its cid, again after
//    every reconnect until the server answers: a retry can never store a
//    message twice;
//  - an application heartbeat (a QQP ping every PING_EVERY; no answer in
//    PING_TIMEOUT ends the connection), since browsers hide WebSocket
//    pings and a socket may look open after a laptop slept.
//
// Events (CustomEvent, fields in detail): state {state, why, delay}, up
// {resumed, pending, first}, msg {msg}, entry {entry}, push {frame},
// groups {groups}, outbox {item, ok?}, token {token, expires}, ended
// {why, code}.

import { Conn, DisconnectedError, ProtocolError } from './conn.js';

export const MIN_BACKOFF = 500;
export const MAX_BACKOFF = 30000;
export const PING_EVERY = 25000;
export const PING_TIMEOUT = 10000;
export const WAKE_PING_TIMEOUT = 5000;
export const HELLO_TIMEOUT = 10000;
export const OFFLINE_PAGE = 100;
export const SYNC_PAGE = 500;
export const SEEN_IDS = 4096;

/** Login errors after which trying again cannot help. */
const FATAL = new Set(['auth_failed', 'no_credentials', 'bad_request', 'user_exists', 'registration_closed', 'already_logged_in', 'unknown_type']);

/** Send errors that are worth trying again with the same cid. */
const TRANSIENT = new Set(['rate_limited', 'unavailable']);

export function randomCID() {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return 'w' + Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

export class Session extends EventTarget {
  /**
   * url: the gateway's WebSocket URL; store: the outbox (store.js);
   * tabId: this tab's id (tabs.js), the owner of its outbox items.
   */
  constructor({ url, store, tabId }) {
    super();
    this.url = url;
    this.store = store;
    this.tabId = tabId;
    this.user = null;
    this.password = null;
    this.token = null;
    this.conn = null;
    this.features = [];
    this.state = 'idle';
    this.ended = false;
    this.presence = null;
    this._register = false;
    this._first = true;
    this._wakeup = null;
    this._attempt = 0;
    this._heartbeat = null;
    // Incoming: what was delivered and acked (see docs/client.md).
    this.catching = false;
    this._held = [];
    this._unacked = new Set();
    this._acking = new Set();
    this._recent = new Set();
    this._groupSeen = new Map();
    this._groupsListed = false;
    this._syncing = new Set();
    this._resync = new Set();
    // Outgoing.
    this.outbox = [];
    this._pumping = false;
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  _setState(state, extra) {
    this.state = state;
    this._emit('state', { state, ...extra });
  }

  /**
   * Starts the session. With a password ({user, password, register?}) the
   * first attempt's error rejects the returned promise and ends the
   * session (a login form shows it); with a token ({user, token}) it
   * resolves at once and the session keeps trying to connect, ending on
   * a refused token. Either way the session then reconnects by itself.
   */
  start({ user, password, token, register }) {
    this.user = user;
    this.password = password || null;
    this.token = token || null;
    this._register = !!register;
    if (this.password) {
      return new Promise((resolve, reject) => {
        this._run({ resolve, reject });
      });
    }
    this._run(null);
    return Promise.resolve();
  }

  async _run(first) {
    let hint = 0;
    for (;;) {
      if (this.ended) {
        return;
      }
      this._setState('connecting');
      let conn = null;
      let info;
      try {
        conn = await Conn.open(this.url, HELLO_TIMEOUT);
        if (this.ended) {
          conn.abort('session ended');
          return;
        }
        info = await this._login(conn);
      } catch (e) {
        if (conn) {
          conn.abort('login failed');
        }
        if (this.ended) {
          return;
        }
        const fatal = e instanceof ProtocolError && FATAL.has(e.code);
        if (first || fatal) {
          this._end(e.message, e.code || 'disconnected');
          if (first) {
            first.reject(e);
          }
          return;
        }
        hint = e instanceof ProtocolError ? e.retryAfter : 0;
        await this._backoff(hint, e.message);
        continue;
      }
      this._attempt = 0;
      hint = 0;
      this.conn = conn;
      conn.onpush = (f) => this._push(conn, f);
      this._setState('up');
      this._emit('up', { resumed: info.resumed, pending: info.pending, first: this._first });
      this._first = false;
      if (first) {
        first.resolve();
        first = null;
      }
      this._startHeartbeat(conn);
      this._catchUpRetrying(conn);
      const why = await conn.ended;
      this._stopHeartbeat();
      this.conn = null;
      this._stopCatchUp();
      if (this.ended) {
        return;
      }
      const k = why.kicked;
      if (k && k.reason === 'admin') {
        this._end(k.message || 'an operator ended the session', 'kicked');
        return;
      }
      if (k && k.reason === 'shutdown' && typeof k.retry_after_ms === 'number') {
        hint = k.retry_after_ms;
      }
      await this._backoff(hint, why.message);
    }
  }

  async _login(conn) {
    const feats = Array.isArray(conn.hello.features) ? conn.hello.features : [];
    this.features = feats;
    if (this._register) {
      await conn.request('register', { user: this.user, password: this.password });
      this._register = false;
    }
    if (this.token && feats.includes('resume')) {
      try {
        const ok = await conn.request('resume', { token: this.token, user: this.user });
        return { resumed: true, pending: ok.pending };
      } catch (e) {
        if (!(e instanceof ProtocolError) || e.code !== 'auth_failed') {
          throw e;
        }
        this._setToken(null);
        if (!this.password) {
          throw new ProtocolError({ code: 'auth_failed', message: 'your login has ended (expired or revoked): log in again' });
        }
      }
    }
    if (!this.password) {
      throw new ProtocolError({ code: 'no_credentials', message: 'log in again' });
    }
    const ok = await conn.request('login', { user: this.user, password: this.password, remember: true });
    if (typeof ok.token === 'string') {
      this._setToken(ok.token, ok.token_expires);
      // From now on the token logs in again: the password is dropped.
      this.password = null;
    }
    return { resumed: false, pending: ok.pending };
  }

  _setToken(token, expires) {
    this.token = token;
    this._emit('token', { token, expires: expires || 0 });
  }

  async _backoff(hint, why) {
    const n = this._attempt++;
    const cap = Math.min(MAX_BACKOFF, MIN_BACKOFF * 2 ** Math.min(n, 16));
    const delay = hint > 0 ? hint : MIN_BACKOFF + Math.random() * (cap - MIN_BACKOFF);
    this._setState('down', { why, delay });
    await new Promise((resolve) => {
      const t = setTimeout(done, delay);
      function done() {
        clearTimeout(t);
        resolve();
      }
      this._wakeup = done;
    });
    this._wakeup = null;
  }

  /**
   * Checks the connection after the page may have missed something: the
   * device woke up, the network came back, the page was shown again or
   * resumed from a freeze. A connected session pings (an answer within
   * WAKE_PING_TIMEOUT, or the connection is dropped and made again) and
   * then catches up; one waiting to reconnect tries at once.
   */
  wake() {
    if (this.ended) {
      return;
    }
    const conn = this.conn;
    if (!conn) {
      this._attempt = 0;
      if (this._wakeup) {
        this._wakeup();
      }
      return;
    }
    conn
      .request('ping', {}, WAKE_PING_TIMEOUT)
      .then(() => this._catchUpRetrying(conn))
      .catch(() => {});
  }

  /**
   * The browser says the network is gone: the connection cannot carry
   * anything now (it may not even notice for minutes), so it is dropped
   * and made again once the network is back (wake) or after the backoff.
   */
  offline() {
    if (this.conn) {
      this.conn.abort('the browser is offline');
    }
  }

  _startHeartbeat(conn) {
    this._stopHeartbeat();
    this._heartbeat = setInterval(() => {
      conn.request('ping', {}, PING_TIMEOUT).catch(() => {});
    }, PING_EVERY);
  }

  _stopHeartbeat() {
    clearInterval(this._heartbeat);
    this._heartbeat = null;
  }

  /** Any request on the current connection. */
  request(type, fields) {
    if (!this.conn) {
      return Promise.reject(new DisconnectedError());
    }
    return this.conn.request(type, fields || {});
  }

  // ---- incoming ---------------------------------------------------------

  _seen(id) {
    return this._unacked.has(id) || this._acking.has(id) || this._recent.has(id);
  }

  _remember(id) {
    this._recent.add(id);
    if (this._recent.size > SEEN_IDS) {
      this._recent.delete(this._recent.values().next().value);
    }
  }

  /**
   * Records that the app rendered the message msgId: the ack goes out on
   * the current connection, and again after each login until a server
   * confirmed it.
   */
  ack(msgId) {
    if (!this._unacked.delete(msgId) && this._acking.has(msgId)) {
      return;
    }
    this._acking.add(msgId);
    if (!this._ackQueued) {
      this._ackQueued = true;
      queueMicrotask(() => {
        this._ackQueued = false;
        if (this.conn && !this.catching) {
          this._flushAcks(this.conn).catch(() => {});
        }
      });
    }
  }

  async _flushAcks(conn) {
    if (this._acking.size === 0) {
      return;
    }
    const ids = [...this._acking].slice(0, 1000);
    await conn.request('ack', { msg_ids: ids });
    for (const id of ids) {
      if (this._acking.delete(id)) {
        this._remember(id);
      }
    }
    if (this._acking.size > 0) {
      await this._flushAcks(conn);
    }
  }

  _deliver(m) {
    if (typeof m.msg_id !== 'string' || this._seen(m.msg_id)) {
      return false;
    }
    this._unacked.add(m.msg_id);
    this._emit('msg', { msg: m });
    return true;
  }

  _push(conn, f) {
    if (conn !== this.conn) {
      return;
    }
    if (this.catching && (f.type === 'msg' || f.type === 'group_entry')) {
      this._held.push(f);
      return;
    }
    if (f.type === 'msg') {
      this._deliver(f);
    } else if (f.type === 'group_entry') {
      this._entry(conn, f, true);
    } else {
      this._emit('push', { frame: f });
    }
  }

  _entry(conn, e, pushed) {
    if (typeof e.group !== 'string' || typeof e.seq !== 'number') {
      return;
    }
    const seen = this._groupSeen.get(e.group);
    if (seen !== undefined && e.seq <= seen) {
      return;
    }
    if (pushed && seen !== undefined && e.seq > seen + 1) {
      // A gap: what came between was lost with an earlier connection
      // (or qqd restarted). group_sync fetches it, this entry included.
      this._sync(conn, e.group).catch(() => {});
      return;
    }
    this._groupSeen.set(e.group, e.seq);
    this._emit('entry', { entry: e });
  }

  /**
   * Notes an entry the session's own request made (its ok carries the
   * seq; the server does not push it to this connection).
   */
  ownEntry(group, seq) {
    const seen = this._groupSeen.get(group);
    if (seen === undefined || seq === seen + 1) {
      this._groupSeen.set(group, seq);
    }
  }

  /** Notes a group this session joined or created, from seq on. */
  joinedGroup(group, seq) {
    if (!this._groupSeen.has(group)) {
      this._groupSeen.set(group, seq);
    }
  }

  async _sync(conn, group, from) {
    if (this._syncing.has(group)) {
      // Entries pushed past a gap while a sync runs: sync again after it.
      this._resync.add(group);
      return;
    }
    this._syncing.add(group);
    try {
      let after = from !== undefined ? from : this._groupSeen.get(group) || 0;
      for (;;) {
        const r = await conn.request('group_sync', { group, after, limit: SYNC_PAGE });
        const entries = r.entries || [];
        for (const e of entries) {
          this._entry(conn, e, false);
          after = Math.max(after, e.seq);
        }
        if (r.more && entries.length > 0) {
          continue;
        }
        if (this._resync.delete(group)) {
          after = Math.max(after, this._groupSeen.get(group) || 0);
          continue;
        }
        break;
      }
    } finally {
      this._syncing.delete(group);
      this._resync.delete(group);
    }
  }

  async _catchUp(conn) {
    if (this.catching || conn !== this.conn) {
      return;
    }
    this.catching = true;
    this._held = [];
    try {
      await this._flushAcks(conn);
      for (;;) {
        const r = await conn.request('offline', { limit: OFFLINE_PAGE });
        const msgs = r.messages || [];
        for (const m of msgs) {
          if (!this._deliver(m) && this._recent.has(m.msg_id)) {
            // Acked and confirmed, yet pending: the ack went to a server
            // that lost it. Ack again.
            this._recent.delete(m.msg_id);
            this._acking.add(m.msg_id);
          }
        }
        await this._flushAcks(conn);
        if (!r.more || msgs.some((m) => this._unacked.has(m.msg_id))) {
          break;
        }
      }
      if (this.features.includes('groups')) {
        const r = await conn.request('groups', {});
        const groups = r.groups || [];
        this._emit('groups', { groups });
        for (const g of groups) {
          let after = this._groupSeen.get(g.group);
          if (after === undefined) {
            if (!this._groupsListed) {
              this._groupSeen.set(g.group, g.last_seq);
              continue;
            }
            after = g.read_seq;
          }
          if (g.last_seq > after) {
            try {
              await this._sync(conn, g.group, after);
            } catch (e) {
              if (e instanceof DisconnectedError) {
                throw e;
              }
              // left or dissolved meanwhile: nothing to catch up
            }
          }
        }
        this._groupsListed = true;
      }
      if (this.presence && this.features.includes('presence')) {
        await conn.request('presence', this.presence);
      }
    } finally {
      if (conn === this.conn) {
        const held = this._held;
        this.catching = false;
        this._held = [];
        for (const f of held) {
          this._push(conn, f);
        }
        if (this._acking.size > 0) {
          this._flushAcks(conn).catch(() => {});
        }
        this._pump();
      }
    }
  }

  /**
   * Catches up, and again after a growing wait while the server answers
   * with an error (unavailable: its storage is down); a lost connection
   * ends it (the next one catches up).
   */
  async _catchUpRetrying(conn) {
    for (let n = 0; conn === this.conn && !this.ended; n++) {
      try {
        await this._catchUp(conn);
        return;
      } catch (e) {
        if (!(e instanceof ProtocolError)) {
          return;
        }
      }
      await sleep(Math.min(MAX_BACKOFF, MIN_BACKOFF * 2 ** Math.min(n + 1, 16)));
    }
  }

  _stopCatchUp() {
    // Held pushes are still pending (messages) or come back with
    // group_sync (entries).
    this.catching = false;
    this._held = [];
  }

  /** Sets the user's presence now and again after every reconnect. */
  async setPresence(state, text) {
    this.presence = text === undefined ? { state } : { state, text };
    return this.request('presence', this.presence);
  }

  // ---- outgoing ---------------------------------------------------------

  /**
   * Loads the user's outbox: this tab's items and those of tabs that are
   * gone (alive: the ids of the tabs that answered a discovery). Returns
   * the items, pending and failed, for the app to show.
   */
  async loadOutbox(alive) {
    const items = await this.store.all(this.user);
    const mine = [];
    for (const it of items) {
      if (it.owner !== this.tabId && alive.has(it.owner)) {
        continue;
      }
      if (it.owner !== this.tabId) {
        it.owner = this.tabId;
        await this.store.put(it);
      }
      mine.push(it);
      if (it.state === 'pending') {
        this.outbox.push(it);
      }
    }
    this._pump();
    return mine;
  }

  /**
   * Queues a direct message (kind 'dm', target a user) or a group message
   * (kind 'group', target a group id, mentions an array). The item is in
   * the outbox (IndexedDB) before this resolves.
   */
  async send(kind, target, body, mentions) {
    const item = { cid: randomCID(), user: this.user, owner: this.tabId, kind, body, created: Date.now(), state: 'pending' };
    if (kind === 'dm') {
      item.to = target;
    } else {
      item.group = target;
      if (mentions && mentions.length) {
        item.mentions = mentions;
      }
    }
    await this.store.put(item);
    this.outbox.push(item);
    this._pump();
    return item;
  }

  /** Sends a refused message again, with its cid. */
  async retry(cid) {
    const item = await this.store.get(cid);
    if (!item || item.state !== 'failed' || this.outbox.some((i) => i.cid === cid)) {
      return null;
    }
    item.state = 'pending';
    delete item.error;
    item.owner = this.tabId;
    await this.store.put(item);
    this.outbox.push(item);
    this._pump();
    return item;
  }

  /** Forgets a refused message. */
  async discard(cid) {
    const item = await this.store.get(cid);
    if (item && item.state === 'failed') {
      await this.store.delete(cid);
    }
  }

  _pump() {
    if (this._pumping || !this.conn || this.catching || this.outbox.length === 0) {
      return;
    }
    this._pumping = true;
    this._pumpLoop().finally(() => {
      this._pumping = false;
      if (this.conn && !this.catching && this.outbox.length > 0) {
        this._pump();
      }
    });
  }

  async _pumpLoop() {
    let unavailable = 0;
    while (this.conn && !this.catching && this.outbox.length > 0 && !this.ended) {
      const conn = this.conn;
      const item = this.outbox[0];
      let ok;
      try {
        if (item.kind === 'dm') {
          ok = await conn.request('send', { to: item.to, body: item.body, cid: item.cid });
        } else {
          const f = { group: item.group, body: item.body, cid: item.cid };
          if (item.mentions) {
            f.mentions = item.mentions;
          }
          ok = await conn.request('group_send', f);
        }
      } catch (e) {
        if (!(e instanceof ProtocolError)) {
          return; // disconnected: sent again after the next login
        }
        if (TRANSIENT.has(e.code)) {
          const wait = e.code === 'rate_limited' ? e.retryAfter || 1000 : Math.min(MAX_BACKOFF, MIN_BACKOFF * 2 ** unavailable++);
          await sleep(wait);
          continue;
        }
        this.outbox.shift();
        item.state = 'failed';
        item.error = { code: e.code, message: e.message };
        if (!this.ended) {
          await this.store.put(item);
        }
        this._emit('outbox', { item });
        continue;
      }
      unavailable = 0;
      this.outbox.shift();
      item.state = 'sent';
      if (item.kind === 'group' && typeof ok.seq === 'number') {
        this.ownEntry(item.group, ok.seq);
      }
      await this.store.delete(item.cid);
      this._emit('outbox', { item, ok });
    }
  }

  // ---- ending -----------------------------------------------------------

  /**
   * Logs out: the server revokes the resume token and closes the
   * connection. Without a connection, one is made for it (by token).
   * Resolves with whether the server revoked the token (false: it could
   * not be reached; the browser forgets the token all the same, and the
   * server lets it expire). A logout the server refused (unavailable:
   * it could not revoke) throws, and the session stays.
   */
  async logout() {
    let conn = this.conn;
    let own = false;
    let revoked = true;
    try {
      if (!conn && this.token) {
        conn = await Conn.open(this.url, HELLO_TIMEOUT);
        own = true;
        await conn.request('resume', { token: this.token, user: this.user });
      }
      if (conn) {
        await conn.request('logout', {}, 10000);
      }
    } catch (e) {
      if (e instanceof ProtocolError && e.code === 'unavailable') {
        if (own) {
          conn.abort('logout failed');
        }
        throw e;
      }
      // auth_failed: the token was revoked already. Disconnected: the
      // logout may or may not have reached the server.
      revoked = e instanceof ProtocolError;
    }
    if (own && conn) {
      conn.abort('logged out');
    }
    this._setToken(null);
    this._end('logged out', 'logout');
    return revoked;
  }

  /** Ends the session without logging out (the token stays valid). */
  close(why) {
    this._end(why || 'closed', 'closed');
  }

  _end(why, code) {
    if (this.ended) {
      return;
    }
    this.ended = true;
    this._stopHeartbeat();
    if (this._wakeup) {
      this._wakeup();
    }
    if (this.conn) {
      this.conn.abort(why);
      this.conn = null;
    }
    this.password = null;
    this._setState('ended', { why });
    this._emit('ended', { why, code });
  }
}
