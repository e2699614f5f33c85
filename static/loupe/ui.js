/* Loupe annotate page, the small pieces annotate.js leans on: request helpers, the toast, the progress
 * counter, the keyboard-help overlay (and its buttons) and isTyping for the keys. Loaded before
 * annotate.js, which reaches them only through window.LoupeUI. No inline script or handler anywhere
 * (CSP script-src 'self').
 */
(function () {
  "use strict";

  if (!document.getElementById("annotate")) return;

  // annotate.js owns which pair is on screen; it hands us a getter in init().
  let currentPair = () => null;
  const helpEl = document.getElementById("help");
  const toastEl = document.getElementById("toast");
  let helpReturnFocus = null;

  // ---------------------------------------------------------------- requests

  function uuid4() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") return window.crypto.randomUUID();
    // Fallback for non-secure contexts: RFC 4122 version 4 from getRandomValues.
    const b = new Uint8Array(16);
    window.crypto.getRandomValues(b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  function csrfToken() {
    const input = document.querySelector("input[name=csrfmiddlewaretoken]");
    if (input) return input.value;
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
    } catch (e) {
      return "";
    }
  }

  async function errorMessage(resp) {
    try {
      const data = await resp.json();
      if (data && data.error) return data.error;
    } catch (e) {
      /* not JSON */
    }
    return `The server answered ${resp.status}.`;
  }

  function parsePair(html) {
    // The fragment is our own server-rendered template; parse it inert, then adopt the section.
    const doc = new DOMParser().parseFromString(html, "text/html");
    const pair = doc.querySelector("section.pair");
    return pair ? document.adoptNode(pair) : null;
  }

  // ---------------------------------------------------------------- toast

  let toastTimer = 0;
  function toast(message, kind) {
    if (!toastEl) return;
    toastEl.textContent = message;
    toastEl.dataset.kind = kind || "info";
    toastEl.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => {
      toastEl.hidden = true;
    }, 4000);
  }

  // ---------------------------------------------------------------- progress

  function setProgress(done, remaining) {
    const el = document.getElementById("progress");
    if (!el) return;
    done = Math.max(0, done);
    remaining = Math.max(0, remaining);
    el.dataset.done = String(done);
    el.dataset.available = String(remaining);
    const d = el.querySelector("[data-role=done]");
    const r = el.querySelector("[data-role=remaining]");
    if (d) d.textContent = String(done);
    if (r) r.textContent = String(remaining);
    const bar = el.querySelector("progress");
    if (bar) {
      bar.max = Math.max(1, done + remaining);
      bar.value = done;
    }
  }

  function bumpProgress(delta) {
    const el = document.getElementById("progress");
    if (!el) return;
    setProgress(Number(el.dataset.done || 0) + delta, Number(el.dataset.available || 0) - delta);
  }

  async function refreshProgress() {
    const el = document.getElementById("progress");
    const url = el && el.getAttribute("hx-get");
    if (!url) return;
    try {
      const resp = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (!resp.ok) return;
      const data = await resp.json();
      setProgress(data.done, data.available);
    } catch (e) {
      /* the 15 s poll will catch up */
    }
  }

  // ---------------------------------------------------------------- help overlay

  function isHelpOpen() {
    return Boolean(helpEl && !helpEl.hidden);
  }

  function openHelp() {
    if (!helpEl || !helpEl.hidden) return;
    helpReturnFocus = document.activeElement;
    helpEl.hidden = false;
    const close = helpEl.querySelector("[data-action=close-help]");
    if (close) close.focus({ preventScroll: true });
  }

  function closeHelp() {
    if (!helpEl || helpEl.hidden) return;
    helpEl.hidden = true;
    const back = helpReturnFocus;
    const pair = currentPair();
    if (back && document.contains(back)) back.focus({ preventScroll: true });
    else if (pair) pair.focus({ preventScroll: true });
  }

  document.addEventListener("click", (e) => {
    const btn = e.target.closest("[data-action]");
    const action = btn && btn.dataset.action;
    if (action === "help") openHelp();
    else if (action === "close-help") closeHelp();
  });

  if (helpEl) {
    helpEl.addEventListener("click", (e) => {
      if (e.target === helpEl) closeHelp(); // a click on the backdrop
    });
  }

  // ---------------------------------------------------------------- keys

  function isTyping(el) {
    if (!el) return false;
    if (el.isContentEditable) return true;
    const tag = el.tagName;
    if (tag === "TEXTAREA" || tag === "SELECT") return true;
    if (tag === "INPUT") return !["radio", "checkbox", "button", "submit", "range"].includes(el.type);
    return false;
  }

  window.LoupeUI = {
    init(getPair) {
      currentPair = getPair;
    },
    uuid4,
    csrfToken,
    errorMessage,
    parsePair,
    toast,
    bumpProgress,
    refreshProgress,
    isHelpOpen,
    openHelp,
    closeHelp,
    isTyping,
  };
})();
