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
  document.documentElement.classList.add("js");
}());
