/* Loupe annotate page, the media on the pair on screen:
 * - its two videos play as one (leader/follower with drift correction): frame step, speed, one seek bar;
 * - multi-view sets share one turntable index (keys, drag, thumbnails), switch to a grid, and open in a
 *   lightbox, as still images do (both sides together, so they stay comparable).
 * Loaded before annotate.js (pair queue, keys), which reaches it only through window.LoupeMedia.
 * No inline script or handler anywhere (CSP script-src 'self').
 */
(function () {
  "use strict";

  if (!document.getElementById("annotate")) return;

  const queueEl = document.getElementById("queue");
  const RATES = [0.25, 0.5, 0.75, 1, 1.5, 2];
  const DRAG_STEP_PX = 24;

  // annotate.js owns which pair is on screen; it hands us a getter in init().
  let currentPair = () => null;

  const state = {
    rateIndex: RATES.indexOf(1),
    viewIndex: 0,
    layout: "turntable",
    sync: null, // {leader, follower, fps, raf}
    lightbox: null,
    lightboxReturnFocus: null,
  };

  function pairVideos(pair) {
    return pair ? Array.from(pair.querySelectorAll("video[data-role=video]")) : [];
  }

  // ---------------------------------------------------------------- a pair comes and goes

  function stop() {
    stopSync();
    closeLightbox();
  }

  function start(pair) {
    state.viewIndex = 0;
    state.layout = "turntable";
    state.rateIndex = RATES.indexOf(1);
    if (pair.dataset.kind === "views") {
      pair.dataset.layout = state.layout;
      setView(0);
    }
    if (pair.dataset.kind === "video") startSync(pair);
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
    const pair = currentPair();
    const btn = pair && pair.querySelector("[data-action=play]");
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
    const pair = currentPair();
    const out = pair && pair.querySelector("output[data-role=speed]");
    if (out) out.textContent = `${RATES[state.rateIndex]}×`;
  }

  // ---------------------------------------------------------------- multi-view turntables

  function viewCount(pair) {
    const counts = Array.from(pair.querySelectorAll("[data-role=turntable]"), (t) => t.querySelectorAll("img").length);
    return counts.length ? Math.min(...counts) : 0;
  }

  function setView(index) {
    const pair = currentPair();
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
    const pair = currentPair();
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
    const pair = currentPair();
    if (!table || !pair || !pair.contains(table) || e.button > 0) return;
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
    const pair = currentPair();
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
      cap.textContent = currentPair().dataset.kind === "views" ? `${s.label} · view ${state.viewIndex + 1}` : s.label;
      fig.append(img, cap);
      body.append(fig);
    });
  }

  function openLightbox() {
    const pair = currentPair();
    if (!pair || pair.dataset.kind === "video") return;
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

  // ---------------------------------------------------------------- keys and buttons

  // What the media buttons do (their data-action); the media keys map onto the same actions.
  const ACTIONS = new Map([
    ["play", togglePlay],
    ["frame-back", () => frameStep(-1)],
    ["frame-forward", () => frameStep(1)],
    ["slower", () => changeRate(-1)],
    ["faster", () => changeRate(1)],
    ["rotate-left", () => rotate(-1)],
    ["rotate-right", () => rotate(1)],
    ["toggle-grid", toggleGrid],
    ["enlarge", openLightbox],
  ]);
  const KEYS = new Map([
    [" ", "play"], [",", "frame-back"], [".", "frame-forward"], ["[", "slower"], ["]", "faster"],
    ["ArrowLeft", "rotate-left"], ["ArrowRight", "rotate-right"],
    ["g", "toggle-grid"], ["G", "toggle-grid"], ["e", "enlarge"], ["E", "enlarge"],
  ]);

  // Called by annotate.js for keys it does not use itself; true when the key was ours.
  // onRange: the key went to a slider, which keeps its own arrows.
  function mediaKey(key, onRange) {
    const action = KEYS.get(key);
    if (!action) return false;
    if (key === " " && !state.sync) return false; // without videos, space stays the browser's
    if (key === "ArrowLeft" || key === "ArrowRight") {
      const pair = currentPair();
      if (onRange || !pair || pair.dataset.kind !== "views") return false;
    }
    ACTIONS.get(action)();
    return true;
  }

  // While the lightbox is open it is modal: only these keys act (annotate.js asks first).
  function lightboxKey(key) {
    if (key === "Escape" || key === "e" || key === "E") closeLightbox();
    else if (key === "ArrowLeft") rotate(-1);
    else if (key === "ArrowRight") rotate(1);
    else return false;
    return true;
  }

  document.addEventListener("click", (e) => {
    const btn = e.target.closest("[data-action]");
    if (!btn) {
      if (state.lightbox && e.target === state.lightbox) closeLightbox(); // a click on the backdrop
      return;
    }
    const action = btn.dataset.action;
    if (action === "close-lightbox") {
      closeLightbox();
      return;
    }
    const pair = currentPair();
    if (!pair || !pair.contains(btn) || !ACTIONS.has(action)) return;
    if (action === "enlarge" && btn.dataset.view !== undefined) setView(Number(btn.dataset.view));
    ACTIONS.get(action)();
  });

  document.addEventListener("input", (e) => {
    if (e.target.dataset.role !== "seek" || !state.sync) return;
    const duration = state.sync.leader.duration || 0;
    if (duration) seekBoth((Number(e.target.value) / 1000) * duration);
  });

  // Images: click to enlarge (both sides together, so they stay comparable).
  queueEl.addEventListener("click", (e) => {
    const img = e.target.closest("figure.side > img");
    const pair = currentPair();
    if (img && pair && pair.contains(img)) openLightbox();
  });

  window.LoupeMedia = {
    init(getPair) {
      currentPair = getPair;
    },
    videos: pairVideos,
    stop, // before the pair on screen changes: stop syncing, close the lightbox
    start, // once a pair is on screen: first view, normal speed, videos playing in sync
    isLightboxOpen: () => state.lightbox !== null,
    lightboxKey,
    mediaKey,
  };
})();
