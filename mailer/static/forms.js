// After a form comes back with errors, move focus to the error summary so screen reader and
// keyboard users land on the list of problems (the GOV.UK pattern). The page works without it.
(function () {
  var summary = document.querySelector(".error-summary");
  if (summary) { summary.focus(); }
})();
