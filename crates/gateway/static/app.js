// Progressive enhancement: the repair page works without this; with it, the
// stepper follows the repair live (server-sent events), without a reload.
"use strict";
(function () {
  var stepper = document.getElementById("stepper");
  if (!stepper || !window.EventSource) return;
  var source = new EventSource(stepper.getAttribute("data-events"));
  source.addEventListener("stage", function (event) {
    var data = JSON.parse(event.data);
    var reached = true;
    stepper.querySelectorAll("li").forEach(function (step) {
      var here = step.getAttribute("data-stage") === data.stage;
      step.className = here ? "current" : (reached ? "done" : "todo");
      if (here) { step.setAttribute("aria-current", "step"); reached = false; }
      else { step.removeAttribute("aria-current"); }
    });
    var label = document.getElementById("stage-label");
    label.setAttribute("data-stage", data.stage);
    label.textContent = data.label;
  });
})();
