// The message box: Enter sends, Shift+Enter makes a new line, and an
// Enter that belongs to an input method (Chinese, Japanese, Korean...)
// never sends. Browsers disagree on the order of events when Enter
// commits a composition: Chromium and Firefox fire keydown (isComposing
// true, keyCode 229) and then compositionend; Safari fires compositionend
// first and then a keydown whose isComposing is false (keyCode 229). So
// the box tracks compositionstart/compositionend itself and ignores:
//  - any keydown while its own composing flag is set, or with
//    isComposing, or with keyCode 229 (the "IME is handling this" code);
//  - the first keydown after a compositionend if it comes within
//    AFTER_COMPOSITION_MS of it (Safari's Enter), whatever it says.
// Typing notifications go out as the user types (see Composer.typing).

export const AFTER_COMPOSITION_MS = 100;
export const TYPING_REPEAT_MS = 4000; // qqd stops a start after 6 s
export const TYPING_IDLE_MS = 5000;

export class Composer {
  /**
   * textarea: the box; onsend(text) is called with the text to send;
   * ontyping(state) with 'start' or 'stop' (rate-limited here: a start at
   * most every TYPING_REPEAT_MS while typing goes on, one stop).
   */
  constructor(textarea, { onsend, ontyping }) {
    this.ta = textarea;
    this.onsend = onsend;
    this.ontyping = ontyping;
    this.composing = false;
    this.compositionEndedAt = -1;
    this.typingSince = 0;
    this.typingTimer = null;
    textarea.addEventListener('compositionstart', () => {
      this.composing = true;
    });
    textarea.addEventListener('compositionend', (e) => {
      this.composing = false;
      this.compositionEndedAt = e.timeStamp;
    });
    textarea.addEventListener('keydown', (e) => this._keydown(e));
    textarea.addEventListener('input', () => this._input());
    textarea.addEventListener('blur', () => this.stopTyping());
  }

  _keydown(e) {
    const ended = this.compositionEndedAt;
    this.compositionEndedAt = -1;
    if (e.key !== 'Enter') {
      return;
    }
    if (this.composing || e.isComposing || e.keyCode === 229) {
      return;
    }
    if (ended >= 0 && e.timeStamp - ended < AFTER_COMPOSITION_MS) {
      return;
    }
    if (e.shiftKey || e.altKey || e.ctrlKey || e.metaKey) {
      return; // Shift+Enter: the textarea makes the newline
    }
    e.preventDefault();
    this.submit();
  }

  /** Sends the box's text, if any (the Send button, or Enter). */
  submit() {
    const text = this.ta.value;
    if (text.trim() === '') {
      return;
    }
    this.ta.value = '';
    this.stopTyping();
    this.onsend(text);
  }

  _input() {
    if (this.ta.value.trim() === '') {
      this.stopTyping();
      return;
    }
    const now = Date.now();
    if (now - this.typingSince >= TYPING_REPEAT_MS) {
      this.typingSince = now;
      this.ontyping('start');
    }
    clearTimeout(this.typingTimer);
    this.typingTimer = setTimeout(() => this.stopTyping(), TYPING_IDLE_MS);
  }

  /** Ends a typing notification in progress (sent, emptied, idle, left). */
  stopTyping() {
    clearTimeout(this.typingTimer);
    this.typingTimer = null;
    if (this.typingSince !== 0) {
      this.typingSince = 0;
      this.ontyping('stop');
    }
  }
}
