// trackline web app: the little script every page runs. No inline script anywhere (the
// Content-Security-Policy allows scripts from this origin only), so pages carry their data
// in data-* attributes and application/json blocks that this file reads.
(function () {
  "use strict";

  function csrf() {
    var m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.getAttribute("content") : "";
  }

  // htmx requests carry the session's CSRF token like the forms do.
  document.addEventListener("htmx:configRequest", function (e) {
    e.detail.headers["X-CSRF-Token"] = csrf();
  });

  // The language link: a cookie for a year, then the same page again.
  document.addEventListener("click", function (e) {
    var a = e.target.closest("a[data-lang]");
    if (!a) return;
    e.preventDefault();
    document.cookie = "lang=" + a.getAttribute("data-lang") + "; path=/; max-age=31536000; samesite=lax";
    location.reload();
  });

  // The live view: server-sent events replace the section's content.
  function live() {
    var el = document.querySelector("[data-live]");
    if (!el || !window.EventSource) return;
    var es = new EventSource(el.getAttribute("data-live"));
    es.addEventListener("live", function (e) {
      el.innerHTML = e.data;
      el.setAttribute("data-updated", String(Date.now()));
    });
  }

  // The overview's chart: calls per day by result.
  function chart() {
    var host = document.getElementById("chart");
    var src = document.getElementById("chart-data");
    if (!host || !src || !window.uPlot) return;
    var d = JSON.parse(src.textContent);
    var colors = ["#1b7f3a", "#b3261e", "#8a5a00"];
    var series = [{}];
    for (var i = 0; i < d.labels.length; i++) {
      series.push({ label: d.labels[i], stroke: colors[i], width: 2 });
    }
    var width = Math.max(280, host.clientWidth);
    var plot = new uPlot({ width: width, height: 260, series: series, axes: [{}, {}] },
      [d.days].concat(d.series), host);
    window.addEventListener("resize", function () {
      plot.setSize({ width: Math.max(280, host.clientWidth), height: 260 });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    live();
    chart();
  });
})();
