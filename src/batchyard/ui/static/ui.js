// batchyard dashboard: live panels without a framework.
//
// An element with data-refresh="URL" is re-fetched every data-every ms (default
// 2000) and its contents replaced by the server-rendered fragment. A fragment
// holding [data-final] (an ended batch) is not fetched again; an element marked
// data-reload-when-final reloads the page once its batch ends, so the results
// shown below it are complete. A 401 means the key was revoked or the session
// ended: back to the sign-in form.
"use strict";

function live(el) {
  const every = Number(el.dataset.every || 2000);
  const tick = async () => {
    if (el.querySelector("[data-final]")) return;
    try {
      const response = await fetch(el.dataset.refresh, { credentials: "same-origin" });
      if (response.status === 401) {
        window.location.assign(document.body.dataset.login);
        return;
      }
      if (response.ok) {
        el.innerHTML = await response.text();
        if ("reloadWhenFinal" in el.dataset && el.querySelector("[data-final]")) {
          window.location.reload();
          return;
        }
      }
    } catch (err) {
      // The server is restarting or the network blinked: try again next tick.
    }
    window.setTimeout(tick, every);
  };
  window.setTimeout(tick, every);
}

document.querySelectorAll("[data-refresh]").forEach(live);

// Forms that change something ask first (data-confirm holds the question).
document.addEventListener("submit", (event) => {
  const question = event.target.dataset.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
});
