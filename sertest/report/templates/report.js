(function () {
  "use strict";
  /* sertest report: table-of-contents highlight, one audio at a time, open details to print.
     The page works without this script; the Content-Security-Policy allows only it. */
  var links = document.querySelectorAll('nav.toc a[href^="#"]');
  var byId = {};
  Array.prototype.forEach.call(links, function (a) {
    byId[a.getAttribute("href").slice(1)] = a;
  });
  var current = null;
  if ("IntersectionObserver" in window) {
    var observer = new IntersectionObserver(function (entries) {
      entries.forEach(function (entry) {
        if (!entry.isIntersecting) { return; }
        var link = byId[entry.target.id];
        if (!link || link === current) { return; }
        if (current) { current.classList.remove("active"); }
        link.classList.add("active");
        current = link;
      });
    }, { rootMargin: "0px 0px -75% 0px" });
    Object.keys(byId).forEach(function (id) {
      var el = document.getElementById(id);
      if (el) { observer.observe(el); }
    });
  }
  document.addEventListener("play", function (event) {
    Array.prototype.forEach.call(document.querySelectorAll("audio"), function (a) {
      if (a !== event.target && !a.paused) { a.pause(); }
    });
  }, true);
  /* a link to a folded (passing) cell opens it */
  function reveal() {
    var id = decodeURIComponent(location.hash.slice(1));
    var el = id ? document.getElementById(id) : null;
    while (el) {
      if (el.tagName === "DETAILS") { el.open = true; }
      el = el.parentElement;
    }
  }
  window.addEventListener("hashchange", reveal);
  reveal();
  var opened = [];
  window.addEventListener("beforeprint", function () {
    Array.prototype.forEach.call(document.querySelectorAll("details:not([open])"), function (d) {
      d.open = true;
      opened.push(d);
    });
  });
  window.addEventListener("afterprint", function () {
    opened.forEach(function (d) { d.open = false; });
    opened = [];
  });
  var probe = document.createElement("audio");
  if (probe.canPlayType && !probe.canPlayType("audio/ogg; codecs=opus")) {
    document.documentElement.classList.add("no-opus");
  }
  document.documentElement.classList.add("js");
}());
