// The qq web app's entry point: the login form, the session's life, and
// the page lifecycle events that make it check its connection.
//
// Login and the resume token: the password goes to the server once, in a
// login with remember:true, and is never stored (it stays in the
// session's memory until the server issued a resume token, then it is
// dropped). The token is kept in sessionStorage under qq:login: it lives
// as long as the tab (a reload keeps it; closing the tab forgets it), and
// a new tab of the same browser takes it over from a logged-in tab over
// BroadcastChannel. On the server it ends after tokens.idle (7 days)
// unused or tokens.lifetime (30 days); "Log out" revokes it (the server's
// logout), as do `qqadmin kick --revoke USER`, `qqadmin revoke USER` and a
// password change. A refused token brings the login form back.

import { Session } from './session.js';
import { openStore } from './store.js';
import { Tabs } from './tabs.js';
import { Chat } from './chat.js';

const LOGIN_KEY = 'qq:login';
const NAME_RE = /^[a-z0-9][a-z0-9_.-]{0,31}$/;
const DISCOVER_MS = 250;

const $ = (id) => document.getElementById(id);

const dom = {
  banner: $('banner'),
  bannerText: $('banner-text'),
  bannerButton: $('banner-button'),
  login: $('login'),
  loginForm: $('login-form'),
  loginUser: $('login-user'),
  loginPassword: $('login-password'),
  loginError: $('login-error'),
  loginButton: $('login-button'),
  registerButton: $('register-button'),
  app: $('app'),
  me: $('me'),
  connState: $('conn-state'),
  presence: $('presence'),
  notifyButton: $('notify-button'),
  logoutButton: $('logout-button'),
  sidebar: $('sidebar'),
  friendList: $('friend-list'),
  otherList: $('other-list'),
  othersHeading: $('others-heading'),
  groupList: $('group-list'),
  incomingList: $('incoming-list'),
  outgoingList: $('outgoing-list'),
  friendsBadge: $('friends-badge'),
  groupsBadge: $('groups-badge'),
  requestsBadge: $('requests-badge'),
  friendForm: $('friend-form'),
  friendUser: $('friend-user'),
  friendNote: $('friend-note'),
  chatForm: $('chat-form'),
  chatUser: $('chat-user'),
  groupCreateForm: $('group-create-form'),
  groupName: $('group-name'),
  groupJoinForm: $('group-join-form'),
  groupId: $('group-id'),
  conversation: $('conversation'),
  empty: $('empty'),
  convHead: $('conv-head'),
  convTitle: $('conv-title'),
  convSub: $('conv-sub'),
  convDot: $('conv-dot'),
  backButton: $('back-button'),
  messages: $('messages'),
  olderButton: $('older-button'),
  typing: $('typing'),
  composer: $('composer'),
  composerText: $('composer-text'),
};

const tabs = new Tabs();
const wsURL = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
let store = null;
let session = null;
let chat = null;
let alive = new Set();

function savedLogin() {
  try {
    const v = JSON.parse(sessionStorage.getItem(LOGIN_KEY) || 'null');
    return v && typeof v.user === 'string' && typeof v.token === 'string' ? v : null;
  } catch {
    return null;
  }
}

function saveLogin(user, token) {
  try {
    if (token) {
      sessionStorage.setItem(LOGIN_KEY, JSON.stringify({ user, token }));
    } else {
      sessionStorage.removeItem(LOGIN_KEY);
    }
  } catch {
    // storage disabled: the login lasts as long as the page
  }
}

tabs.whoami = () => (session && !session.ended && session.token ? { user: session.user, token: session.token, presence: dom.presence.value } : null);

function showBanner(text, action) {
  dom.bannerText.textContent = text;
  dom.banner.hidden = !text;
  dom.bannerButton.hidden = !action;
  dom.bannerButton.onclick = action || null;
}

function showLogin(message) {
  dom.app.hidden = true;
  dom.login.hidden = false;
  dom.loginError.textContent = message || '';
  dom.loginPassword.value = '';
  showBanner('');
  (dom.loginUser.value ? dom.loginPassword : dom.loginUser).focus();
}

function showApp() {
  dom.login.hidden = true;
  dom.app.hidden = false;
}

function describeState(d) {
  switch (d.state) {
    case 'connecting':
      return 'Connecting…';
    case 'up':
      return '';
    case 'down':
      return `Disconnected (${d.why}). Reconnecting in ${Math.max(1, Math.round(d.delay / 1000))} s…`;
    default:
      return '';
  }
}

/** Starts a session for user; creds {password, register} or {token}. */
async function begin(user, creds) {
  if (session) {
    session.close('replaced');
  }
  const s = new Session({ url: wsURL, store, tabId: tabs.id });
  session = s;
  const c = new Chat({ session: s, tabs, me: user, dom });
  s.addEventListener('token', (e) => saveLogin(user, e.detail.token));
  s.addEventListener('state', (e) => {
    if (s !== session) {
      return;
    }
    const d = e.detail;
    dom.connState.textContent = d.state === 'up' ? 'Online' : d.state === 'connecting' ? 'Connecting…' : d.state === 'down' ? 'Offline' : '';
    dom.connState.dataset.state = d.state;
    document.body.dataset.conn = d.state;
    if (d.state === 'down') {
      showBanner(describeState(d), () => s.wake());
    } else if (d.state === 'up') {
      showBanner('');
    }
  });
  s.addEventListener('up', () => c.onUp());
  s.addEventListener('msg', (e) => c.onMsg(e.detail.msg));
  s.addEventListener('entry', (e) => c.onEntry(e.detail.entry));
  s.addEventListener('groups', (e) => c.onGroups(e.detail.groups));
  s.addEventListener('outbox', (e) => c.onOutbox(e.detail));
  s.addEventListener('push', (e) => {
    const f = e.detail.frame;
    if (f.type === 'notice') {
      showBanner(`Notice from the server: ${f.message}`);
    } else if (f.type === 'kicked' && f.reason !== 'admin') {
      showBanner(`Disconnected by the server: ${f.message || f.reason}`);
    }
    c.onPush(f);
  });
  s.addEventListener('ended', (e) => {
    if (s !== session) {
      return;
    }
    c.dispose();
    chat = null;
    session = null;
    const d = e.detail;
    if (d.code !== 'logout' && d.code !== 'closed') {
      saveLogin(null, null);
      showLogin(d.code === 'kicked' ? `An operator ended your session: ${d.why}` : d.why);
    } else if (d.code === 'logout') {
      showLogin(d.why === 'logged out' ? '' : d.why);
    }
  });
  chat = c;
  if (creds.presence && creds.presence !== 'online') {
    // The user's presence, set in another tab: this session keeps it.
    s.presence = { state: creds.presence };
    dom.presence.value = creds.presence;
  }
  if (creds.token) {
    showApp();
    await s.start({ user, token: creds.token });
  } else {
    await s.start({ user, password: creds.password, register: creds.register });
    showApp();
  }
  const items = await s.loadOutbox(alive);
  for (const it of items) {
    c.showOutboxItem(it);
  }
  if (!store.durable) {
    showBanner('This browser keeps no IndexedDB here: messages not yet sent are lost on a reload.');
  }
  let active = null;
  try {
    active = sessionStorage.getItem('qq:active');
  } catch {
    // storage disabled
  }
  if (active && /^(u|g):/.test(active)) {
    c.open(active);
  }
  c.renderLists();
  c.refreshCounts();
}

dom.loginForm.addEventListener('submit', (e) => {
  e.preventDefault();
  submitLogin(e.submitter === dom.registerButton);
});
dom.registerButton.addEventListener('click', (e) => {
  e.preventDefault();
  submitLogin(true);
});

async function submitLogin(register) {
  const user = dom.loginUser.value.trim();
  const password = dom.loginPassword.value;
  dom.loginError.textContent = '';
  if (!user || !password) {
    dom.loginError.textContent = 'Enter a user name and a password.';
    return;
  }
  if (register && !NAME_RE.test(user)) {
    dom.loginError.textContent = 'A user name is 1 to 32 of a-z, 0-9, “_”, “.” and “-”, starting with a letter or digit.';
    return;
  }
  dom.loginButton.disabled = dom.registerButton.disabled = true;
  dom.loginError.textContent = register ? 'Registering…' : 'Logging in…';
  try {
    await begin(user, { password, register });
    dom.loginPassword.value = '';
    dom.loginError.textContent = '';
  } catch (err) {
    dom.loginError.textContent = err.message || String(err);
    dom.loginPassword.select();
  } finally {
    dom.loginButton.disabled = dom.registerButton.disabled = false;
  }
}

dom.logoutButton.addEventListener('click', async () => {
  const s = session;
  if (!s) {
    return;
  }
  dom.logoutButton.disabled = true;
  try {
    const revoked = await s.logout();
    saveLogin(null, null);
    tabs.post({ type: 'logout', user: s.user });
    if (!revoked) {
      dom.loginError.textContent = 'Logged out in this browser. The server could not be reached to revoke the login; it ends by itself after 7 days unused.';
    }
  } catch (e) {
    showBanner(`Could not log out: ${e.message}. Try again.`);
  } finally {
    dom.logoutButton.disabled = false;
  }
});

tabs.on('logout', (m) => {
  if (session && session.user === m.user) {
    saveLogin(null, null);
    session.close('logged out in another tab');
    showLogin('You logged out in another tab.');
  }
});
for (const t of ['gread', 'dm-sent', 'presence-self']) {
  tabs.on(t, (m) => {
    if (chat) {
      chat.onTab(m);
    }
  });
}

// The page may have missed something, or its socket may be dead while it
// looks open: the network came back, the page was shown again (back-
// forward cache), made visible, or resumed after the browser froze it.
function wake() {
  if (session) {
    session.wake();
  }
}
window.addEventListener('online', wake);
window.addEventListener('offline', () => {
  if (session) {
    session.offline();
  }
});
window.addEventListener('pageshow', (e) => {
  if (e.persisted) {
    wake();
  }
});
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') {
    wake();
  }
});
document.addEventListener('resume', wake);

async function boot() {
  store = await openStore();
  let login = savedLogin();
  const others = await tabs.discover(DISCOVER_MS);
  alive = new Set(others.map((o) => o.from));
  if (!login) {
    const t = others.find((o) => typeof o.user === 'string' && typeof o.token === 'string');
    if (t) {
      login = { user: t.user, token: t.token, presence: t.presence };
      saveLogin(t.user, t.token);
    }
  }
  document.body.classList.remove('booting');
  if (login) {
    dom.loginUser.value = login.user;
    begin(login.user, { token: login.token, presence: login.presence }).catch(() => {});
  } else {
    showLogin('');
  }
}

boot();
