/* Site-wide niceties: dismissible messages that fade out on their own. No inline script (CSP). */
(function () {
  "use strict";

  const AUTO_DISMISS_MS = 6000;

  function dismiss(message) {
    message.remove();
    document.querySelectorAll(".messages").forEach((list) => {
      if (!list.querySelector(".message")) list.remove();
    });
  }

  document.addEventListener("click", (e) => {
    const button = e.target.closest("[data-action=dismiss-message]");
    if (button) dismiss(button.closest(".message"));
  });

  function start() {
    document.querySelectorAll(".message").forEach((message) => {
      // Errors stay until read; everything else goes after a few seconds (unless hovered/focused).
      if (message.classList.contains("error")) return;
      const timer = setTimeout(() => {
        if (!message.matches(":hover, :focus-within")) dismiss(message);
      }, AUTO_DISMISS_MS);
      message.addEventListener("click", () => clearTimeout(timer), { once: true });
    });
  }

  // Generated media are often tiny (32 px shapes-world samples): scale those up with hard pixel
  // edges instead of smearing them. Load events don't bubble, so listen in the capture phase.
  const SMALL_PX = 256;
  function markSmall(e) {
    const el = e.target;
    const width = el.tagName === "IMG" ? el.naturalWidth : el.tagName === "VIDEO" ? el.videoWidth : 0;
    if (width && width < SMALL_PX) el.classList.add("pixelated");
  }
  document.addEventListener("load", markSmall, true);
  document.addEventListener("loadedmetadata", markSmall, true);

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
