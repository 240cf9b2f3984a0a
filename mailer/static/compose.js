// The compose page while the admin types (V3, issue 18.4): a formatting toolbar that writes Markdown, a live
// preview rendered on the server by the email's own code, the audience count as boxes are ticked, a reading-age
// hint, and autosave. Without JavaScript the page still works: Save, and the saved preview beside or below.
(function () {
  "use strict";
  var form = document.getElementById("compose-form");
  if (!form || !window.fetch || !window.FormData) { return; }
  var subject = form.querySelector('[name="subject"]');
  var body = form.querySelector('[name="body"]');
  var idField = form.querySelector('[name="announcement_id"]');
  var csrf = form.querySelector('[name="csrf_token"]').value;

  function later(fn, ms) {
    var timer = null;
    return function () { window.clearTimeout(timer); timer = window.setTimeout(fn, ms); };
  }
  function show(id, on) { document.getElementById(id).hidden = !on; }
  function setText(id, text) { document.getElementById(id).textContent = text; }
  function json(response) {
    return response.json().then(function (data) { return { ok: response.ok, data: data }; });
  }

  // Toolbar: real buttons; each writes Markdown where the cursor is, puts focus back in the message and says
  // what it did in a status message (for screen readers).
  var toolbar = document.getElementById("toolbar");
  var status = document.getElementById("toolbar-status");
  toolbar.hidden = false;
  function say(text) {
    status.textContent = "";
    window.setTimeout(function () { status.textContent = text; }, 30);
  }
  function write(text, start, end, selectFrom, selectTo) {
    body.focus();
    body.setSelectionRange(start, end);
    var inserted = false;
    try { inserted = document.execCommand && document.execCommand("insertText", false, text); } catch (e) { inserted = false; }
    if (!inserted) {  // keeps Undo where the browser can; otherwise write it directly
      body.setRangeText(text, start, end, "end");
      body.dispatchEvent(new Event("input", { bubbles: true }));
    }
    body.setSelectionRange(start + selectFrom, start + selectTo);
  }
  function lines(transform) {
    var value = body.value, from = body.selectionStart, to = body.selectionEnd;
    var start = value.lastIndexOf("\n", from - 1) + 1;
    var end = value.indexOf("\n", to > from && value.charAt(to - 1) === "\n" ? to - 1 : to);
    if (end === -1) { end = value.length; }
    var text = value.slice(start, end).split("\n").map(transform).join("\n");
    write(text, start, end, text.length, text.length);
  }
  var formats = {
    heading: function () {
      lines(function (line) { return "## " + line.replace(/^\s*(#+\s*|[-*]\s+)/, ""); });
      return "Heading added. Type the heading on this line.";
    },
    bold: function () {
      var s = body.selectionStart, e = body.selectionEnd, chosen = body.value.slice(s, e);
      var words = chosen || "bold text";
      write("**" + words + "**", s, e, 2, 2 + words.length);
      return chosen ? "Made bold." : "Bold text added; type over the selected words.";
    },
    list: function () {
      lines(function (line) { return /^\s*[-*]\s/.test(line) ? line : "- " + line; });
      return "Bullet point added. Press Enter and type a dash and a space for the next one.";
    },
    link: function () {
      var s = body.selectionStart, e = body.selectionEnd, chosen = body.value.slice(s, e);
      var words = chosen || "link text";
      var text = "[" + words + "](https://)";
      if (chosen) {
        write(text, s, e, words.length + 3, words.length + 11);
        return "Link added. Type the web address over the selected https://.";
      }
      write(text, s, e, 1, 1 + words.length);
      return "Link added. Type the link text over the selected words, then the web address after https://.";
    },
    name: function () {
      var s = body.selectionStart, e = body.selectionEnd;
      write("{{ name }}", s, e, 10, 10);
      return "The member's name added. Each member sees their own name.";
    }
  };
  toolbar.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-format]");
    if (button) { say(formats[button.getAttribute("data-format")]()); }
  });
  body.addEventListener("keydown", function (event) {
    if (!(event.ctrlKey || event.metaKey) || event.altKey) { return; }
    var key = event.key.toLowerCase();
    if (key === "b" || key === "k") {
      event.preventDefault();
      say(formats[key === "b" ? "bold" : "link"]());
    }
  });

  // Live preview and reading age, a moment after typing stops.
  var frame = document.getElementById("live-preview");
  var latestHtml = null, asked = 0;
  function toFrame() {
    if (latestHtml !== null && frame.contentWindow) {
      frame.contentWindow.postMessage({ preview: latestHtml }, window.location.origin);
    }
  }
  frame.addEventListener("load", toFrame);
  frame.src = form.getAttribute("data-frame-url");
  setText("preview-note", "As you type. The links at the bottom are examples.");
  show("preview-widths", true);
  show("preview-frame-box", true);
  function preview() {
    var data = new FormData();
    data.append("csrf_token", csrf);
    data.append("subject", subject.value);
    data.append("body", body.value);
    data.append("announcement_id", idField.value);
    var mine = ++asked;
    fetch(form.getAttribute("data-preview-url"), { method: "POST", body: data, credentials: "same-origin" })
      .then(json)
      .then(function (answer) {
        if (mine !== asked) { return; }  // a newer one is on its way
        var d = answer.data;
        setText("preview-problem", d.problem || "");
        if (d.reading) {
          setText("reading-message", d.reading.message);
          var list = document.querySelector("#reading-longest ol");
          list.textContent = "";
          d.reading.longest.forEach(function (sentence) {
            var item = document.createElement("li");
            item.textContent = sentence;
            list.appendChild(item);
          });
          show("reading-longest", d.reading.longest.length > 0);
        }
        if (typeof d.html === "string") {
          latestHtml = d.html;
          setText("preview-subject", d.subject);
          show("preview-subject-line", true);
          toFrame();
        }
      })
      .catch(function () {
        setText("preview-problem", "The preview could not be updated. Check your connection; your text is still here.");
      });
  }
  var previewSoon = later(preview, 400);
  subject.addEventListener("input", previewSoon);
  body.addEventListener("input", previewSoon);
  preview();

  // Phone or computer width.
  var widths = document.getElementById("preview-widths");
  widths.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-width]");
    if (!button) { return; }
    var width = button.getAttribute("data-width");
    widths.querySelectorAll("button").forEach(function (b) { b.setAttribute("aria-pressed", String(b === button)); });
    var box = document.getElementById("preview-frame-box");
    box.classList.toggle("phone", width === "phone");
    box.classList.toggle("computer", width === "computer");
  });

  // The audience count as boxes are ticked: the server counts with the engine's own query.
  var groups = form.querySelectorAll('input[name="groups"], input[name="only_without_social_media"]');
  function count() {
    var query = new URLSearchParams();
    groups.forEach(function (box) { if (box.checked) { query.append(box.name, box.value); } });
    fetch(form.getAttribute("data-audience-url") + "?" + query.toString(), { credentials: "same-origin" })
      .then(json)
      .then(function (answer) {
        if (!answer.ok) { return; }
        var d = answer.data;
        var reach = document.getElementById("reach");
        reach.firstChild.textContent = "With this choice, it reaches ";
        setText("reach-count", String(d.count));
        setText("reach-members", d.members);
        setText("social-current-count", String(d.current_count));
        setText("social-earlier-count", String(d.earlier_count));
      })
      .catch(function () { /* the count stays as it was; saving still works */ });
  }
  groups.forEach(function (box) { box.addEventListener("change", count); });

  // Autosave: a draft is kept every few seconds while it changes, and when the tab is closed or hidden.
  if (form.getAttribute("data-autosave") !== "on") { return; }
  var saveStatus = document.getElementById("autosave-status");
  var dirty = false, saving = false, submitting = false;
  function changed() { dirty = true; form.setAttribute("data-saved", "no"); }
  form.addEventListener("input", changed);
  form.addEventListener("change", changed);
  form.addEventListener("submit", function () { submitting = true; });
  function saved(d) {
    if (!idField.value) {
      idField.value = String(d.id);
      form.setAttribute("action", d.edit_url);  // Save now changes this draft rather than making another
      window.history.replaceState(null, "", d.edit_url);
    }
  }
  function autosave(closing) {
    if (!dirty || saving || submitting) { return; }
    saving = true;
    dirty = false;
    // keepalive: a save started as the tab closes still reaches the server
    fetch(form.getAttribute("data-autosave-url"),
          { method: "POST", body: new FormData(form), credentials: "same-origin", keepalive: closing === true })
      .then(json)
      .then(function (answer) {
        if (answer.data.saved) { saved(answer.data); } else { dirty = true; }
        if (!dirty) { form.setAttribute("data-saved", "yes"); }  // everything typed so far is kept
        saveStatus.textContent = answer.data.message;
      })
      .catch(function () {
        dirty = true;
        saveStatus.textContent = "Not saved: the connection or your login may have ended. Copy your text, then reload.";
      })
      .then(function () { saving = false; });
  }
  window.setInterval(autosave, 5000);
  window.addEventListener("pagehide", function () { autosave(true); });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") { autosave(true); }
  });
})();
