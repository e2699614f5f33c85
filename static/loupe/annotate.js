/* Loupe annotate page: keyboard-first pairwise judging.
 *
 * The page works without this file (every control is a plain form). With it:
 * - keys 1-4 choose (per criterion row, then the overall row, which submits), arrows move rows;
 * - judgments, skips and undo go over fetch; the next pair is already in the DOM (hidden), with its
 *   media loading, so it is swapped in at once; one more is prefetched after every answer;
 * - the two videos of a pair play as one (leader/follower with drift correction);
 * - multi-view sets share one turntable index (keys, drag, thumbnails) and open in a lightbox.
 * No inline script or handler anywhere (CSP script-src 'self'): everything hangs off data- attributes.
 */
(function () {
  "use strict";

  const root = document.getElementById("annotate");
  if (!root) return;

  const queueEl = document.getElementById("queue");
  const emptyEl = document.getElementById("empty");
  const helpEl = document.getElementById("help");
  const toastEl = document.getElementById("toast");
  const VIEW_CHOICES = ["left", "right", "tie", "both_bad"];
  const RATES = [0.25, 0.5, 0.75, 1, 1.5, 2];
  const DRAG_STEP_PX = 24;

  const state = {
    pair: null, // the <section class="pair"> on screen
    shownAt: 0, // performance.now() when it was shown: time on task
    row: 0, // active row index (criteria rows first, overall last)
    inFlight: false, // a judge/skip/undo request is running
    prefetching: null, // the pending prefetch promise
    exhausted: false, // the server said 204: nothing more to claim for now
    rateIndex: RATES.indexOf(1),
    viewIndex: 0,
    layout: "turntable",
    sync: null, // {leader, follower, fps, raf}
    helpReturnFocus: null,
    lightbox: null,
  };

  // ---------------------------------------------------------------- helpers

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

  async function errorMessage(resp) {
    try {
      const data = await resp.json();
      if (data && data.error) return data.error;
    } catch (e) {
      /* not JSON */
    }
    return `The server answered ${resp.status}.`;
  }

  function queued() {
    return Array.from(queueEl.querySelectorAll(":scope > section.pair")).filter((p) => p !== state.pair);
  }

  function rows(pair) {
    return pair ? Array.from(pair.querySelectorAll(".criterion-row")) : [];
  }

  function pairVideos(pair) {
    return pair ? Array.from(pair.querySelectorAll("video[data-role=video]")) : [];
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

  // ---------------------------------------------------------------- showing pairs

  function warm(pair) {
    // Hidden pairs are in the DOM, so their <img> already load; decode them ahead and make sure the
    // videos buffer, so the swap shows pixels at once.
    pair.querySelectorAll("img").forEach((img) => {
      img.loading = "eager";
      if (img.decode) img.decode().catch(() => {});
    });
    pairVideos(pair).forEach((v) => {
      v.preload = "auto";
      v.muted = true;
      if (v.networkState === HTMLMediaElement.NETWORK_EMPTY) v.load();
    });
  }

  function show(pair) {
    stopSync();
    closeLightbox();
    if (state.pair && state.pair !== pair) {
      pairVideos(state.pair).forEach((v) => v.pause());
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
    if (key) key.value = uuid4();
    pair.querySelectorAll(".judge-form input[type=radio]").forEach((r) => {
      r.checked = false;
    });
    pair.querySelectorAll("[aria-pressed]").forEach((b) => b.setAttribute("aria-pressed", "false"));
    state.row = 0;
    state.viewIndex = 0;
    state.layout = "turntable";
    state.rateIndex = RATES.indexOf(1);
    markRow();
    if (pair.dataset.kind === "views") {
      pair.dataset.layout = state.layout;
      setView(0);
    }
    if (pair.dataset.kind === "video") startSync(pair);
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
      pairVideos(old).forEach((v) => {
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

  function parsePair(html) {
    // The fragment is our own server-rendered template; parse it inert, then adopt the section.
    const doc = new DOMParser().parseFromString(html, "text/html");
    const pair = doc.querySelector("section.pair");
    return pair ? document.adoptNode(pair) : null;
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
        if (data.created !== false) bumpProgress(1);
        state.lastJudgedAt = Date.now();
        state.inFlight = false;
        advance();
        refreshProgress();
        return;
      }
      const message = await errorMessage(resp);
      state.inFlight = false;
      if (resp.status === 409 || resp.status === 404) {
        // The pair is gone for us (expired and re-leased, skipped elsewhere): move on.
        toast(message, "error");
        advance();
        refreshProgress();
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
        refreshProgress();
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
      bumpProgress(-1);
      show(back);
      toast("Undone: judge this pair again.");
      refreshProgress();
    } catch (err) {
      state.inFlight = false;
      if (state.pair) setBusy(state.pair, false);
      toast("Could not reach the server.", "error");
    }
  }

  // ---------------------------------------------------------------- videos in sync

  function startSync(pair) {
    const videos = pairVideos(pair);
    if (videos.length < 2) return;
    const [leader, follower] = videos;
    const fps = Number(leader.dataset.fps || follower.dataset.fps) || 8;
    videos.forEach((v) => {
      v.muted = true;
      v.loop = true;
      v.playsInline = true;
      v.playbackRate = RATES[state.rateIndex];
    });
    const sync = { leader, follower, fps, raf: 0, pair };
    state.sync = sync;
    updateSpeed();
    const seek = pair.querySelector("input[data-role=seek]");
    const tick = () => {
      if (state.sync !== sync) return;
      correctDrift(sync);
      if (seek && leader.duration && document.activeElement !== seek) {
        seek.value = String(Math.round((leader.currentTime / leader.duration) * 1000));
      }
      sync.raf = requestAnimationFrame(tick);
    };
    sync.raf = requestAnimationFrame(tick);
    playBoth();
  }

  function stopSync() {
    if (state.sync) cancelAnimationFrame(state.sync.raf);
    state.sync = null;
  }

  function correctDrift(sync) {
    const { leader, follower, fps } = sync;
    if (leader.readyState < 2 || follower.readyState < 1) return;
    if (leader.paused !== follower.paused && !follower.seeking) {
      if (leader.paused) follower.pause();
      else follower.play().catch(() => {});
    }
    const duration = leader.duration || follower.duration || 0;
    let drift = follower.currentTime - leader.currentTime;
    if (duration && Math.abs(drift) > duration / 2) drift -= Math.sign(drift) * duration; // loop wrap
    const rate = leader.playbackRate;
    if (Math.abs(drift) > 0.5 / fps) {
      if (!follower.seeking) follower.currentTime = leader.currentTime;
      follower.playbackRate = rate;
    } else if (!leader.paused && Math.abs(drift) > 0.2 / fps) {
      // Small drift: nudge the rate instead of seeking (a seek stalls a frame).
      follower.playbackRate = rate * (drift > 0 ? 0.95 : 1.05);
    } else if (follower.playbackRate !== rate) {
      follower.playbackRate = rate;
    }
  }

  function videosOf() {
    return state.sync ? [state.sync.leader, state.sync.follower] : [];
  }

  function playBoth() {
    const vs = videosOf();
    if (!vs.length) return;
    const t = vs[0].currentTime;
    vs.forEach((v) => {
      if (Math.abs(v.currentTime - t) > 0.01) v.currentTime = t;
      v.play().catch(() => {});
    });
    markPlaying(true);
  }

  function pauseBoth() {
    const vs = videosOf();
    vs.forEach((v) => v.pause());
    if (vs.length) vs[1].currentTime = vs[0].currentTime;
    markPlaying(false);
  }

  function markPlaying(playing) {
    const btn = state.pair && state.pair.querySelector("[data-action=play]");
    if (btn) btn.setAttribute("aria-pressed", playing ? "true" : "false");
  }

  function togglePlay() {
    const vs = videosOf();
    if (!vs.length) return;
    if (vs[0].paused) playBoth();
    else pauseBoth();
  }

  function seekBoth(time) {
    const vs = videosOf();
    if (!vs.length) return;
    const duration = vs[0].duration || 0;
    const t = duration ? Math.max(0, Math.min(time, duration - 0.001)) : Math.max(0, time);
    vs.forEach((v) => {
      v.currentTime = t;
    });
  }

  function frameStep(dir) {
    const vs = videosOf();
    if (!vs.length) return;
    pauseBoth();
    const fps = state.sync.fps;
    // Land in the middle of the target frame, so rounding never shows the neighbour.
    const frame = Math.floor(vs[0].currentTime * fps + 1e-6) + dir;
    seekBoth(Math.max(0, (frame + 0.5) / fps));
  }

  function changeRate(dir) {
    if (!state.sync) return;
    state.rateIndex = Math.max(0, Math.min(RATES.length - 1, state.rateIndex + dir));
    videosOf().forEach((v) => {
      v.playbackRate = RATES[state.rateIndex];
    });
    updateSpeed();
  }

  function updateSpeed() {
    const out = state.pair && state.pair.querySelector("output[data-role=speed]");
    if (out) out.textContent = `${RATES[state.rateIndex]}×`;
  }

  // ---------------------------------------------------------------- multi-view turntables

  function viewCount(pair) {
    const counts = Array.from(pair.querySelectorAll("[data-role=turntable]"), (t) => t.querySelectorAll("img").length);
    return counts.length ? Math.min(...counts) : 0;
  }

  function setView(index) {
    const pair = state.pair;
    if (!pair || pair.dataset.kind !== "views") return;
    const n = viewCount(pair);
    if (!n) return;
    state.viewIndex = ((index % n) + n) % n;
    pair.querySelectorAll("[data-role=turntable]").forEach((t) => {
      t.dataset.index = String(state.viewIndex);
      t.querySelectorAll("img[data-view]").forEach((img) => {
        img.hidden = Number(img.dataset.view) !== state.viewIndex;
      });
    });
    pair.querySelectorAll(".view-thumb").forEach((b) => {
      const on = Number(b.dataset.view) === state.viewIndex;
      b.classList.toggle("is-current", on);
      b.setAttribute("aria-current", on ? "true" : "false");
    });
    const status = pair.querySelector("[data-role=view-status]");
    if (status) status.textContent = `View ${state.viewIndex + 1} of ${n}`;
    if (state.lightbox) fillLightbox();
  }

  function rotate(dir) {
    setView(state.viewIndex + dir);
  }

  function toggleGrid() {
    const pair = state.pair;
    if (!pair || pair.dataset.kind !== "views") return;
    state.layout = state.layout === "grid" ? "turntable" : "grid";
    pair.dataset.layout = state.layout;
    const btn = pair.querySelector("[data-action=toggle-grid]");
    if (btn) btn.setAttribute("aria-pressed", state.layout === "grid" ? "true" : "false");
  }

  // Drag (mouse, pen or touch) on a turntable rotates both; a press without movement enlarges.
  let drag = null;
  document.addEventListener("pointerdown", (e) => {
    const table = e.target.closest("[data-role=turntable]");
    if (!table || !state.pair || !state.pair.contains(table) || e.button > 0) return;
    drag = { x: e.clientX, start: state.viewIndex, moved: false, id: e.pointerId, table };
    table.setPointerCapture(e.pointerId);
    e.preventDefault();
  });
  document.addEventListener("pointermove", (e) => {
    if (!drag || e.pointerId !== drag.id) return;
    const steps = Math.trunc((e.clientX - drag.x) / DRAG_STEP_PX);
    if (steps !== 0) drag.moved = true;
    if (drag.moved) setView(drag.start - steps);
  });
  function endDrag(e) {
    if (!drag || e.pointerId !== drag.id) return;
    const wasClick = !drag.moved && e.type === "pointerup";
    drag = null;
    if (wasClick) openLightbox();
  }
  document.addEventListener("pointerup", endDrag);
  document.addEventListener("pointercancel", endDrag);

  // ---------------------------------------------------------------- lightbox

  function lightboxSources() {
    const pair = state.pair;
    if (!pair) return [];
    return ["left", "right"].map((side) => {
      const fig = pair.querySelector(`[data-side="${side}"]`);
      if (!fig) return null;
      let img;
      if (pair.dataset.kind === "views") img = fig.querySelector(`[data-role=turntable] img[data-view="${state.viewIndex}"]`);
      else img = fig.querySelector(":scope > img");
      return img ? { src: img.currentSrc || img.src, alt: img.alt, label: side === "left" ? "Left" : "Right" } : null;
    });
  }

  function fillLightbox() {
    const box = state.lightbox;
    if (!box) return;
    const body = box.querySelector(".lightbox-body");
    body.replaceChildren();
    lightboxSources().forEach((s) => {
      if (!s) return;
      const fig = document.createElement("figure");
      const img = document.createElement("img");
      img.src = s.src;
      img.alt = s.alt;
      const cap = document.createElement("figcaption");
      cap.textContent = state.pair.dataset.kind === "views" ? `${s.label} · view ${state.viewIndex + 1}` : s.label;
      fig.append(img, cap);
      body.append(fig);
    });
  }

  function openLightbox() {
    if (!state.pair || state.pair.dataset.kind === "video") return;
    if (state.lightbox) return;
    const box = document.createElement("div");
    box.className = "overlay lightbox";
    box.id = "lightbox";
    box.setAttribute("role", "dialog");
    box.setAttribute("aria-modal", "true");
    box.setAttribute("aria-label", "Enlarged views");
    const inner = document.createElement("div");
    inner.className = "lightbox-inner";
    const body = document.createElement("div");
    body.className = "lightbox-body";
    const close = document.createElement("button");
    close.type = "button";
    close.dataset.action = "close-lightbox";
    close.textContent = "Close ";
    const kbd = document.createElement("kbd");
    kbd.textContent = "Esc";
    close.append(kbd);
    inner.append(body, close);
    box.append(inner);
    state.lightbox = box;
    state.lightboxReturnFocus = document.activeElement;
    document.body.append(box);
    fillLightbox();
    close.focus({ preventScroll: true });
  }

  function closeLightbox() {
    if (!state.lightbox) return;
    state.lightbox.remove();
    state.lightbox = null;
    const back = state.lightboxReturnFocus;
    if (back && document.contains(back)) back.focus({ preventScroll: true });
  }

  // ---------------------------------------------------------------- help overlay

  function openHelp() {
    if (!helpEl || !helpEl.hidden) return;
    state.helpReturnFocus = document.activeElement;
    helpEl.hidden = false;
    const close = helpEl.querySelector("[data-action=close-help]");
    if (close) close.focus({ preventScroll: true });
  }

  function closeHelp() {
    if (!helpEl || helpEl.hidden) return;
    helpEl.hidden = true;
    const back = state.helpReturnFocus;
    if (back && document.contains(back)) back.focus({ preventScroll: true });
    else if (state.pair) state.pair.focus({ preventScroll: true });
  }

  // ---------------------------------------------------------------- input wiring

  function isTyping(el) {
    if (!el) return false;
    if (el.isContentEditable) return true;
    const tag = el.tagName;
    if (tag === "TEXTAREA" || tag === "SELECT") return true;
    if (tag === "INPUT") return !["radio", "checkbox", "button", "submit", "range"].includes(el.type);
    return false;
  }

  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || e.isComposing) return;
    if (isTyping(e.target)) return;
    const key = e.key;

    if (helpEl && !helpEl.hidden) {
      if (key === "Escape" || key === "?") {
        e.preventDefault();
        closeHelp();
      }
      return; // the dialog is modal: nothing else acts under it
    }
    if (state.lightbox) {
      if (key === "Escape" || key === "e" || key === "E") closeLightbox();
      else if (key === "ArrowLeft") rotate(-1);
      else if (key === "ArrowRight") rotate(1);
      else return;
      e.preventDefault();
      return;
    }
    if (key === "?") {
      e.preventDefault();
      openHelp();
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
      case " ":
        if (!state.sync) return;
        togglePlay();
        break;
      case ",":
        frameStep(-1);
        break;
      case ".":
        frameStep(1);
        break;
      case "[":
        changeRate(-1);
        break;
      case "]":
        changeRate(1);
        break;
      case "ArrowLeft":
        if (onRange || !state.pair || state.pair.dataset.kind !== "views") return;
        rotate(-1);
        break;
      case "ArrowRight":
        if (onRange || !state.pair || state.pair.dataset.kind !== "views") return;
        rotate(1);
        break;
      case "g":
      case "G":
        toggleGrid();
        break;
      case "e":
      case "E":
        openLightbox();
        break;
      case "Escape":
        break;
      default:
        handled = false;
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

  document.addEventListener("click", (e) => {
    const btn = e.target.closest("[data-action]");
    if (!btn) {
      if (state.lightbox && e.target === state.lightbox) closeLightbox();
      return;
    }
    const action = btn.dataset.action;
    if (action === "help") openHelp();
    else if (action === "close-help") closeHelp();
    else if (action === "close-lightbox") closeLightbox();
    else if (!state.pair || !state.pair.contains(btn)) return;
    else if (action === "play") togglePlay();
    else if (action === "frame-back") frameStep(-1);
    else if (action === "frame-forward") frameStep(1);
    else if (action === "slower") changeRate(-1);
    else if (action === "faster") changeRate(1);
    else if (action === "rotate-left") rotate(-1);
    else if (action === "rotate-right") rotate(1);
    else if (action === "toggle-grid") toggleGrid();
    else if (action === "enlarge") {
      if (btn.dataset.view !== undefined) setView(Number(btn.dataset.view));
      openLightbox();
    }
  });

  // A click on a criterion row makes it the active row, so keys continue from there.
  document.addEventListener("change", (e) => {
    const row = e.target.closest && e.target.closest(".criterion-row");
    if (!row || !state.pair || !state.pair.contains(row)) return;
    state.row = rows(state.pair).indexOf(row);
    markRow();
  });

  document.addEventListener("input", (e) => {
    if (e.target.dataset.role !== "seek" || !state.sync) return;
    const duration = state.sync.leader.duration || 0;
    if (duration) seekBoth((Number(e.target.value) / 1000) * duration);
  });

  if (helpEl) {
    helpEl.addEventListener("click", (e) => {
      if (e.target === helpEl) closeHelp(); // a click on the backdrop
    });
  }

  // Images: click to enlarge (both sides together, so they stay comparable).
  queueEl.addEventListener("click", (e) => {
    const img = e.target.closest("figure.side > img");
    if (img && state.pair && state.pair.contains(img)) openLightbox();
  });

  // ---------------------------------------------------------------- start

  root.classList.add("js-ready");
  const first = queueEl.querySelector("section.pair:not([hidden])");
  show(first || null);
  if (first) ensureQueue();
  root.dataset.ready = "true";
})();
