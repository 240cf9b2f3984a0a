// Live status of an announcement without reloading (issue 18): the undo window counts down, then
// "Starting…", then the progress bar fills until it is sent. The page works without it (the
// "Refresh this page" link and the time written out); no inline script, so the CSP stays as it is.
(function () {
  var box = document.getElementById("progress");
  if (!box || !window.fetch) { return; }
  var url = box.getAttribute("data-url");
  var state = box.getAttribute("data-state");
  var startsAt = box.getAttribute("data-starts-at");
  var serverNow = box.getAttribute("data-now");
  // The server's clock decides; the difference from this computer's clock is kept.
  var skew = serverNow ? Date.parse(serverNow) - Date.now() : 0;
  var countdown = document.getElementById("countdown");
  var starting = document.getElementById("starting");
  var details = document.getElementById("progress-details");
  var waiting = document.getElementById("waiting");
  var stopForm = document.getElementById("stop-form");
  var stateLabel = document.getElementById("state");
  var timer = null;

  function secondsLeft() {
    return startsAt ? Math.ceil((Date.parse(startsAt) - (Date.now() + skew)) / 1000) : 0;
  }

  function tick() {
    if (state !== "scheduled" || !countdown) { return; }
    var left = secondsLeft();
    if (left > 3600) { return; }
    if (left > 0) {
      countdown.textContent = ", in " + left + (left === 1 ? " second" : " seconds");
    } else {
      countdown.textContent = "";
      if (starting && !starting.textContent) { starting.textContent = "Starting…"; }
      if (stateLabel) { stateLabel.textContent = "Starting"; }
    }
  }

  function show(data) {
    ["sent", "pending", "failed", "skipped", "total"].forEach(function (key) {
      var el = box.querySelector('[data-field="' + key + '"]');
      if (el) { el.textContent = data[key]; }
    });
    var bar = document.getElementById("progress-bar");
    if (bar) { bar.max = data.total || 1; bar.value = data.done; bar.textContent = data.percent + "%"; }
  }

  function update() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) { return; }
        state = data.state;
        if (data.starts_at) { startsAt = data.starts_at; skew = Date.parse(data.now) - Date.now(); }
        if (state === "scheduled") {
          tick();
        } else {
          if (timer) { window.clearInterval(timer); timer = null; }
          if (stateLabel) { stateLabel.textContent = state.charAt(0).toUpperCase() + state.slice(1); }
          if (state === "sending" || state === "paused" || state === "sent") {
            if (waiting) { waiting.hidden = true; }
            if (stopForm) { stopForm.hidden = true; }
            if (details) { details.hidden = false; }
            show(data);
          } else if (starting) {
            starting.textContent = "It is " + state + " now: refresh the page to see what you can do.";
          }
        }
        if (state === "scheduled" || state === "sending") {
          window.setTimeout(update, state === "scheduled" && secondsLeft() > 60 ? 5000 : 1500);
        }
      })
      .catch(function () { window.setTimeout(update, 5000); });
  }

  if (state === "scheduled") {
    if (secondsLeft() > 600) { return; }  // far off: the page says when; nothing to watch yet
    tick();
    timer = window.setInterval(tick, 1000);
    window.setTimeout(update, 1500);
  } else if (state === "sending") {
    window.setTimeout(update, 2000);
  }
})();
