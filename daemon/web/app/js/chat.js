// The logged-in app: the lists (friends with presence, other chats,
// groups with unread and @mention badges, friend requests), the open
// conversation (history paged as one scrolls up, delivery state per
// message, typing), unread counts in the title shared by the tabs,
// desktop notifications while the page is hidden.
//
// Everything from the network is put into the document with textContent
// or as elements built here (text.js); nothing is parsed as HTML.

import { Composer } from './compose.js';
import { appendText, formatTime, mentionsIn } from './text.js';
import { DisconnectedError } from './conn.js';

const HISTORY_PAGE = 50;
const TYPING_SHOWN_MS = 7000;
const PRESENCE_RANK = { online: 0, busy: 1, away: 2, offline: 3 };
const PRESENCE_LABEL = { online: 'online', away: 'away', busy: 'busy', offline: 'offline', invisible: 'invisible' };

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) {
    e.className = cls;
  }
  if (text !== undefined) {
    e.textContent = text;
  }
  return e;
}

function button(text, cls, label) {
  const b = el('button', cls, text);
  b.type = 'button';
  if (label) {
    b.setAttribute('aria-label', label);
  }
  return b;
}

function describe(err) {
  if (err instanceof DisconnectedError) {
    return 'Not connected: try again once reconnected.';
  }
  return err && err.message ? err.message : String(err);
}

export class Chat {
  constructor({ session, tabs, me, dom }) {
    this.session = session;
    this.tabs = tabs;
    this.me = me;
    this.d = dom;
    this.friends = new Map();
    this.incoming = [];
    this.outgoing = [];
    this.groups = new Map();
    this.convs = new Map();
    this.active = null;
    this.typing = new Map();
    this._socialLogs = new Set();
    this._entryLogs = new Set();
    this.counter = 0;
    this.peers = new Set(this._load('peers') || []);
    this.baseTitle = document.title.replace(/^\(\d+\) /, '');
    this.disposers = [];

    this.composer = new Composer(dom.composerText, {
      onsend: (text) => this.sendText(text),
      ontyping: (state) => this._typing(state),
    });
    this._on(dom.composer, 'submit', (e) => {
      e.preventDefault();
      this.composer.submit();
      dom.composerText.focus();
    });
    this._on(dom.messages, 'scroll', () => {
      if (dom.messages.scrollTop < 40) {
        const c = this.activeConv();
        if (c && c.more && !c.loading) {
          this.loadHistory(c, true);
        }
      }
    });
    this._on(dom.olderButton, 'click', () => {
      const c = this.activeConv();
      if (c) {
        this.loadHistory(c, true);
      }
    });
    this._on(dom.backButton, 'click', () => this.close());
    this._on(document, 'keydown', (e) => {
      if (e.key === 'Escape' && this.active && document.body.classList.contains('in-conv')) {
        this.close();
      }
    });
    this._tablist();
    this._forms();
    this._on(dom.presence, 'change', () => {
      const state = dom.presence.value;
      this.session.setPresence(state).catch(() => {});
      this.tabs.post({ type: 'presence-self', user: this.me, state });
    });
    this._on(document, 'visibilitychange', () => {
      if (document.visibilityState === 'visible') {
        this.markRead(this.activeConv());
      }
    });
    this._notifications();
    // Unread direct messages live in localStorage, shared by the tabs: the
    // storage event tells this tab when another one changed them (it
    // fires once the change is visible here, unlike a message).
    this._on(window, 'storage', (e) => {
      if (e.key === null || e.key.startsWith(`qq:${this.me}:`)) {
        for (const p of this._load('peers') || []) {
          this.peers.add(p);
        }
        this.renderLists();
        this.refreshCounts();
      }
    });

    dom.me.textContent = me;
    dom.presence.value = 'online';
    this.renderLists();
    this.refreshCounts();
  }

  _on(target, type, fn) {
    target.addEventListener(type, fn);
    this.disposers.push(() => target.removeEventListener(type, fn));
  }

  /** Removes what this Chat added to the page (logout). */
  dispose() {
    this.composer.stopTyping();
    for (const d of this.disposers) {
      d();
    }
    for (const c of this.convs.values()) {
      c.el.remove();
    }
    for (const m of this.typing.values()) {
      for (const t of m.values()) {
        clearTimeout(t);
      }
    }
    document.title = this.baseTitle;
    document.body.classList.remove('in-conv');
  }

  // ---- storage of small per-user state (no secrets) ---------------------

  _key(name) {
    return `qq:${this.me}:${name}`;
  }

  _load(name) {
    try {
      return JSON.parse(localStorage.getItem(this._key(name)) || 'null');
    } catch {
      return null;
    }
  }

  _save(name, v) {
    try {
      if (v === null) {
        localStorage.removeItem(this._key(name));
      } else {
        localStorage.setItem(this._key(name), JSON.stringify(v));
      }
    } catch {
      // storage full or disabled: counts stay in this tab only
    }
  }

  dmUnread(peer) {
    const ids = this._load('unread:' + peer);
    return Array.isArray(ids) ? ids : [];
  }

  _addUnread(peer, id) {
    const ids = this.dmUnread(peer);
    if (!ids.includes(id)) {
      ids.push(id);
      this._save('unread:' + peer, ids.slice(-999));
    }
  }

  _clearUnread(peer) {
    if (this.dmUnread(peer).length > 0) {
      this._save('unread:' + peer, null);
    }
  }

  // ---- conversations ----------------------------------------------------

  conv(key) {
    let c = this.convs.get(key);
    if (c) {
      return c;
    }
    const kind = key.startsWith('g:') ? 'group' : 'dm';
    const id = key.slice(2);
    const list = el('ol', 'log');
    list.setAttribute('role', 'log');
    list.setAttribute('aria-label', kind === 'dm' ? `Messages with ${id}` : `Messages in ${this.groupName(id)}`);
    list.hidden = true;
    this.d.messages.append(list);
    c = { key, kind, id, items: [], byKey: new Map(), el: list, history: 'none', more: false, loading: false, activity: 0 };
    this.convs.set(key, c);
    if (kind === 'dm' && !this.peers.has(id)) {
      this.peers.add(id);
      this._save('peers', [...this.peers].slice(-200));
    }
    return c;
  }

  groupName(id) {
    const g = this.groups.get(id);
    return g ? g.name : `group ${id}`;
  }

  activeConv() {
    return this.active ? this.convs.get(this.active) || null : null;
  }

  /** Shows conversation key ('u:name' or 'g:id'). */
  open(key) {
    if (this.active && this.active !== key) {
      this.composer.stopTyping();
    }
    const c = this.conv(key);
    this.active = key;
    try {
      sessionStorage.setItem('qq:active', key);
    } catch {
      // storage disabled
    }
    for (const o of this.convs.values()) {
      o.el.hidden = o !== c;
    }
    document.body.classList.add('in-conv');
    this.d.empty.hidden = true;
    this.d.convHead.hidden = false;
    this.d.composer.hidden = false;
    this.d.composerText.setAttribute('aria-label', c.kind === 'dm' ? `Message to ${c.id}` : `Message to ${this.groupName(c.id)}`);
    this._head();
    this._typingLine();
    this.updateOlder();
    this.scrollToEnd();
    if (c.history === 'none') {
      this.loadHistory(c, false);
    }
    this.markRead(c);
    this.renderLists();
    this.d.composerText.focus();
  }

  /** Back to the lists (phone layout, Escape). */
  close() {
    this.composer.stopTyping();
    this.active = null;
    try {
      sessionStorage.removeItem('qq:active');
    } catch {
      // storage disabled
    }
    document.body.classList.remove('in-conv');
    for (const o of this.convs.values()) {
      o.el.hidden = true;
    }
    this.d.empty.hidden = false;
    this.d.convHead.hidden = true;
    this.d.composer.hidden = true;
    this.d.typing.textContent = '';
    this.d.olderButton.hidden = true;
    this.renderLists();
    const row = this.d.sidebar.querySelector('button.row');
    if (row) {
      row.focus();
    }
  }

  _head() {
    const c = this.activeConv();
    if (!c) {
      return;
    }
    if (c.kind === 'dm') {
      this.d.convTitle.textContent = c.id;
      const f = this.friends.get(c.id);
      let sub = f ? PRESENCE_LABEL[f.presence] || f.presence : 'not a friend';
      if (f && f.text) {
        sub += ' — ' + f.text;
      }
      this.d.convSub.textContent = sub;
      this.d.convDot.className = 'dot ' + (f ? f.presence : 'none');
      this.d.convDot.hidden = !f;
    } else {
      const g = this.groups.get(c.id);
      this.d.convTitle.textContent = this.groupName(c.id);
      this.d.convSub.textContent = g ? `group ${c.id} · ${g.members} member${g.members === 1 ? '' : 's'}` : `group ${c.id} · not a member`;
      this.d.convDot.hidden = true;
    }
  }

  markRead(c) {
    if (!c || this.active !== c.key || document.visibilityState !== 'visible') {
      return;
    }
    if (c.kind === 'dm') {
      this._clearUnread(c.id);
    } else {
      this.ackGroup(c.id);
    }
    this.refreshCounts();
  }

  ackGroup(id) {
    const g = this.groups.get(id);
    if (!g || (g.unread === 0 && g.mentions === 0 && g.read_seq >= g.last_seq)) {
      return;
    }
    const seq = g.last_seq;
    g.unread = 0;
    g.mentions = 0;
    g.read_seq = Math.max(g.read_seq, seq);
    this.session.request('group_ack', { group: id, seq }).catch(() => {});
    this.tabs.post({ type: 'gread', user: this.me, group: id, seq });
    this.renderLists();
  }

  nearBottom() {
    const m = this.d.messages;
    return m.scrollHeight - m.scrollTop - m.clientHeight < 80;
  }

  scrollToEnd() {
    const m = this.d.messages;
    m.scrollTop = m.scrollHeight;
  }

  updateOlder() {
    const c = this.activeConv();
    this.d.olderButton.hidden = !c || !c.more;
    this.d.olderButton.disabled = !!(c && c.loading);
  }

  /** Loads the newest page of history, or (older) the page before. */
  async loadHistory(c, older) {
    if (c.loading || (older && !c.more)) {
      return;
    }
    c.loading = true;
    this.updateOlder();
    const m = this.d.messages;
    const before = m.scrollHeight - m.scrollTop;
    const wasAtEnd = this.nearBottom();
    try {
      let r;
      if (c.kind === 'dm') {
        const f = { with: c.id, limit: HISTORY_PAGE };
        if (older) {
          const first = c.items.find((i) => i.msgId);
          if (first) {
            f.before = first.msgId;
          }
        }
        r = await this.session.request('history', f);
        for (const msg of r.messages || []) {
          this.addMessage(c, msg, true);
        }
      } else {
        const f = { group: c.id, limit: HISTORY_PAGE };
        if (older) {
          const first = c.items.find((i) => i.seq !== undefined);
          if (first) {
            f.before = first.seq;
          }
        }
        r = await this.session.request('group_history', f);
        for (const e of r.entries || []) {
          this.addEntry(c, e, true);
        }
      }
      c.more = !!r.more;
      c.history = 'loaded';
    } catch (e) {
      if (c.history === 'none') {
        c.history = e instanceof DisconnectedError ? 'none' : 'failed';
      }
      this._system(c, `Could not load the history: ${describe(e)}`);
    } finally {
      c.loading = false;
      if (this.active === c.key) {
        if (older) {
          m.scrollTop = m.scrollHeight - before;
        } else if (wasAtEnd) {
          this.scrollToEnd();
        }
        this.updateOlder();
      }
    }
  }

  _system(c, text) {
    const li = el('li', 'system', text);
    li.setAttribute('role', 'note');
    c.el.append(li);
    setTimeout(() => li.remove(), 8000);
  }

  // ---- items ------------------------------------------------------------

  /** Puts item into c in order (group: seq; direct: ts; pending last). */
  _insert(c, item) {
    item.n = ++this.counter;
    const key = (i) => (i.pending ? [Infinity, i.n] : [c.kind === 'group' ? i.seq : i.ts, i.n]);
    const k = key(item);
    let idx = c.items.length;
    while (idx > 0) {
      const p = key(c.items[idx - 1]);
      if (p[0] <= k[0]) {
        break;
      }
      idx--;
    }
    c.items.splice(idx, 0, item);
    c.byKey.set(item.key, item);
    const next = c.items[idx + 1];
    c.el.insertBefore(item.el, next ? next.el : null);
    if (!item.pending) {
      c.activity = Math.max(c.activity, item.ts || 0);
    }
  }

  _remove(c, item) {
    const i = c.items.indexOf(item);
    if (i >= 0) {
      c.items.splice(i, 1);
    }
    c.byKey.delete(item.key);
    item.el.remove();
  }

  _msgEl(item) {
    const li = el('li', 'msg ' + (item.mine ? 'mine' : 'theirs'));
    if (item.msgId) {
      li.dataset.id = item.msgId;
    }
    if (item.cid) {
      li.dataset.cid = item.cid;
    }
    if (item.seq !== undefined) {
      li.dataset.seq = String(item.seq);
    }
    const meta = el('div', 'meta');
    meta.append(el('span', 'from', item.mine ? 'You' : item.from));
    const time = el('time', 'time');
    meta.append(time);
    li.append(meta);
    const body = el('div', 'body');
    appendText(body, item.body);
    li.append(body);
    if (item.mentionsMe) {
      li.classList.add('mention');
    }
    item.el = li;
    item.timeEl = time;
    this._state(item);
    return li;
  }

  /** Shows item's time and, for the user's own messages, delivery state. */
  _state(item) {
    const li = item.el;
    if (item.ts) {
      item.timeEl.textContent = formatTime(item.ts);
      item.timeEl.dateTime = new Date(item.ts).toISOString();
    }
    li.dataset.state = item.state;
    let st = li.querySelector('.state');
    if (!item.mine) {
      return;
    }
    if (!st) {
      st = el('div', 'state');
      li.append(st);
    }
    st.replaceChildren();
    if (item.state === 'sending') {
      st.append(el('span', null, 'Sending…'));
    } else if (item.state === 'sent') {
      const ok = el('span', 'sent', '✓');
      ok.setAttribute('aria-hidden', 'true');
      st.append(ok, el('span', 'visually-hidden', 'Sent'));
    } else if (item.state === 'failed') {
      st.append(el('span', 'error', `Not sent: ${item.error || 'refused'}`));
      const retry = button('Retry', 'link', 'Retry sending this message');
      retry.addEventListener('click', () => this.retry(item));
      const discard = button('Discard', 'link', 'Discard this message');
      discard.addEventListener('click', () => this.discard(item));
      st.append(' ', retry, ' ', discard);
    }
  }

  /** A direct message: from a push, offline, history or the user's own send. */
  addMessage(c, m, fromHistory) {
    const existing = c.byKey.get(m.msg_id);
    if (existing) {
      return existing;
    }
    const mine = m.from === this.me;
    const item = { key: m.msg_id, msgId: m.msg_id, from: m.from, body: m.body, ts: m.ts, mine, state: mine ? 'sent' : 'received', fromHistory };
    this._msgEl(item);
    this._insert(c, item);
    return item;
  }

  /** A group entry: a message or a change of the group, shown as a line. */
  addEntry(c, e, fromHistory) {
    const key = 's:' + e.seq;
    const existing = c.byKey.get(key);
    if (existing) {
      return existing;
    }
    let item;
    if (e.kind === 'msg') {
      const mine = e.from === this.me;
      const mentions = Array.isArray(e.mentions) ? e.mentions : [];
      item = { key, seq: e.seq, msgId: e.msg_id, from: e.from, body: e.body, ts: e.ts, mine, state: mine ? 'sent' : 'received', mentionsMe: !mine && (mentions.includes(this.me) || mentions.includes('all')), fromHistory };
      this._msgEl(item);
    } else {
      item = { key, seq: e.seq, ts: e.ts, event: true, fromHistory };
      const li = el('li', 'event', this._entryText(e));
      li.dataset.seq = String(e.seq);
      item.el = li;
    }
    this._insert(c, item);
    return item;
  }

  _entryText(e) {
    const who = (u) => (u === this.me ? 'you' : u);
    switch (e.kind) {
      case 'created':
        return `${who(e.actor)} created the group “${e.name}”`;
      case 'joined':
        return e.actor && e.actor !== e.target ? `${who(e.target)} joined (added by ${who(e.actor)})` : `${who(e.target)} joined`;
      case 'left':
        return `${who(e.target)} left`;
      case 'kicked':
        return `${who(e.actor)} removed ${who(e.target)}`;
      case 'role':
        return `${who(e.actor)} made ${who(e.target)} ${e.role === 'admin' ? 'an admin' : 'a member'}`;
      case 'owner':
        return `${who(e.actor)} passed ownership to ${who(e.target)}`;
      case 'renamed':
        return `${who(e.actor)} renamed the group to “${e.name}”`;
      case 'muted':
        return e.until ? `${who(e.actor)} muted ${who(e.target)} until ${formatTime(e.until)}` : `${who(e.actor)} unmuted ${who(e.target)}`;
      case 'mute_all':
        return e.on ? `${who(e.actor)} muted everyone but the admins` : `${who(e.actor)} unmuted everyone`;
      case 'settings':
        return `${who(e.actor)} changed the group's settings`;
      case 'dissolved':
        return `${who(e.actor)} dissolved the group`;
      default:
        return `(${e.kind})`;
    }
  }

  /** Shows an outbox item (pending or refused) at the end of its conversation. */
  showOutboxItem(it) {
    const c = this.conv(it.kind === 'dm' ? 'u:' + it.to : 'g:' + it.group);
    const key = 'c:' + it.cid;
    let item = c.byKey.get(key);
    const state = it.state === 'failed' ? 'failed' : 'sending';
    if (item) {
      item.state = state;
      item.error = it.error ? it.error.message : undefined;
      this._state(item);
      return item;
    }
    item = { key, cid: it.cid, from: this.me, body: it.body, mine: true, pending: true, state, error: it.error ? it.error.message : undefined };
    this._msgEl(item);
    this._insert(c, item);
    return item;
  }

  // ---- sending ------------------------------------------------------------

  async sendText(text) {
    const c = this.activeConv();
    if (!c) {
      return;
    }
    try {
      let it;
      if (c.kind === 'dm') {
        it = await this.session.send('dm', c.id, text);
      } else {
        const g = this.groups.get(c.id);
        const admin = g && (g.role === 'admin' || g.role === 'owner');
        const mentions = mentionsIn(text).filter((n) => n !== this.me && (n !== 'all' || admin));
        it = await this.session.send('group', c.id, text, mentions);
      }
      if (it.state !== 'sent') {
        this.showOutboxItem(it);
      }
      this.bump(c);
      this.scrollToEnd();
    } catch (e) {
      this._system(c, `Could not queue the message: ${describe(e)}`);
    }
  }

  async retry(item) {
    const it = await this.session.retry(item.cid);
    if (it) {
      this.showOutboxItem(it);
    }
  }

  async discard(item) {
    await this.session.discard(item.cid);
    for (const c of this.convs.values()) {
      if (c.byKey.get(item.key) === item) {
        this._remove(c, item);
      }
    }
  }

  /** An outbox event of the session: a send confirmed or refused. */
  onOutbox({ item: it, ok }) {
    const c = this.conv(it.kind === 'dm' ? 'u:' + it.to : 'g:' + it.group);
    if (it.state === 'failed') {
      this.showOutboxItem(it);
      return;
    }
    const pending = c.byKey.get('c:' + it.cid);
    const body = typeof ok.body === 'string' ? ok.body : it.body;
    let done;
    if (it.kind === 'dm') {
      const msg = { msg_id: ok.msg_id, from: this.me, to: it.to, body, ts: ok.ts };
      done = c.byKey.get(ok.msg_id);
      if (!done) {
        done = this.addMessage(c, msg, false);
      }
      this.tabs.post({ type: 'dm-sent', user: this.me, msg });
    } else {
      const e = { group: it.group, seq: ok.seq, kind: 'msg', ts: ok.ts, msg_id: ok.msg_id, from: this.me, body, mentions: it.mentions };
      done = this.addEntry(c, e, false);
      const g = this.groups.get(it.group);
      if (g) {
        g.last_seq = Math.max(g.last_seq, ok.seq);
        g.read_seq = Math.max(g.read_seq, ok.seq);
        g.unread = 0;
        g.mentions = 0;
      }
    }
    done.mine = true;
    done.cid = it.cid;
    done.el.dataset.cid = it.cid;
    done.state = 'sent';
    this._state(done);
    if (pending) {
      this._remove(c, pending);
    }
    this.bump(c);
    if (this.active === c.key && this.nearBottom()) {
      this.scrollToEnd();
    }
    this.renderLists();
  }

  bump(c) {
    c.activity = Math.max(c.activity, Date.now());
  }

  // ---- incoming -------------------------------------------------------------

  /** A direct message delivered by the session: render it, then ack it. */
  onMsg(m) {
    const peer = m.from === this.me ? m.to : m.from;
    const c = this.conv('u:' + peer);
    const atEnd = this.active === c.key && this.nearBottom();
    const had = c.byKey.has(m.msg_id);
    this.addMessage(c, m, false);
    // Rendered: now, and only now, it may be acked.
    this.session.ack(m.msg_id);
    if (had || m.from === this.me) {
      return;
    }
    this.bump(c);
    this._typingDone('u:' + peer, m.from);
    if (this.active === c.key && document.visibilityState === 'visible') {
      if (atEnd) {
        this.scrollToEnd();
      }
    } else {
      this._addUnread(peer, m.msg_id);
      this.notify(m.from, m.body, m.msg_id, c.key);
    }
    this.renderLists();
    this.refreshCounts();
  }

  /** A group entry delivered by the session (push or catch-up). */
  onEntry(e) {
    const c = this.conv('g:' + e.group);
    const atEnd = this.active === c.key && this.nearBottom();
    const had = c.byKey.has('s:' + e.seq);
    const item = this.addEntry(c, e, false);
    if (had) {
      return;
    }
    for (const log of this._entryLogs) {
      log.push(e);
    }
    this._countEntry(e);
    if (e.kind === 'msg') {
      this._typingDone(c.key, e.from);
      this.bump(c);
    }
    if (this.active === c.key && document.visibilityState === 'visible') {
      this.markRead(c);
      if (atEnd) {
        this.scrollToEnd();
      }
    } else if (item.mentionsMe) {
      this.notify(`${e.from} in ${this.groupName(e.group)}`, e.body, `g${e.group}:${e.seq}`, c.key);
    }
    if (this.active === c.key) {
      this._head();
    }
    this.renderLists();
    this.refreshCounts();
  }

  /**
   * Counts entry e into its group's listing: unread, mentions, members,
   * name. A listing counts everything up to its last_seq (a catch-up
   * after a reconnect brings those entries again), so only entries past
   * it change anything.
   */
  _countEntry(e) {
    const g = this.groups.get(e.group);
    if (!g) {
      if (e.kind === 'joined' && e.target === this.me) {
        this.refreshGroups(); // invited, or approved
      }
      return;
    }
    if (e.seq <= g.last_seq) {
      return;
    }
    g.last_seq = e.seq;
    if (e.kind === 'msg' && e.from === this.me) {
      g.read_seq = e.seq;
      g.unread = 0;
      g.mentions = 0;
    } else if (e.seq > g.read_seq) {
      g.unread++;
      const m = e.kind === 'msg' && Array.isArray(e.mentions) ? e.mentions : [];
      if (m.includes(this.me) || m.includes('all')) {
        g.mentions++;
      }
    }
    if (e.kind === 'joined') {
      g.members++;
    } else if (e.kind === 'left' || e.kind === 'kicked') {
      g.members = Math.max(0, g.members - 1);
    } else if (e.kind === 'renamed') {
      g.name = e.name;
    }
    if (((e.kind === 'left' || e.kind === 'kicked') && e.target === this.me) || e.kind === 'dissolved') {
      this.groups.delete(e.group);
    }
  }

  /**
   * A groups listing: after each login (the session holds pushes back
   * meanwhile), or asked for by refreshGroups with log, the entries
   * pushed while it was on its way, counted again on top of it.
   */
  onGroups(list, log) {
    const fresh = new Map();
    for (const g of list) {
      fresh.set(g.group, { ...g });
    }
    this.groups = fresh;
    for (const e of log || []) {
      this._countEntry(e);
    }
    const c = this.activeConv();
    if (c && c.kind === 'group') {
      this.markRead(c);
      this._head();
    }
    this.renderLists();
    this.refreshCounts();
  }

  async refreshGroups() {
    const log = [];
    this._entryLogs.add(log);
    let r;
    try {
      r = await this.session.request('groups', {});
    } catch {
      return; // the next login lists them again
    } finally {
      this._entryLogs.delete(log);
    }
    this.onGroups(r.groups || [], log);
  }

  async refreshFriends() {
    // The listing is a snapshot taken at some moment before its reply
    // comes; pushes that arrive meanwhile may be newer: they are applied
    // again on top of it (an older one changes nothing the snapshot does
    // not already say).
    const log = [];
    this._socialLogs.add(log);
    try {
      const r = await this.session.request('friends', {});
      this.friends = new Map((r.friends || []).map((f) => [f.user, f]));
      this.incoming = r.incoming || [];
      this.outgoing = r.outgoing || [];
    } catch {
      return;
    } finally {
      this._socialLogs.delete(log);
    }
    for (const f of log) {
      this._social(f);
    }
    this._head();
    this.renderLists();
  }

  /** After each login: lists again; the open conversation's newest page. */
  onUp() {
    if (this.session.features.includes('friends')) {
      this.refreshFriends();
    }
    const c = this.activeConv();
    if (c && c.history !== 'none') {
      // Messages sent from the user's other devices are not pushed here:
      // the newest page brings them.
      const m = this.d.messages;
      const atEnd = this.nearBottom();
      const req = c.kind === 'dm' ? this.session.request('history', { with: c.id, limit: HISTORY_PAGE }) : this.session.request('group_history', { group: c.id, limit: HISTORY_PAGE });
      req
        .then((r) => {
          for (const x of r.messages || []) {
            this.addMessage(c, x, true);
          }
          for (const x of r.entries || []) {
            this.addEntry(c, x, true);
          }
          if (atEnd && this.active === c.key) {
            m.scrollTop = m.scrollHeight;
          }
        })
        .catch(() => {});
    } else if (c && c.history === 'none') {
      this.loadHistory(c, false);
    }
  }

  /** Other pushes: friends, presence, typing, notices, join requests. */
  onPush(f) {
    if (f.type === 'typing') {
      this._typingPush(f);
      return;
    }
    if (f.type === 'group_join_request') {
      this._joinRequest(f);
      return;
    }
    if (!this._social(f)) {
      return;
    }
    for (const log of this._socialLogs) {
      log.push(f);
    }
    if (f.type === 'friend_request') {
      this.notify(`${f.from} wants to be your friend`, f.note || '', `fr:${f.from}`, null);
    }
    this._head();
    this.renderLists();
    this.refreshCounts();
  }

  /** Applies a friends or presence push; false for other pushes. */
  _social(f) {
    switch (f.type) {
      case 'presence': {
        const fr = this.friends.get(f.user);
        if (fr) {
          fr.presence = f.state;
          fr.text = f.text;
        }
        break;
      }
      case 'friend_request':
        this.incoming = this.incoming.filter((r) => r.from !== f.from);
        this.incoming.push({ from: f.from, note: f.note, ts: f.ts });
        break;
      case 'friend_added':
        if (!this.friends.has(f.user)) {
          // Offline until a presence push says otherwise.
          this.friends.set(f.user, { user: f.user, since: f.since, presence: 'offline' });
        }
        this.incoming = this.incoming.filter((r) => r.from !== f.user);
        this.outgoing = this.outgoing.filter((r) => r.to !== f.user);
        break;
      case 'friend_removed':
        this.friends.delete(f.user);
        break;
      case 'friend_declined':
        this.outgoing = this.outgoing.filter((r) => r.to !== f.user);
        break;
      case 'friend_cancelled':
        this.incoming = this.incoming.filter((r) => r.from !== f.user);
        break;
      default:
        return false;
    }
    return true;
  }

  _joinRequest(f) {
    const c = this.conv('g:' + f.group);
    const li = el('li', 'system');
    li.append(el('span', null, `${f.user} asks to join. `));
    const yes = button('Approve', 'link', `Approve ${f.user}`);
    const no = button('Reject', 'link', `Reject ${f.user}`);
    const act = (type) => {
      this.session
        .request(type, { group: f.group, user: f.user })
        .then(() => li.remove())
        .catch((e) => li.append(el('span', 'error', ' ' + describe(e))));
    };
    yes.addEventListener('click', () => act('group_approve'));
    no.addEventListener('click', () => act('group_reject'));
    li.append(yes, ' ', no);
    c.el.append(li);
    this.renderLists();
  }

  // ---- typing -------------------------------------------------------------------

  _typing(state) {
    const c = this.activeConv();
    if (!c || !this.session.features.includes('typing')) {
      return;
    }
    const f = c.kind === 'dm' ? { to: c.id, state } : { group: c.id, state };
    // rate_limited or not connected: a typing notification is not worth a retry
    this.session.request('typing', f).catch(() => {});
  }

  _typingPush(f) {
    const key = f.group ? 'g:' + f.group : 'u:' + f.from;
    if (f.state === 'start') {
      let m = this.typing.get(key);
      if (!m) {
        m = new Map();
        this.typing.set(key, m);
      }
      clearTimeout(m.get(f.from));
      m.set(
        f.from,
        setTimeout(() => this._typingDone(key, f.from), TYPING_SHOWN_MS),
      );
    } else {
      this._typingDone(key, f.from);
      return;
    }
    if (key === this.active) {
      this._typingLine();
    }
  }

  _typingDone(key, user) {
    const m = this.typing.get(key);
    if (m && m.has(user)) {
      clearTimeout(m.get(user));
      m.delete(user);
      if (key === this.active) {
        this._typingLine();
      }
    }
  }

  _typingLine() {
    const m = this.typing.get(this.active);
    const who = m ? [...m.keys()] : [];
    let text = '';
    if (who.length === 1) {
      text = `${who[0]} is typing…`;
    } else if (who.length === 2) {
      text = `${who[0]} and ${who[1]} are typing…`;
    } else if (who.length > 2) {
      text = 'Several people are typing…';
    }
    this.d.typing.textContent = text;
  }

  // ---- counts, title, notifications ----------------------------------------

  totalUnread() {
    let n = 0;
    for (const p of this.peers) {
      n += this.dmUnread(p).length;
    }
    for (const g of this.groups.values()) {
      n += g.unread;
    }
    return n;
  }

  refreshCounts() {
    const n = this.totalUnread();
    document.title = n > 0 ? `(${n}) ${this.baseTitle}` : this.baseTitle;
    let reqs = this.incoming.length;
    this.d.requestsBadge.textContent = String(reqs);
    this.d.requestsBadge.hidden = reqs === 0;
    let dm = 0;
    for (const p of this.peers) {
      dm += this.dmUnread(p).length;
    }
    this.d.friendsBadge.textContent = String(dm);
    this.d.friendsBadge.hidden = dm === 0;
    let gu = 0;
    for (const g of this.groups.values()) {
      gu += g.unread;
    }
    this.d.groupsBadge.textContent = String(gu);
    this.d.groupsBadge.hidden = gu === 0;
  }

  /** Another tab changed counts (tabs.js). */
  onTab(m) {
    if (m.user !== this.me) {
      return;
    }
    switch (m.type) {
      case 'gread': {
        const g = this.groups.get(m.group);
        if (g && m.seq >= g.read_seq) {
          g.read_seq = m.seq;
          if (m.seq >= g.last_seq) {
            g.unread = 0;
            g.mentions = 0;
          } else {
            this.refreshGroups();
          }
        }
        break;
      }
      case 'dm-sent': {
        const c = this.conv('u:' + m.msg.to);
        this.addMessage(c, m.msg, false);
        this.bump(c);
        if (this.active === c.key && this.nearBottom()) {
          this.scrollToEnd();
        }
        break;
      }
      case 'presence-self':
        this.d.presence.value = m.state;
        break;
      default:
        return;
    }
    this.renderLists();
    this.refreshCounts();
  }

  _notifications() {
    const b = this.d.notifyButton;
    const update = () => {
      b.hidden = typeof Notification !== 'function' || Notification.permission !== 'default';
    };
    update();
    this._on(b, 'click', () => {
      // Asked on the user's click, never on its own.
      Notification.requestPermission().then(update, update);
    });
  }

  notify(title, body, tag, key) {
    if (document.visibilityState === 'visible' || typeof Notification !== 'function' || Notification.permission !== 'granted') {
      return;
    }
    try {
      // One tag per message: the tabs of one user show it once.
      const n = new Notification(title, { body: body.slice(0, 200), tag });
      n.onclick = () => {
        window.focus();
        if (key) {
          this.open(key);
        }
        n.close();
      };
    } catch {
      // some browsers only notify from a service worker
    }
  }

  // ---- lists ----------------------------------------------------------------------

  renderLists() {
    // The lists are rebuilt; a keyboard user's focus stays on the same row
    // or button.
    const a = document.activeElement;
    let again = null;
    if (a && a !== document.body && this.d.sidebar.contains(a) && a.matches('.list button')) {
      if (a.dataset.conv) {
        again = `button.row[data-conv="${CSS.escape(a.dataset.conv)}"]`;
      } else if (a.getAttribute('aria-label')) {
        again = `.list button[aria-label="${CSS.escape(a.getAttribute('aria-label'))}"]`;
      }
    }
    this._friendList();
    this._otherList();
    this._groupList();
    this._requests();
    if (again) {
      const b = this.d.sidebar.querySelector(again);
      if (b) {
        b.focus();
      }
    }
  }

  _row(key, name, extra) {
    const li = el('li');
    const b = button(null, 'row');
    b.dataset.conv = key;
    if (this.active === key) {
      b.setAttribute('aria-current', 'true');
    }
    b.addEventListener('click', () => this.open(key));
    li.append(b);
    extra(b);
    return li;
  }

  _friendList() {
    const list = [...this.friends.values()].sort((a, b) => (PRESENCE_RANK[a.presence] ?? 9) - (PRESENCE_RANK[b.presence] ?? 9) || (a.user < b.user ? -1 : 1));
    const rows = list.map((f) =>
      this._row('u:' + f.user, f.user, (b) => {
        const dot = el('span', 'dot ' + f.presence);
        dot.setAttribute('aria-hidden', 'true');
        b.append(dot, el('span', 'name', f.user));
        if (f.text) {
          b.append(el('span', 'note', f.text));
        }
        const n = this.dmUnread(f.user).length;
        let label = `${f.user}, ${PRESENCE_LABEL[f.presence] || f.presence}`;
        if (f.text) {
          label += `, ${f.text}`;
        }
        if (n > 0) {
          b.append(el('span', 'badge', String(n)));
          label += `, ${n} unread`;
        }
        b.setAttribute('aria-label', label);
        b.dataset.presence = f.presence;
      }),
    );
    if (rows.length === 0) {
      rows.push(el('li', 'placeholder', 'No friends yet: add one under Requests.'));
    }
    this.d.friendList.replaceChildren(...rows);
  }

  _otherList() {
    const others = [...this.peers].filter((p) => !this.friends.has(p) && this.convs.has('u:' + p));
    others.sort((a, b) => this.convs.get('u:' + b).activity - this.convs.get('u:' + a).activity);
    const rows = others.map((p) =>
      this._row('u:' + p, p, (b) => {
        b.append(el('span', 'name', p));
        const n = this.dmUnread(p).length;
        let label = `${p}, not a friend`;
        if (n > 0) {
          b.append(el('span', 'badge', String(n)));
          label += `, ${n} unread`;
        }
        b.setAttribute('aria-label', label);
      }),
    );
    this.d.othersHeading.hidden = rows.length === 0;
    this.d.otherList.replaceChildren(...rows);
  }

  _groupList() {
    const list = [...this.groups.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const rows = list.map((g) =>
      this._row('g:' + g.group, g.name, (b) => {
        const icon = el('span', 'gicon', ([...g.name][0] || '#').toUpperCase());
        icon.setAttribute('aria-hidden', 'true');
        b.append(icon, el('span', 'name', g.name));
        let label = `${g.name}, group ${g.group}`;
        if (g.mentions > 0) {
          b.append(el('span', 'badge mention', '@'));
          label += `, ${g.mentions} mention${g.mentions === 1 ? '' : 's'}`;
        }
        if (g.unread > 0) {
          b.append(el('span', 'badge', String(g.unread)));
          label += `, ${g.unread} unread`;
        }
        b.setAttribute('aria-label', label);
      }),
    );
    if (rows.length === 0) {
      rows.push(el('li', 'placeholder', 'No groups yet: create one or join one by its number.'));
    }
    this.d.groupList.replaceChildren(...rows);
  }

  _requests() {
    const inc = this.incoming.map((r) => {
      const li = el('li', 'request');
      li.append(el('span', 'name', r.from));
      if (r.note) {
        li.append(el('span', 'note', r.note));
      }
      const yes = button('Accept', null, `Accept ${r.from}'s friend request`);
      const no = button('Decline', 'secondary', `Decline ${r.from}'s friend request`);
      yes.addEventListener('click', () => this._answer('friend_accept', { user: r.from }, li));
      no.addEventListener('click', () => this._answer('friend_decline', { user: r.from }, li));
      const actions = el('span', 'actions');
      actions.append(yes, no);
      li.append(actions);
      return li;
    });
    if (inc.length === 0) {
      inc.push(el('li', 'placeholder', 'No requests.'));
    }
    this.d.incomingList.replaceChildren(...inc);
    const out = this.outgoing.map((r) => {
      const li = el('li', 'request');
      li.append(el('span', 'name', r.to));
      const cancel = button('Cancel', 'secondary', `Cancel the friend request to ${r.to}`);
      cancel.addEventListener('click', () => this._answer('friend_cancel', { to: r.to }, li));
      const actions = el('span', 'actions');
      actions.append(cancel);
      li.append(actions);
      return li;
    });
    if (out.length === 0) {
      out.push(el('li', 'placeholder', 'None pending.'));
    }
    this.d.outgoingList.replaceChildren(...out);
  }

  async _answer(type, fields, li) {
    try {
      await this.session.request(type, fields);
      if (type === 'friend_decline') {
        this.incoming = this.incoming.filter((r) => r.from !== fields.user);
      } else if (type === 'friend_cancel') {
        this.outgoing = this.outgoing.filter((r) => r.to !== fields.to);
      }
      await this.refreshFriends();
      this.refreshCounts();
    } catch (e) {
      li.append(el('span', 'error', describe(e)));
    }
  }

  // ---- the tab list and the forms -------------------------------------------------

  _tablist() {
    const tabs = [...this.d.sidebar.querySelectorAll('[role="tab"]')];
    const select = (t, focus) => {
      for (const o of tabs) {
        const on = o === t;
        o.setAttribute('aria-selected', String(on));
        o.tabIndex = on ? 0 : -1;
        document.getElementById(o.getAttribute('aria-controls')).hidden = !on;
      }
      if (focus) {
        t.focus();
      }
    };
    for (const t of tabs) {
      this._on(t, 'click', () => select(t, false));
      this._on(t, 'keydown', (e) => {
        const i = tabs.indexOf(t);
        if (e.key === 'ArrowRight' || e.key === 'ArrowLeft') {
          e.preventDefault();
          select(tabs[(i + (e.key === 'ArrowRight' ? 1 : tabs.length - 1)) % tabs.length], true);
        } else if (e.key === 'Home') {
          e.preventDefault();
          select(tabs[0], true);
        } else if (e.key === 'End') {
          e.preventDefault();
          select(tabs[tabs.length - 1], true);
        }
      });
    }
    this.selectTab = (id) => select(document.getElementById(id), false);
  }

  _forms() {
    const d = this.d;
    const form = (f, fn) => {
      this._on(f, 'submit', async (e) => {
        e.preventDefault();
        const out = f.querySelector('.form-result');
        out.textContent = '';
        out.classList.remove('error');
        const btns = f.querySelectorAll('button');
        btns.forEach((b) => (b.disabled = true));
        try {
          out.textContent = (await fn(e.submitter)) || '';
        } catch (err) {
          out.textContent = describe(err);
          out.classList.add('error');
        } finally {
          btns.forEach((b) => (b.disabled = false));
        }
      });
    };
    form(d.friendForm, async () => {
      const user = d.friendUser.value.trim();
      const note = d.friendNote.value.trim();
      const f = { to: user };
      if (note) {
        f.note = note;
      }
      const r = await this.session.request('friend_request', f);
      d.friendUser.value = '';
      d.friendNote.value = '';
      await this.refreshFriends();
      return r.status === 'friends' ? `You and ${user} are friends.` : `Request sent to ${user}.`;
    });
    form(d.chatForm, async () => {
      const user = d.chatUser.value.trim();
      if (!/^[a-z0-9][a-z0-9_.-]{0,31}$/.test(user)) {
        throw new Error('A user name is lowercase letters, digits, “_”, “.” and “-”.');
      }
      d.chatUser.value = '';
      this.open('u:' + user);
      return '';
    });
    form(d.groupCreateForm, async () => {
      const name = d.groupName.value.trim();
      const r = await this.session.request('group_create', { name });
      this.session.joinedGroup(r.group, r.seq);
      d.groupName.value = '';
      await this.refreshGroups();
      this.open('g:' + r.group);
      return `Created group ${r.group}.`;
    });
    form(d.groupJoinForm, async () => {
      const group = d.groupId.value.trim();
      const r = await this.session.request('group_join', { group });
      d.groupId.value = '';
      if (r.status === 'requested') {
        return `Asked to join group ${group}: an admin decides.`;
      }
      this.session.joinedGroup(group, r.seq);
      await this.refreshGroups();
      this.open('g:' + group);
      return `Joined group ${group}.`;
    });
  }
}
