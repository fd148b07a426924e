// Several tabs of one browser profile talk over a BroadcastChannel: a
// new tab finds the others (and may take over a logged-in tab's resume
// token instead of asking for the password), and the tabs tell each
// other about group reads (unread counts and the title), messages sent (a
// sender's other connections get no copy from the server), the user's
// presence and logout. Unread direct messages are in localStorage, whose
// storage event keeps the tabs' counts in step (chat.js). Without
// BroadcastChannel each tab is on its own.

const CHANNEL = 'qq';
const TAB_KEY = 'qq:tab';

function randomID() {
  const b = new Uint8Array(9);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

export class Tabs {
  constructor() {
    // The tab's id survives a reload of the tab (sessionStorage), so that
    // the reloaded page finds the outbox items it owned.
    let id = null;
    try {
      id = sessionStorage.getItem(TAB_KEY);
    } catch {
      // storage disabled
    }
    if (!id) {
      id = randomID();
      this._save(id);
    }
    this.id = id;
    // page tells this page's own messages apart (BroadcastChannel does
    // not echo them, but a duplicated tab shares the tab id).
    this.page = randomID();
    this.handlers = new Map();
    /** Answers a discovery: returns {user, token} or null. */
    this.whoami = () => null;
    this.ch = typeof BroadcastChannel === 'function' ? new BroadcastChannel(CHANNEL) : null;
    if (this.ch) {
      this.ch.onmessage = (ev) => this._receive(ev.data);
    }
  }

  _save(id) {
    try {
      sessionStorage.setItem(TAB_KEY, id);
    } catch {
      // storage disabled: the id lasts as long as the page
    }
  }

  _receive(m) {
    if (!m || typeof m !== 'object' || m.page === this.page) {
      return;
    }
    if (m.type === 'discover') {
      this.post({ type: 'here', to: m.from, ...(this.whoami() || {}) });
      return;
    }
    if (m.to && m.to !== this.id) {
      return;
    }
    const fns = this.handlers.get(m.type);
    if (fns) {
      for (const fn of fns) {
        fn(m);
      }
    }
  }

  on(type, fn) {
    if (!this.handlers.has(type)) {
      this.handlers.set(type, []);
    }
    this.handlers.get(type).push(fn);
  }

  post(m) {
    if (this.ch) {
      this.ch.postMessage({ ...m, from: this.id, page: this.page });
    }
  }

  /**
   * Asks the other tabs to answer and collects the answers for waitMs:
   * [{from, user?, token?}]. A tab that answers with this tab's own id is
   * a duplicate (the browser copied sessionStorage): this tab takes a new
   * id.
   */
  discover(waitMs) {
    if (!this.ch) {
      return Promise.resolve([]);
    }
    const seen = [];
    const fn = (m) => {
      if (m.from === this.id) {
        this.id = randomID();
        this._save(this.id);
        return;
      }
      seen.push(m);
    };
    this.on('here', fn);
    this.post({ type: 'discover' });
    return new Promise((resolve) => {
      setTimeout(() => {
        this.handlers.set('here', (this.handlers.get('here') || []).filter((f) => f !== fn));
        resolve(seen);
      }, waitMs);
    });
  }
}
