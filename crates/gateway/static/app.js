// Progressive enhancement: the repair page works without this; with it, the
// stepper follows the repair live (server-sent events), without a reload.
"use strict";

// A live stream that ends when the page is left (or kept in the back-forward
// cache), so it does not hold one of the browser's few connections to the site.
function live(url) {
  var source = new EventSource(url);
  window.addEventListener("pagehide", function () { source.close(); });
  return source;
}

// The page's sections that follow the order (its expected date, quote,
// parcels and timeline) are fetched anew when it changes, and swapped in place.
function refreshSections() {
  fetch(location.href, { credentials: "same-origin" })
    .then(function (response) { return response.ok ? response.text() : null; })
    .then(function (html) {
      if (!html) return;
      var fresh = new DOMParser().parseFromString(html, "text/html");
      document.querySelectorAll("[data-live]").forEach(function (section) {
        var now = fresh.getElementById(section.id);
        if (now && now.innerHTML !== section.innerHTML) section.innerHTML = now.innerHTML;
      });
    })
    .catch(function () {});
}

(function () {
  var stepper = document.getElementById("stepper");
  if (!stepper || !window.EventSource) return;
  var source = live(stepper.getAttribute("data-events"));
  source.addEventListener("stage", function (event) {
    var data = JSON.parse(event.data);
    var label = document.getElementById("stage-label");
    var moved = label.getAttribute("data-stage") !== data.stage;
    var reached = true;
    stepper.querySelectorAll("li").forEach(function (step) {
      var here = step.getAttribute("data-stage") === data.stage;
      step.className = here ? "current" : (reached ? "done" : "todo");
      if (here) { step.setAttribute("aria-current", "step"); reached = false; }
      else { step.removeAttribute("aria-current"); }
    });
    label.setAttribute("data-stage", data.stage);
    label.textContent = data.label;
    if (moved) refreshSections();
  });
  source.addEventListener("parcels", refreshSections);
})();

// The unread count in the header, live.
(function () {
  var badge = document.getElementById("unread");
  if (!badge || !window.EventSource) return;
  var source = live(badge.getAttribute("data-events"));
  source.addEventListener("unread", function (event) {
    var count = parseInt(event.data, 10) || 0;
    badge.textContent = count > 0 ? String(count) : "";
    badge.setAttribute("data-count", String(count));
  });
})();

// The IMEI checked as it is typed: fifteen digits, the last the Luhn check
// digit of the others (the server checks it again).
(function () {
  var input = document.getElementById("imei");
  var status = document.getElementById("imei-check");
  if (!input || !status) return;
  function luhn(digits) {
    var sum = 0;
    for (var i = 0; i < digits.length; i++) {
      var d = digits.charCodeAt(digits.length - 1 - i) - 48;
      if (i % 2 === 1) { d *= 2; if (d > 9) d -= 9; }
      sum += d;
    }
    return sum % 10 === 0;
  }
  input.addEventListener("input", function () {
    var value = input.value.replace(/\s/g, "");
    var ok = /^[0-9]{15}$/.test(value) && luhn(value);
    input.setCustomValidity(ok || value.length < 15 ? "" : input.getAttribute("data-invalid"));
    status.textContent = value.length < 15 ? "" : input.getAttribute(ok ? "data-valid" : "data-invalid");
    status.className = ok ? "valid" : (value.length < 15 ? "" : "invalid");
  });
})();

// "Use my location": the nearest centers from where the person is, if they allow it.
(function () {
  var button = document.getElementById("locate");
  if (!button || !navigator.geolocation) return;
  button.hidden = false;
  button.addEventListener("click", function () {
    navigator.geolocation.getCurrentPosition(function (position) {
      document.getElementById("lat").value = position.coords.latitude.toFixed(4);
      document.getElementById("lon").value = position.coords.longitude.toFixed(4);
      document.getElementById("located").textContent = button.getAttribute("data-located");
    });
  });
})();

// Installable, and a page saying so when there is no network.
if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("/sw.js").catch(function () {});
}
