// The outbox in IndexedDB: every message the user sends is written here
// before it goes out, with its cid, and stays until the server confirmed
// it (ok) or the user discards a refused one. A reload, a crash of the tab
// or a closed laptop lose nothing: the next page load of the same user
// sends what is left again, with the same cids, so the server stores each
// message once.
//
// An item: {cid, user, owner, kind: 'dm'|'group', to?, group?, body,
// mentions?, created, state: 'pending'|'failed', error?}. owner is the id
// of the tab that sends it (see tabs.js); a tab adopts the items of tabs
// that are gone.
//
// Where IndexedDB is missing or refuses (a private window of some
// browsers), the outbox lives in memory: messages then survive a lost
// connection but not a reload, and the page says so.

const DB = 'qq';
const VERSION = 1;
const OUTBOX = 'outbox';

function req(r) {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

export async function openStore() {
  if (typeof indexedDB === 'undefined') {
    return new MemoryStore();
  }
  try {
    const open = indexedDB.open(DB, VERSION);
    open.onupgradeneeded = () => {
      const db = open.result;
      if (!db.objectStoreNames.contains(OUTBOX)) {
        const s = db.createObjectStore(OUTBOX, { keyPath: 'cid' });
        s.createIndex('user', 'user');
      }
    };
    const db = await req(open);
    return new IDBStore(db);
  } catch {
    return new MemoryStore();
  }
}

class IDBStore {
  constructor(db) {
    this.db = db;
    this.durable = true;
  }

  async put(item) {
    const tx = this.db.transaction(OUTBOX, 'readwrite');
    tx.objectStore(OUTBOX).put(item);
    await done(tx);
  }

  async delete(cid) {
    const tx = this.db.transaction(OUTBOX, 'readwrite');
    tx.objectStore(OUTBOX).delete(cid);
    await done(tx);
  }

  async get(cid) {
    const tx = this.db.transaction(OUTBOX, 'readonly');
    return (await req(tx.objectStore(OUTBOX).get(cid))) || null;
  }

  /** The user's items, oldest first. */
  async all(user) {
    const tx = this.db.transaction(OUTBOX, 'readonly');
    const items = await req(tx.objectStore(OUTBOX).index('user').getAll(user));
    return items.sort((a, b) => a.created - b.created || (a.cid < b.cid ? -1 : 1));
  }
}

function done(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
}

class MemoryStore {
  constructor() {
    this.items = new Map();
    this.durable = false;
  }

  async put(item) {
    this.items.set(item.cid, structuredClone(item));
  }

  async delete(cid) {
    this.items.delete(cid);
  }

  async get(cid) {
    const it = this.items.get(cid);
    return it ? structuredClone(it) : null;
  }

  async all(user) {
    return [...this.items.values()].filter((i) => i.user === user).map((i) => structuredClone(i)).sort((a, b) => a.created - b.created);
  }
}
