// Gatehouse console: the live event feed and small conveniences. Loaded from the
// appliance itself; the Content-Security-Policy forbids inline script, so all behaviour
// lives here and in htmx attributes.
"use strict";

(function () {
  const FEED_MAX = 100;

  function startFeed(feed) {
    const status = document.getElementById("live-status");
    const say = (text) => { if (status) status.textContent = text; };
    const source = new EventSource(feed.dataset.stream);
    source.addEventListener("open", () => say("live"));
    source.addEventListener("error", () => say("reconnecting…"));
    source.addEventListener("feed", (message) => {
      // The server renders each line with the same escaping template as the page itself.
      feed.insertAdjacentHTML("afterbegin", message.data);
      while (feed.children.length > FEED_MAX) feed.lastElementChild.remove();
      // Today's counts and the open doors follow the feed at once, not at the next tick.
      for (const id of ["status", "alarms"]) {
        const panel = document.getElementById(id);
        if (panel && window.htmx) window.htmx.trigger(panel, "gatehouse:event");
      }
    });
    source.addEventListener("lagged", () => say("live (some events skipped: reload for all)"));
  }

  // Forms that need a second thought carry data-confirm with the question to ask.
  function confirmForms() {
    document.addEventListener("submit", (event) => {
      const form = event.target;
      if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
        event.preventDefault();
      }
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const feed = document.getElementById("live-feed");
    if (feed && feed.dataset.stream && "EventSource" in window) startFeed(feed);
    confirmForms();
  });
})();
