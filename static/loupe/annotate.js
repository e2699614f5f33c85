/* Loupe annotate page: keyboard-first pairwise judging.
 *
 * The page works without this file (every control is a plain form). With it:
 * - keys 1-4 choose (per criterion row, then the overall row, which submits), arrows move rows;
 * - judgments, skips and undo go over fetch; the next pair is already in the DOM (hidden), with its
 *   media loading, so it is swapped in at once; one more is prefetched after every answer.
 * The media on a pair (synced videos, turntables, lightbox) and their buttons live in media.js
 * (window.LoupeMedia); toast, progress, help overlay and request helpers in ui.js (window.LoupeUI).
 * No inline script or handler anywhere (CSP script-src 'self'): everything hangs off data- attributes.
 */
(function () {
  "use strict";

  const root = document.getElementById("annotate");
  if (!root) return;

  const M = window.LoupeMedia;
  const UI = window.LoupeUI;
  const { toast, errorMessage, csrfToken, parsePair } = UI;
  const queueEl = document.getElementById("queue");
  const emptyEl = document.getElementById("empty");
  const VIEW_CHOICES = ["left", "right", "tie", "both_bad"];

  const state = {
    pair: null, // the <section class="pair"> on screen
    shownAt: 0, // performance.now() when it was shown: time on task
    row: 0, // active row index (criteria rows first, overall last)
    inFlight: false, // a judge/skip/undo request is running
    prefetching: null, // the pending prefetch promise
    exhausted: false, // the server said 204: nothing more to claim for now
  };
  M.init(() => state.pair); // both ask us which pair is on screen
  UI.init(() => state.pair);

  // ---------------------------------------------------------------- helpers

  function queued() {
    return Array.from(queueEl.querySelectorAll(":scope > section.pair")).filter((p) => p !== state.pair);
  }

  function rows(pair) {
    return pair ? Array.from(pair.querySelectorAll(".criterion-row")) : [];
  }

  // ---------------------------------------------------------------- showing pairs

  function warm(pair) {
    // Hidden pairs are in the DOM, so their <img> already load; decode them ahead and make sure the
    // videos buffer, so the swap shows pixels at once.
    pair.querySelectorAll("img").forEach((img) => {
      img.loading = "eager";
      if (img.decode) img.decode().catch(() => {});
    });
    M.videos(pair).forEach((v) => {
      v.preload = "auto";
      v.muted = true;
      if (v.networkState === HTMLMediaElement.NETWORK_EMPTY) v.load();
    });
  }

  function show(pair) {
    M.stop();
    if (state.pair && state.pair !== pair) {
      M.videos(state.pair).forEach((v) => v.pause());
      state.pair.hidden = true;
    }
    state.pair = pair;
    if (!pair) {
      emptyEl.hidden = false;
      return;
    }
    emptyEl.hidden = true;
    // Newest position in the queue: the pair on screen comes first.
    if (queueEl.firstElementChild !== pair) queueEl.insertBefore(pair, queueEl.firstElementChild);
    pair.hidden = false;
    setBusy(pair, false);
    // A fresh key per pair shown: retries of this submit reuse it; a pair brought back by undo
    // gets a new one.
    const key = pair.querySelector(".judge-form input[name=key]");
    if (key) key.value = UI.uuid4();
    pair.querySelectorAll(".judge-form input[type=radio]").forEach((r) => {
      r.checked = false;
    });
    pair.querySelectorAll("[aria-pressed]").forEach((b) => b.setAttribute("aria-pressed", "false"));
    state.row = 0;
    markRow();
    M.start(pair);
    if (!pair.hasAttribute("tabindex")) pair.tabIndex = -1;
    pair.focus({ preventScroll: true });
    state.shownAt = performance.now();
    queued().forEach(warm);
  }

  function setBusy(pair, busy) {
    pair.setAttribute("aria-busy", busy ? "true" : "false");
    pair.querySelectorAll(".judge-form button, .skip-form button").forEach((b) => {
      b.disabled = busy;
    });
  }

  function advance() {
    const old = state.pair;
    const next = queued()[0] || null;
    if (old) {
      M.videos(old).forEach((v) => {
        v.pause();
        v.removeAttribute("src");
        v.load(); // releases the decoder and the connection
      });
      old.remove();
      state.pair = null;
    }
    if (next) {
      show(next);
      ensureQueue();
    } else {
      emptyEl.hidden = true;
      ensureQueue().then(() => {
        if (!state.pair) show(queued()[0] || null);
      });
    }
  }

  function ensureQueue() {
    if (state.prefetching) return state.prefetching;
    if (queued().length >= 1 || state.exhausted) return Promise.resolve();
    const ids = Array.from(queueEl.querySelectorAll("section.pair"), (p) => p.dataset.assignment);
    const url = `${root.dataset.nextUrl}?exclude=${encodeURIComponent(ids.slice(0, 4).join(","))}`;
    state.prefetching = fetch(url, { headers: { "HX-Request": "true" }, credentials: "same-origin" })
      .then(async (resp) => {
        if (resp.status === 204) {
          state.exhausted = true;
          return;
        }
        if (!resp.ok) throw new Error(await errorMessage(resp));
        const pair = parsePair(await resp.text());
        if (pair && !queueEl.querySelector(`section.pair[data-assignment="${pair.dataset.assignment}"]`)) {
          pair.hidden = true;
          queueEl.appendChild(pair);
          warm(pair);
        }
      })
      .catch((err) => toast(`Could not load the next pair: ${err.message}`, "error"))
      .finally(() => {
        state.prefetching = null;
      });
    return state.prefetching;
  }

  // ---------------------------------------------------------------- rows and choices

  function markRow() {
    const all = rows(state.pair);
    if (!all.length) return;
    state.row = Math.max(0, Math.min(state.row, all.length - 1));
    all.forEach((row, i) => {
      row.classList.toggle("is-active", i === state.row);
      if (i === state.row) row.setAttribute("aria-current", "true");
      else row.removeAttribute("aria-current");
    });
  }

  function moveRow(delta) {
    state.row += delta;
    markRow();
    const row = rows(state.pair)[state.row];
    if (row) row.scrollIntoView({ block: "nearest" });
  }

  function choose(index) {
    const pair = state.pair;
    if (!pair || state.inFlight) return;
    const all = rows(pair);
    const row = all[state.row];
    const value = VIEW_CHOICES[index];
    if (!row || row.dataset.row === "overall") {
      submitJudgment(value);
      return;
    }
    const radio = row.querySelector(`input[type=radio][value="${value}"]`);
    if (radio) radio.checked = true;
    moveRow(1); // on to the next criterion, then the overall row
  }

  function selectedOverall(pair) {
    const pressed = pair.querySelector('.overall button[aria-pressed="true"]');
    return pressed ? pressed.value : "";
  }

  async function submitJudgment(choice) {
    const pair = state.pair;
    if (!pair || state.inFlight || !VIEW_CHOICES.includes(choice)) return;
    const form = pair.querySelector(".judge-form");
    pair.querySelectorAll(".overall button").forEach((b) => {
      b.setAttribute("aria-pressed", b.value === choice ? "true" : "false");
    });
    const body = new FormData(form);
    body.set("choice", choice);
    body.set("time_ms", String(Math.max(1, Math.round(performance.now() - state.shownAt))));
    state.inFlight = true;
    setBusy(pair, true);
    try {
      const resp = await fetch(pair.dataset.judgeUrl, {
        method: "POST",
        body,
        headers: { Accept: "application/json", "X-CSRFToken": csrfToken() },
        credentials: "same-origin",
      });
      if (resp.ok) {
        const data = await resp.json();
        if (data.created !== false) UI.bumpProgress(1);
        state.lastJudgedAt = Date.now();
        state.inFlight = false;
        advance();
        UI.refreshProgress();
        return;
      }
      const message = await errorMessage(resp);
      state.inFlight = false;
      if (resp.status === 409 || resp.status === 404) {
        // The pair is gone for us (expired and re-leased, skipped elsewhere): move on.
        toast(message, "error");
        advance();
        UI.refreshProgress();
      } else {
        setBusy(pair, false);
        toast(message, "error");
      }
    } catch (err) {
      // Network trouble: keep the same key, so a retry (Enter or the button) records at most once.
      state.inFlight = false;
      setBusy(pair, false);
      toast("Could not reach the server; press Enter to retry.", "error");
    }
  }

  async function skip() {
    const pair = state.pair;
    if (!pair || state.inFlight) return;
    state.inFlight = true;
    setBusy(pair, true);
    try {
      const resp = await fetch(pair.dataset.skipUrl, {
        method: "POST",
        headers: { Accept: "application/json", "X-CSRFToken": csrfToken() },
        credentials: "same-origin",
      });
      state.inFlight = false;
      if (resp.ok || resp.status === 404 || resp.status === 409) {
        if (!resp.ok) toast(await errorMessage(resp), "error");
        else toast("Skipped.");
        advance();
        UI.refreshProgress();
      } else {
        setBusy(pair, false);
        toast(await errorMessage(resp), "error");
      }
    } catch (err) {
      state.inFlight = false;
      setBusy(pair, false);
      toast("Could not reach the server.", "error");
    }
  }

  async function undo() {
    if (state.inFlight) return;
    const seconds = Number(root.dataset.undoSeconds || 0);
    if (state.lastJudgedAt && seconds && Date.now() - state.lastJudgedAt > seconds * 1000) {
      toast(`Only judgments from the last ${seconds} s can be undone.`, "error");
      return;
    }
    state.inFlight = true;
    if (state.pair) setBusy(state.pair, true);
    try {
      const resp = await fetch(root.dataset.undoUrl, {
        method: "POST",
        headers: { "HX-Request": "true", "X-CSRFToken": csrfToken() },
        credentials: "same-origin",
      });
      state.inFlight = false;
      if (state.pair) setBusy(state.pair, false);
      if (!resp.ok) {
        toast(await errorMessage(resp), "error");
        return;
      }
      const back = parsePair(await resp.text());
      if (!back) return;
      const dup = queueEl.querySelector(`section.pair[data-assignment="${back.dataset.assignment}"]`);
      if (dup) dup.remove();
      back.hidden = true;
      queueEl.insertBefore(back, queueEl.firstElementChild);
      state.exhausted = false;
      state.lastJudgedAt = 0;
      UI.bumpProgress(-1);
      show(back);
      toast("Undone: judge this pair again.");
      UI.refreshProgress();
    } catch (err) {
      state.inFlight = false;
      if (state.pair) setBusy(state.pair, false);
      toast("Could not reach the server.", "error");
    }
  }

  // ---------------------------------------------------------------- input wiring

  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || e.isComposing) return;
    if (UI.isTyping(e.target)) return;
    const key = e.key;

    if (UI.isHelpOpen()) {
      if (key === "Escape" || key === "?") {
        e.preventDefault();
        UI.closeHelp();
      }
      return; // the dialog is modal: nothing else acts under it
    }
    if (M.isLightboxOpen()) {
      if (M.lightboxKey(key)) e.preventDefault();
      return; // modal too
    }
    if (key === "?") {
      e.preventDefault();
      UI.openHelp();
      return;
    }
    const onRange = e.target && e.target.type === "range";
    let handled = true;
    switch (key) {
      case "1":
      case "2":
      case "3":
      case "4":
        choose(Number(key) - 1);
        break;
      case "ArrowUp":
        if (onRange) return;
        moveRow(-1);
        break;
      case "ArrowDown":
        if (onRange) return;
        moveRow(1);
        break;
      case "Enter": {
        const t = e.target;
        if (t && (t.tagName === "BUTTON" || t.tagName === "A" || t.tagName === "SUMMARY")) return; // native
        if (!state.pair) return;
        const active = rows(state.pair)[state.row];
        const chosen = selectedOverall(state.pair);
        if (active && active.dataset.row !== "overall") moveRow(1);
        else if (chosen) submitJudgment(chosen);
        else toast("Choose 1–4 on the Overall row to submit.");
        break;
      }
      case "s":
      case "S":
        skip();
        break;
      case "u":
      case "U":
        undo();
        break;
      case "Escape":
        break;
      default:
        handled = M.mediaKey(key, onRange); // space, , . [ ] arrows left/right, g, e
    }
    if (handled) e.preventDefault();
  });

  // Forms: intercept so they go over fetch; without this script they post and redirect.
  document.addEventListener("submit", (e) => {
    const form = e.target;
    if (!state.pair || !state.pair.contains(form)) return;
    e.preventDefault();
    if (form.classList.contains("judge-form")) {
      const choice = e.submitter && e.submitter.name === "choice" ? e.submitter.value : selectedOverall(state.pair);
      if (choice) submitJudgment(choice);
    } else if (form.classList.contains("skip-form")) {
      skip();
    }
  });

  // A click on a criterion row makes it the active row, so keys continue from there.
  document.addEventListener("change", (e) => {
    const row = e.target.closest && e.target.closest(".criterion-row");
    if (!row || !state.pair || !state.pair.contains(row)) return;
    state.row = rows(state.pair).indexOf(row);
    markRow();
  });

  // ---------------------------------------------------------------- start

  root.classList.add("js-ready");
  const first = queueEl.querySelector("section.pair:not([hidden])");
  show(first || null);
  if (first) ensureQueue();
  root.dataset.ready = "true";
})();
