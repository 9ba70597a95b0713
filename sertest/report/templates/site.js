(function () {
  "use strict";
  /* sertest site: filter the leaderboard, audits and comparisons by suite, data and model.
     The page works without this script (everything is shown); the Content-Security-Policy
     allows only it.  Values are compared as text: nothing from the page becomes markup. */
  var selects = document.querySelectorAll("select[data-filter]");
  function apply() {
    var want = {};
    Array.prototype.forEach.call(selects, function (s) { want[s.getAttribute("data-filter")] = s.value; });
    var shown = 0;
    Array.prototype.forEach.call(document.querySelectorAll("[data-suite]"), function (el) {
      var ok = Object.keys(want).every(function (k) {
        if (!want[k]) { return true; }
        var v = el.getAttribute("data-" + k);
        if (v === null) { return true; }
        return k === "model" ? v.split("\n").indexOf(want[k]) >= 0 : v === want[k];
      });
      el.hidden = !ok;
      if (ok && el.tagName === "TR" && el.closest("#leaderboard")) { shown += 1; }
    });
    var count = document.getElementById("shown");
    if (count) { count.textContent = String(shown); }
  }
  Array.prototype.forEach.call(selects, function (s) { s.addEventListener("change", apply); });
  document.documentElement.classList.add("js");
  apply();
}());
