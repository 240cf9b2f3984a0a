// The live preview's frame (issue 18.4): the compose page sends the email's HTML, rendered on the server by the
// code that renders the email; this page shows it. Only messages from the page it sits in, on this site, count.
// Links open in a new tab, so the preview never navigates away.
(function () {
  "use strict";
  window.addEventListener("message", function (event) {
    if (event.source !== window.parent || event.origin !== window.location.origin) { return; }
    var html = event.data && event.data.preview;
    if (typeof html !== "string") { return; }
    var parsed = new DOMParser().parseFromString(html, "text/html");
    var x = window.scrollX, y = window.scrollY;
    document.replaceChild(document.importNode(parsed.documentElement, true), document.documentElement);
    window.scrollTo(x, y);
  });
  window.addEventListener("click", function (event) {
    var link = event.target && event.target.closest ? event.target.closest("a[href]") : null;
    if (!link) { return; }
    event.preventDefault();
    window.open(link.href, "_blank", "noopener,noreferrer");
  });
})();
