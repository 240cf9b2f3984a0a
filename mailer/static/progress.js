// Updates the progress of a sending announcement without reloading; the page works without it.
(function () {
  var box = document.getElementById("progress");
  if (!box || !window.fetch) { return; }
  var url = box.getAttribute("data-url");
  function update() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) { return; }
        ["sent", "pending", "failed", "skipped", "total"].forEach(function (key) {
          var el = box.querySelector('[data-field="' + key + '"]');
          if (el) { el.textContent = data[key]; }
        });
        var bar = document.getElementById("progress-bar");
        bar.max = data.total || 1; bar.value = data.done; bar.textContent = data.percent + "%";
        var state = document.getElementById("state");
        if (state) { state.textContent = data.state.charAt(0).toUpperCase() + data.state.slice(1); }
        if (data.state === "sending") { window.setTimeout(update, 2000); }
      })
      .catch(function () { window.setTimeout(update, 5000); });
  }
  if (box.getAttribute("data-state") === "sending") { window.setTimeout(update, 2000); }
})();
