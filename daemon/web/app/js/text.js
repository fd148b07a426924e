// Message text is rendered as text, never as HTML: every piece goes into
// the document as a Text node (textContent), and links are <a> elements
// built here, only for http and https URLs, opening in a new tab without
// an opener or a referrer.

const URL_RE = /\bhttps?:\/\/[^\s<>"']+/gi;
// Punctuation that ends a sentence rather than a URL.
const TRAILING = /[.,;:!?)\]}'"]+$/;

/**
 * Appends body to parent: text nodes, and links for the URLs in it.
 * Newlines stay newlines (CSS white-space: pre-wrap shows them).
 */
export function appendText(parent, body) {
  let last = 0;
  for (const m of body.matchAll(URL_RE)) {
    let href = m[0];
    const trail = href.match(TRAILING);
    if (trail) {
      href = href.slice(0, -trail[0].length);
    }
    let url;
    try {
      url = new URL(href);
    } catch {
      continue;
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      continue;
    }
    if (m.index > last) {
      parent.append(document.createTextNode(body.slice(last, m.index)));
    }
    const a = document.createElement('a');
    a.href = url.href;
    a.textContent = href;
    a.rel = 'noopener noreferrer';
    a.target = '_blank';
    parent.append(a);
    last = m.index + href.length;
  }
  if (last < body.length) {
    parent.append(document.createTextNode(body.slice(last)));
  }
}

/** The user names a group message mentions: @name words, and @all. */
export function mentionsIn(body) {
  const names = new Set();
  for (const m of body.matchAll(/(^|[^a-z0-9_.-])@([a-z0-9][a-z0-9_.-]{0,31})/g)) {
    names.add(m[2].replace(/[.]+$/, ''));
  }
  return [...names].slice(0, 20);
}

const TIME = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const DAY = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });

/** A short local time for a message's ts: the time today, else the day too. */
export function formatTime(ts) {
  const d = new Date(ts);
  const now = new Date();
  if (d.toDateString() === now.toDateString()) {
    return TIME.format(d);
  }
  return DAY.format(d);
}
