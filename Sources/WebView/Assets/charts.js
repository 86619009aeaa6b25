// Loss and learning-rate curves of a run page, from the JSON the page carries (Chart.js).
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("curve").textContent);
  function plot(id, label, values, colour, exponent) {
    new Chart(document.getElementById(id), {
      type: "line",
      data: { labels: data.step, datasets: [{ label: label, data: values, borderColor: colour, pointRadius: 0, borderWidth: 1.5 }] },
      options: {
        animation: false,
        scales: {
          x: { title: { display: true, text: "step" } },
          // Learning rates are 1e-5 … 1e-3: fixed-point ticks would all read 0.
          y: exponent ? { ticks: { callback: function (value) { return Number(value).toExponential(1); } } } : {}
        }
      }
    });
  }
  plot("loss", "loss", data.loss, "#c0392b", false);
  plot("lr", "learning rate", data.lr, "#2c6fbb", true);
})();
