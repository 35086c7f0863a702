// The portal's only script: the password eye toggle, the wait state of forms that take a moment,
// the pay form's live preview (the server renders it: one allocation rule, one way to format money)
// and a running retrain job's progress (its page asks the portal every two seconds; same origin only).
(function () {
  "use strict";

  function setupEye(button) {
    var input = document.getElementById(button.getAttribute("aria-controls"));
    if (!input) { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      var show = input.type === "password";
      input.type = show ? "text" : "password";
      button.setAttribute("aria-pressed", String(show));
      // The words come from the page (data-show / data-hide), in the page's language.
      button.setAttribute("aria-label", show ? button.dataset.hide : button.dataset.show);
    });
  }

  // Shown from submit until the next page arrives: as long as the request really takes.
  function setupBusy(form) {
    var status = form.querySelector(".busy");
    form.addEventListener("submit", function (event) {
      if (event.submitter && event.submitter.name === "preview") { return; }  // a preview pays nothing
      if (form.dataset.sent) { event.preventDefault(); return; }  // a second click sends nothing
      form.dataset.sent = "1";
      form.setAttribute("aria-busy", "true");
      form.querySelectorAll("button[type=submit]").forEach(function (b) { b.setAttribute("aria-disabled", "true"); });
      if (status) { status.textContent = form.getAttribute("data-busy"); }
    });
  }

  // Ask the server where the payment would go whenever the month or the amount changes.
  function setupPreview(form) {
    var box = document.getElementById("payment-preview");
    var timer = null;
    var asked = 0;
    if (!box) { return; }
    function ask() {
      var params = new URLSearchParams();
      ["year", "month", "amount"].forEach(function (name) {
        var field = form.elements.namedItem(name);
        if (field) { params.set(name, field.value); }
      });
      var mine = ++asked;
      box.setAttribute("aria-busy", "true");
      fetch(form.getAttribute("data-preview") + "?" + params.toString(), {credentials: "same-origin"})
        .then(function (response) { return response.ok ? response.text() : null; })
        .then(function (html) {
          if (mine !== asked) { return; }  // an older answer arriving late changes nothing
          box.removeAttribute("aria-busy");
          if (html !== null) { box.innerHTML = html; }
        })
        .catch(function () { box.removeAttribute("aria-busy"); });
    }
    form.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(ask, 250); });
    form.addEventListener("change", function () { clearTimeout(timer); ask(); });
    var amount = form.elements.namedItem("amount");
    if (amount && amount.value) { ask(); }
  }

  // A running job: refresh its stages and log; once it has ended, load the page again for its outcome.
  function setupJob(box) {
    var url = box.getAttribute("data-job-status");
    var log = document.getElementById("job-log");
    function poll() {
      fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (job) {
          if (!job) { setTimeout(poll, 5000); return; }
          if (job.state !== "running") { window.location.reload(); return; }
          job.stages.forEach(function (stage) {
            var item = box.querySelector('[data-stage="' + stage.name + '"]');
            if (!item) { return; }
            item.className = "stage-" + stage.state;
            item.querySelector(".stage-state").textContent = stage.state;
          });
          if (log && log.textContent !== job.log) {
            var atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
            log.textContent = job.log;
            if (atEnd) { log.scrollTop = log.scrollHeight; }
          }
          setTimeout(poll, 2000);
        })
        .catch(function () { setTimeout(poll, 5000); });
    }
    setTimeout(poll, 2000);
  }

  function reset() {  // a page restored by the Back button must be usable again
    document.querySelectorAll("form[data-busy]").forEach(function (form) {
      delete form.dataset.sent;
      form.removeAttribute("aria-busy");
      form.querySelectorAll("button[type=submit]").forEach(function (b) { b.removeAttribute("aria-disabled"); });
      var status = form.querySelector(".busy");
      if (status) { status.textContent = ""; }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-toggle-password]").forEach(setupEye);
    document.querySelectorAll("form[data-busy]").forEach(setupBusy);
    document.querySelectorAll("form[data-preview]").forEach(setupPreview);
    document.querySelectorAll("[data-job-status]").forEach(setupJob);
  });
  window.addEventListener("pageshow", function (event) { if (event.persisted) { reset(); } });
}());
