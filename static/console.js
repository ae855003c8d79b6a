// Gatehouse console: the live event feed and small conveniences. Loaded from the
// appliance itself; the Content-Security-Policy forbids inline script, so all behaviour
// lives here and in htmx attributes.
"use strict";

(function () {
  const FEED_MAX = 100;

  const RETRY_MS = 5000;

  function startFeed(feed) {
    const status = document.getElementById("live-status");
    const say = (text) => { if (status) status.textContent = text; };
    const source = new EventSource(feed.dataset.stream);
    source.addEventListener("open", () => say("live"));
    source.addEventListener("error", () => {
      // While the browser retries by itself (the appliance restarting, the network gone)
      // the state is CONNECTING. CLOSED means the appliance answered with something that
      // is not a stream: the session ended (signed out, timed out), or an error page.
      if (source.readyState !== EventSource.CLOSED) {
        say("reconnecting…");
        return;
      }
      say("disconnected");
      source.close();
      // Asked as the dashboard's own refreshes ask, so the check keeps no session alive.
      fetch(window.location.href, { redirect: "manual", headers: { "X-Gatehouse-Refresh": "auto" } })
        .then((answer) => {
          // Sent to the sign-in page: reload, and the page itself goes there.
          if (answer.type === "opaqueredirect" || answer.status === 401) window.location.reload();
          else window.setTimeout(() => startFeed(feed), RETRY_MS);
        })
        .catch(() => window.setTimeout(() => startFeed(feed), RETRY_MS));
    });
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
