/* The activity page's charts: one uPlot chart per workspace from /api/activity (the tables beside them
   carry the same numbers for screen readers and keyboards). */
"use strict";
(function () {
  var holder = document.getElementById("charts");
  if (!holder || typeof uPlot === "undefined") return;
  var COLORS = {actions: "#1a7f37", refusals: "#b35900", errors: "#c62828"};
  fetch(holder.dataset.src, {credentials: "same-origin"}).then(function (r) { return r.json(); }).then(function (a) {
    var xs = a.days.map(function (d) { return Date.parse(d + "T00:00:00Z") / 1000; });
    document.querySelectorAll(".chart[data-workspace-index]").forEach(function (box) {
      var ws = a.workspaces[Number(box.dataset.workspaceIndex)];
      if (!ws) return;
      var width = Math.max(320, Math.min(900, box.clientWidth || 800));
      var series = [{}].concat(a.series.map(function (s) {
        return {label: a.labels[s], stroke: COLORS[s], width: 2, points: {show: true}};
      }));
      var opts = {width: width, height: 220, series: series, scales: {x: {time: true}},
                  axes: [{}, {label: "records"}], legend: {live: false}};
      new uPlot(opts, [xs].concat(a.series.map(function (s) { return ws[s]; })), box);
      box.dataset.ready = "1";
    });
  });
})();
